"""The credit-risk job end to end on a small synthetic bank: MLflow tracking and registry round
trip (log, register, gate, load by alias, predict), the CLI, and batch scoring. Against the
embedded SQLite store, and against a real ``mlflow server`` on PostgreSQL started here."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from rmreco.cli import app
from rmreco.config import Settings
from rmreco.synthetic import generate_bank
from rmreco.training.credit_risk import train_credit_risk
from rmreco.training.registry import CHALLENGER, CHAMPION

ROOT = Path(__file__).resolve().parents[2]
NAME = "rmreco-sme-credit-risk"
REQUIRED_METRICS = (
    "oot_auc",
    "oot_gini",
    "oot_ks",
    "oot_brier",
    "oot_logloss",
    "baseline_oot_auc",
    "oracle_oot_auc",
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bank") / "bank"
    generate_bank(out, n_clients=1500, n_months=30, seed=5)
    return out


def _spec(tmp_path: Path, *, weak: bool = False) -> Path:
    raw = yaml.safe_load((ROOT / "models" / "sme_credit_risk.yaml").read_text())
    raw["model"]["lightgbm"]["num_boost_round"] = 80
    raw["model"]["lightgbm"]["params"]["learning_rate"] = 0.1
    if weak:  # a deliberately weakened model: two features that say little about default
        raw["features"] = [{"name": "history_months"}, {"name": "tx_count_3m_log"}]
        raw["gates"]["min_auc"] = 0.5
    path = tmp_path / ("weak.yaml" if weak else "spec.yaml")
    path.write_text(yaml.safe_dump(raw))
    return path


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def _round_trip(bank: Path, tmp_path: Path, tracking_uri: str) -> None:
    settings = _settings(tmp_path)
    first = train_credit_risk(
        bank,
        spec_path=_spec(tmp_path),
        settings=settings,
        tracking_uri=tracking_uri,
        experiment="test-credit",
    )
    assert first.gate.passed, first.gate.reason
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    run = client.get_run(first.run_id)
    for name in REQUIRED_METRICS:
        assert name in run.data.metrics, f"metric {name} not logged"
    assert run.data.tags["data_fingerprint"]
    assert run.data.tags["git_commit"]
    assert run.data.params["seed"] == "42"
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"charts", "tables", "spec", "model_card.md"} <= artifacts
    charts = {Path(a.path).name for a in client.list_artifacts(first.run_id, "charts")}
    assert {
        "roc.png",
        "calibration_by_grade.png",
        "gains.png",
        "feature_importance.png",
        "shap_summary.png",
    } <= charts
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == first.version

    # load by alias through MLflow's own pyfunc and predict
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@{CHAMPION}")
    example = model.input_example
    assert example is not None
    out = model.predict(example)
    assert list(out.columns) == ["pd_12m", "grade", "reasons"]
    assert out["pd_12m"].between(0, 1).all()
    assert all(isinstance(json.loads(r), list) for r in out["reasons"])

    weak = train_credit_risk(
        bank,
        spec_path=_spec(tmp_path, weak=True),
        settings=settings,
        tracking_uri=tracking_uri,
        experiment="test-credit",
    )
    assert not weak.gate.passed, weak.gate.reason
    assert "below champion" in weak.gate.reason
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == first.version
    assert str(client.get_model_version_by_alias(NAME, CHALLENGER).version) == weak.version


def test_round_trip_on_the_embedded_sqlite_store(bank: Path, tmp_path: Path) -> None:
    _round_trip(bank, tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mlflow_server(postgres_url: str, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = (tmp_path / "mlflow-server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            postgres_url,
            "--artifacts-destination",
            (tmp_path / "server-artifacts").as_uri(),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError((tmp_path / "mlflow-server.log").read_text()[-3000:])
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("mlflow server did not start in 120 s")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.mark.postgres
def test_round_trip_on_an_mlflow_server_backed_by_postgresql(
    bank: Path, tmp_path: Path, mlflow_server: str
) -> None:
    _round_trip(bank, tmp_path, mlflow_server)


def test_cli_train_list_promote_rollback_and_score_batch(
    bank: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RMRECO_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for _ in range(2):
        result = runner.invoke(
            app,
            [
                "train",
                "credit-risk",
                "--data",
                str(bank),
                "--spec",
                str(_spec(tmp_path)),
                "--tracking-uri",
                uri,
            ],
        )
        assert result.exit_code == 0, result.output
        assert "oot_auc" in result.output
        assert "promoted" in result.output
    listed = runner.invoke(app, ["models", "list", "--tracking-uri", uri])
    assert listed.exit_code == 0
    assert NAME in listed.output
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == "2"
    rolled = runner.invoke(app, ["models", "rollback", NAME, "--tracking-uri", uri])
    assert rolled.exit_code == 0, rolled.output
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == "1"
    again = runner.invoke(app, ["models", "rollback", NAME, "--tracking-uri", uri])
    assert again.exit_code == 1
    assert "no earlier champion" in again.output
    promoted = runner.invoke(app, ["models", "promote", NAME, "2", "--tracking-uri", uri])
    assert promoted.exit_code == 0
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == "2"
    missing = runner.invoke(app, ["models", "promote", NAME, "99", "--tracking-uri", uri])
    assert missing.exit_code == 1
    assert "no version 99" in missing.output

    out = tmp_path / "scores"
    scored = runner.invoke(
        app,
        [
            "score-batch",
            "--data",
            str(bank),
            "--as-of",
            "2023-06",
            "--out",
            str(out),
            "--tracking-uri",
            uri,
        ],
    )
    assert scored.exit_code == 0, scored.output
    credit = pd.read_parquet(out / "credit.parquet")
    assert list(credit.columns[:5]) == ["client_id", "as_of", "pd_12m", "grade", "reasons"]
    assert credit["client_id"].is_unique
    assert len(credit) > 1000
    assert credit["pd_12m"].between(0, 1).all()
    clients = pd.read_parquet(bank / "clients.parquet")
    segments = clients.set_index("client_id").loc[credit["client_id"], "segment"]
    assert set(segments) == {"sme"}
    outside = runner.invoke(
        app,
        [
            "score-batch",
            "--data",
            str(bank),
            "--as-of",
            "2030-01",
            "--out",
            str(out),
            "--tracking-uri",
            uri,
        ],
    )
    assert outside.exit_code == 1
    assert "outside the data" in outside.output


def test_mlproject_entry_point_runs_the_same_job(bank: Path, tmp_path: Path) -> None:
    """`mlflow run . -e train_credit_risk --env-manager local` logs into the run it created."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": store,
        "RMRECO_HOME": str(tmp_path / "home"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("RMRECO_TRACKING_URI", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "run",
            str(ROOT),
            "-e",
            "train_credit_risk",
            "--env-manager",
            "local",
            "-P",
            f"data={bank}",
            "-P",
            f"spec={_spec(tmp_path)}",
            "--experiment-name",
            "mlproject",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    experiment = client.get_experiment_by_name("mlproject")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, "the job must log into the run mlflow run created, not a second one"
    assert "oot_auc" in runs[0].data.metrics
    assert runs[0].data.tags["rmreco.job"] == "train_credit_risk"
