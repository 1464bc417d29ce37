"""The credit-risk job end to end on a small synthetic bank: MLflow tracking and registry round
trip (log, register, gate, load by alias, predict), the validation report (intervals, the
per-grade test, PSI against the fit window and the champion, monotonicity, the scorecard's
tables), a model that breaks a monotone constraint refused by the gate, the CLI, and batch
scoring. Against the embedded SQLite store, and against a real ``mlflow server`` on PostgreSQL
started here."""

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
from mlflow.exceptions import MlflowException
from typer.testing import CliRunner

import rmreco.modeling.credit_estimator as credit_estimator
from rmreco.cli import app
from rmreco.cli.main import EXIT_CONFIGURATION
from rmreco.config import Settings
from rmreco.domain.errors import ConfigurationError
from rmreco.modeling.spec import load_credit_risk_spec
from rmreco.synthetic import generate_bank
from rmreco.training.credit_risk import train_credit_risk
from rmreco.training.registry import CHALLENGER, CHAMPION
from rmreco.training.run import REFERENCE_PROFILE, TEST_SCORES

ROOT = Path(__file__).resolve().parents[2]
NAME = load_credit_risk_spec(ROOT / "models" / "sme_credit_risk.yaml").name
REQUIRED_METRICS = (
    "oot_auc",
    "oot_gini",
    "oot_ks",
    "oot_brier",
    "oot_logloss",
    "baseline_oot_auc",
    "oracle_oot_auc",
    "oot_auc_ci_low",
    "oot_auc_ci_high",
    "oot_gini_ci_low",
    "oot_ks_ci_high",
    "grades_underestimated",
    "psi_score",
    "psi_max_feature",
    "monotonicity_violations",
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
        "bootstrap.png",
        "psi.png",
        "monotonicity.png",
    } <= charts
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == first.version
    _check_report(first.run_id, tracking_uri, tmp_path / "first", champion=None)

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
    # the second run measures its data against the champion's training data profile
    _check_report(weak.run_id, tracking_uri, tmp_path / "weak", champion=first.version)
    assert "psi_champion_score" in client.get_run(weak.run_id).data.metrics


def _check_report(run_id: str, tracking_uri: str, folder: Path, champion: str | None) -> None:
    """The validation report of a run: its documents, tables and what the model card quotes."""
    local = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, tracking_uri=tracking_uri, dst_path=str(folder)
        )
    )
    metrics = MlflowClient(tracking_uri=tracking_uri).get_run(run_id).data.metrics
    assert metrics["oot_auc_ci_low"] < metrics["oot_auc"] < metrics["oot_auc_ci_high"]
    report = json.loads((local / "report" / "validation.json").read_text())
    assert report["test_window"].startswith("out-of-time test window")
    assert report["discrimination"]["resampled"] == "clients"
    assert report["discrimination"]["auc"]["value"] == pytest.approx(metrics["oot_auc"])
    assert report["champion"]["version"] == champion
    spec = json.loads((local / "spec" / "resolved_spec.json").read_text())
    constrained = {f["name"] for f in spec["features"] if f["monotone"] != "none"}
    assert {row["feature"] for row in report["monotonicity"]} == constrained
    assert report["monotonicity_veto"] is None
    profile = json.loads((local / "report" / "reference_profile.json").read_text())
    assert {f["name"] for f in spec["features"]} | {"(score)"} == set(profile["variables"])

    grades = pd.read_csv(local / "tables" / "grade_table.csv", dtype={"grade": str})
    assert {"clients", "defaults", "mean_pd", "jeffreys_low", "p_value", "underestimated"} <= set(
        grades.columns
    )
    assert int(grades["clients"].sum()) == int(metrics["oot_rows"])
    assert grades["p_value"].between(0, 1).all()
    assert sorted(grades.loc[grades["underestimated"], "grade"]) == sorted(
        report["grades_underestimated"]
    )
    psi = pd.read_csv(local / "tables" / "psi.csv", index_col=0)
    assert set(psi.index) == set(profile["variables"])
    assert psi["band"].isin(["stable", "watch", "shift"]).all()
    assert psi["psi"].max() == pytest.approx(max(metrics["psi_max_feature"], metrics["psi_score"]))
    assert psi["champion_psi"].notna().any() == (champion is not None)
    bins = pd.read_csv(local / "tables" / "scorecard_bins.csv")
    assert set(bins["feature"]) == {f["name"] for f in spec["features"]}
    assert {"count", "event_rate", "woe", "iv"} <= set(bins.columns)
    points = pd.read_csv(local / "tables" / "scorecard_points.csv")
    assert len(points) == len(bins)
    assert points["points"].notna().all()

    card = (local / "model_card.md").read_text()
    for text in (
        "out-of-time test window",
        "95% interval",
        "Jeffreys",
        "Population stability",
        "Monotonicity of the registered model",
        "No violation.",
        "Scorecard (companion)",
        f"{metrics['oot_auc_ci_low']:.4f}",
    ):
        assert text in card, text
    if champion is None:
        assert "no champion yet" in card
    else:
        assert f"champion v{champion}'s fit window" in card


def test_a_model_that_breaks_a_monotone_constraint_is_refused(
    bank: Path, tmp_path: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LightGBM fitted without its constraints (as when it does not honour them), and a spec
    that says PD never falls as the business ages, which it does: the post-training check
    finds it and the gate refuses the model, even with no champion to compare against."""
    fit = credit_estimator.fit_binary_booster

    def unconstrained(*args: object, **kwargs: object) -> object:
        return fit(*args, **{**kwargs, "monotone": None})  # type: ignore[arg-type]

    monkeypatch.setattr(credit_estimator, "fit_binary_booster", unconstrained)
    raw = yaml.safe_load(_spec(tmp_path).read_text())
    raw["model"]["registered"] = "lightgbm"  # the unconstrained model is the one served
    for feature in raw["features"]:
        if feature["name"] == "business_age_months":
            feature["monotone"] = "increasing"
    path = tmp_path / "wrong.yaml"
    path.write_text(yaml.safe_dump(raw))
    uri = mlflow_uri
    result = train_credit_risk(bank, spec_path=path, settings=_settings(tmp_path), tracking_uri=uri)
    assert not result.gate.passed
    assert result.gate.reason.startswith("refused: monotone constraint violated")
    assert "business_age_months (increasing" in result.gate.reason
    assert result.metrics["monotonicity_violations"] >= 1
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert str(client.get_model_version_by_alias(NAME, CHALLENGER).version) == result.version
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias(NAME, CHAMPION)
    art = str(tmp_path / "art")
    local = Path(
        mlflow.artifacts.download_artifacts(run_id=result.run_id, tracking_uri=uri, dst_path=art)
    )
    report = json.loads((local / "report" / "validation.json").read_text())
    assert "business_age_months" in report["monotonicity_veto"]
    table = pd.read_csv(local / "tables" / "monotonicity.csv", index_col=0)
    assert table.loc["business_age_months", "clients_violating"] > 0
    card = (local / "model_card.md").read_text()
    assert "refused: monotone constraint violated" in card


def test_round_trip_on_the_embedded_sqlite_store(
    bank: Path, tmp_path: Path, mlflow_uri: str
) -> None:
    _round_trip(bank, tmp_path, mlflow_uri)


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
    bank: Path, tmp_path: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RMRECO_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    uri = mlflow_uri
    for attempt in range(2):
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
        if attempt == 0:  # the champion as a run from before training data profiles
            profiles = list((tmp_path / "home").rglob(REFERENCE_PROFILE))
            assert len(profiles) == 1
            profiles[0].unlink()
    listed = runner.invoke(app, ["models", "list", "--tracking-uri", uri])
    assert listed.exit_code == 0
    assert NAME in listed.output
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    # the second run says it could not compare against the champion's data, and went on
    second = client.get_model_version(NAME, "2").run_id
    local = mlflow.artifacts.download_artifacts(
        run_id=second, artifact_path="report/validation.json", tracking_uri=uri,
        dst_path=str(tmp_path / "second"),
    )  # fmt: skip
    champion = json.loads(Path(local).read_text())["champion"]
    assert champion["version"] == "1"
    assert "could not be found" in champion["note"]
    assert "psi_champion_score" not in client.get_run(second).data.metrics
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


def test_a_one_month_model_is_named_and_scored_by_its_horizon(
    bank: Path, tmp_path: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1-month spec must carry 1m in its registered name; its test scores, its registered
    pyfunc model and score-batch name the PD ``pd_1m``; and score-batch refuses a policy that
    states no amounts in the data's currency before it writes anything."""
    raw = yaml.safe_load((ROOT / "models" / "sme_credit_risk.yaml").read_text())
    raw["label"]["horizon_months"] = 1
    raw["model"]["lightgbm"]["num_boost_round"] = 80
    raw["model"]["lightgbm"]["params"]["learning_rate"] = 0.1
    raw["gates"]["min_auc"] = 0.5  # a month's defaults are few in this book: not the point here
    models = tmp_path / "models"
    models.mkdir()
    spec = models / "sme_pd_1m.yaml"
    spec.write_text(yaml.safe_dump(raw))  # still the 12-month name
    uri = mlflow_uri
    settings = _settings(tmp_path)
    with pytest.raises(
        ConfigurationError, match=r"lacks 1m\. A name that fits: name: rmreco-sme-pd-1m"
    ):
        train_credit_risk(bank, spec_path=spec, settings=settings, tracking_uri=uri)
    raw["name"] = "rmreco-sme-pd-1m"
    spec.write_text(yaml.safe_dump(raw))
    trained = train_credit_risk(bank, spec_path=spec, settings=settings, tracking_uri=uri)
    assert trained.gate.passed, trained.gate.reason
    local = mlflow.artifacts.download_artifacts(
        run_id=trained.run_id, artifact_path="scores", tracking_uri=uri,
        dst_path=str(tmp_path / "scores-artifact"),
    )  # fmt: skip
    test_scores = pd.read_parquet(Path(local) / TEST_SCORES)
    assert list(test_scores.columns[:4]) == ["client_id", "month", "pd_1m", "grade"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/rmreco-sme-pd-1m@{CHAMPION}")
    assert pyfunc.input_example is not None
    assert list(pyfunc.predict(pyfunc.input_example).columns) == ["pd_1m", "grade", "reasons"]

    (models / "credit_policy.yaml").write_text(
        (ROOT / "models" / "credit_policy.yaml")
        .read_text()
        .replace("\ncurrency: EUR\n", "\ncurrency: PLN\n", 1)
    )
    monkeypatch.setenv("RMRECO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RMRECO_MODELS_DIR", str(models))
    out = tmp_path / "out"
    command = ["score-batch", "--data", str(bank), "--as-of", "2023-06", "--out", str(out)]
    runner = CliRunner()
    refused = runner.invoke(app, [*command, "--tracking-uri", uri])
    assert refused.exit_code == EXIT_CONFIGURATION, refused.output
    assert "the data's money is in EUR" in refused.output
    assert "add other_currencies.EUR" in refused.output
    assert not out.exists() or not any(out.iterdir())  # nothing written
    (models / "credit_policy.yaml").write_text((ROOT / "models" / "credit_policy.yaml").read_text())
    scored = runner.invoke(app, [*command, "--tracking-uri", uri])
    assert scored.exit_code == 0, scored.output
    credit = pd.read_parquet(out / "credit.parquet")
    assert list(credit.columns[:5]) == ["client_id", "as_of", "pd_1m", "grade", "reasons"]
    assert credit["pd_1m"].between(0, 1).all()
    assert set(credit["model_name"]) == {"rmreco-sme-pd-1m"}
    financing = pd.read_parquet(out / "financing.parquet")
    assert "pd_1m" in financing.columns
    assert not {"pd", "pd_12m", "pd_horizon_months"} & set(financing.columns)


def test_mlproject_entry_point_runs_the_same_job(
    bank: Path, tmp_path: Path, mlflow_uri: str
) -> None:
    """`mlflow run . -e train_credit_risk --env-manager local` logs into the run it created."""
    store = mlflow_uri
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
