"""What is trained is exactly what is served.

Both models are trained with a financials lag and cure months that differ from every builder
default. For the same client-months, the PD, grade and ordered reasons of (a) training's own
scoring of its test window, (b) ``rmreco score-batch``, (c) the pyfunc model loaded from the
registry and (d) the service's financing answer agree to 1e-9; so do the cross-sell
propensities of batch scoring, the pyfunc model and the service's list. Then the specs' lag is
changed and the models retrained, with no other edit: the service refuses the new champions
until the snapshots are refreshed, and batch scoring and the service compute the new features.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from mlflow_store import new_store
from sqlalchemy import select
from typer.testing import CliRunner

from rmreco.cli import app as cli
from rmreco.config import Settings
from rmreco.db import repository
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.db.schema import ClientFeatures
from rmreco.features.builder import DEFAULT_FINANCIALS_LAG_MONTHS
from rmreco.features.config import SnapshotParams, snapshot_frame
from rmreco.features.inputs import read_feature_inputs
from rmreco.features.labels import DEFAULT_CURE_MONTHS
from rmreco.modeling.pyfunc import load_credit_model, load_propensity_model
from rmreco.serving.app import create_app
from rmreco.serving.security import issue_key
from rmreco.synthetic import generate_bank
from rmreco.training.credit_risk import train_credit_risk
from rmreco.training.cross_sell import train_cross_sell
from rmreco.training.run import TEST_SCORES

ROOT = Path(__file__).resolve().parents[2]
CREDIT = "parity-sme-pd-12m"
CROSS_SELL = "parity-sme-corporate-cross-sell-3m"
LAG, CURE = 9, 5  # neither is a builder default (checked below)
NEW_LAG = 2
CLIENTS_COMPARED = 40

pytestmark = pytest.mark.slow


@dataclass
class Trained:
    bank: Path
    models: Path
    uri: str
    settings: Settings
    work: Path


def _write_specs(models: Path, lag: int) -> None:
    credit = yaml.safe_load((ROOT / "models" / "sme_credit_risk.yaml").read_text())
    credit.update(name=CREDIT, financials_lag_months=lag)
    credit["label"]["cure_months"] = CURE
    credit["model"]["lightgbm"]["num_boost_round"] = 60
    credit["model"]["lightgbm"]["params"]["learning_rate"] = 0.1
    credit["gates"]["max_auc_drop"] = 1.0  # a retrained model always replaces the champion
    offers = yaml.safe_load((ROOT / "models" / "cross_sell.yaml").read_text())
    offers.update(name=CROSS_SELL, financials_lag_months=lag)
    offers["label"]["cure_months"] = CURE
    offers["model"]["lightgbm"]["num_boost_round"] = 40
    offers["model"]["lightgbm"]["params"].update(learning_rate=0.15, min_data_in_leaf=50)
    offers["model"]["per_product_params"] = {"num_leaves": 7, "min_data_in_leaf": 30}
    offers["gates"].update(min_value=0.05, max_drop=1.0)
    (models / "credit.yaml").write_text(yaml.safe_dump(credit))
    (models / "cross_sell.yaml").write_text(yaml.safe_dump(offers))
    (models / "credit_policy.yaml").write_text((ROOT / "models" / "credit_policy.yaml").read_text())


def _train(trained: Trained) -> None:
    for job, spec in ((train_credit_risk, "credit.yaml"), (train_cross_sell, "cross_sell.yaml")):
        result = job(
            trained.bank,
            spec_path=trained.models / spec,
            settings=trained.settings,
            tracking_uri=trained.uri,
        )
        assert result.gate.passed, result.gate.reason


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    assert (LAG, CURE) != (DEFAULT_FINANCIALS_LAG_MONTHS, DEFAULT_CURE_MONTHS)
    assert LAG != DEFAULT_FINANCIALS_LAG_MONTHS
    assert CURE != DEFAULT_CURE_MONTHS
    work = tmp_path_factory.mktemp("parity")
    bank = work / "bank"
    generate_bank(bank, n_clients=1500, n_months=30, seed=5)
    models = work / "models"
    models.mkdir()
    _write_specs(models, LAG)
    settings = Settings(home=work / "home", models_dir=models)
    result = Trained(bank, models, new_store(work, tmp_path_factory), settings, work)
    _train(result)
    with pytest.MonkeyPatch.context() as patch:
        # the CLI reads the same settings from the environment
        patch.setenv("RMRECO_HOME", str(work / "home"))
        patch.setenv("RMRECO_MODELS_DIR", str(models))
        yield result


def _champion_run(trained: Trained, name: str) -> str:
    client = MlflowClient(tracking_uri=trained.uri, registry_uri=trained.uri)
    run_id = client.get_model_version_by_alias(name, "champion").run_id
    assert run_id is not None
    return str(run_id)


def _truncated(bank: Path, month: date, out: Path) -> Path:
    """The bank as it was at the end of ``month``: nothing later than it."""
    out.mkdir()
    stamp = pd.Timestamp(month)
    for path in bank.glob("*.parquet"):
        frame = pd.read_parquet(path)
        name = path.stem
        if name in ("account_months", "credit_events"):
            frame = frame[pd.to_datetime(frame["month"]) <= stamp]
        elif name == "holdings":
            frame = frame[pd.to_datetime(frame["start_month"]) <= stamp].copy()
            ended_later = pd.to_datetime(frame["end_month"]) > stamp
            frame["end_month"] = frame["end_month"].astype(object).where(~ended_later, None)
        elif name == "financials":
            frame = frame[frame["year"] < month.year]
        frame.to_parquet(out / path.name, index=False)
    return out


@dataclass
class Service:
    client: TestClient
    headers: dict[str, str]
    db_url: str


def _wait_ready(
    client: TestClient, expected: dict[str, str], headers: dict[str, str]
) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answer = client.get("/readyz", headers=headers).json()  # models: an admin's answer
        if answer["models"] == expected:
            return dict(answer)
        time.sleep(0.5)
    raise AssertionError(f"models {expected} not served: {answer}")


def _versions(trained: Trained) -> dict[str, str]:
    client = MlflowClient(tracking_uri=trained.uri, registry_uri=trained.uri)
    return {
        name: str(client.get_model_version_by_alias(name, "champion").version)
        for name in (CREDIT, CROSS_SELL)
    }


@pytest.fixture(scope="module")
def month(trained: Trained) -> date:
    """The latest month of the credit model's out-of-time test window."""
    scores = _test_scores(trained)
    return pd.Timestamp(scores["month"].max()).date()


def _test_scores(trained: Trained) -> pd.DataFrame:
    local = mlflow.artifacts.download_artifacts(
        run_id=_champion_run(trained, CREDIT), artifact_path="scores", tracking_uri=trained.uri
    )
    return pd.read_parquet(Path(local) / TEST_SCORES)


@pytest.fixture(scope="module")
def service(trained: Trained, month: date) -> Iterator[Service]:
    runner = CliRunner()
    db_url = f"sqlite:///{trained.work / 'service.db'}"
    upgraded = runner.invoke(cli, ["db", "upgrade", "--db", db_url])
    assert upgraded.exit_code == 0, upgraded.output
    history = _truncated(trained.bank, month, trained.work / "as_of")
    # ingest refreshes the snapshots with the champions' settings (read from the registry)
    loaded = runner.invoke(cli, ["ingest", str(history), "--db", db_url])
    assert loaded.exit_code == 0, loaded.output
    engine = create_engine_for(db_url)
    key = issue_key()
    with transaction(session_factory(engine)) as session:
        assert repository.snapshot_params(session) == [
            {**SnapshotParams(LAG, CURE).to_dict(), "ingest_run_id": 1}
        ]
        repository.add_user(
            session, name="admin", role="admin", rm_id=None, key_prefix=key.prefix,
            key_hash=key.hash,
        )  # fmt: skip
    engine.dispose()
    settings = Settings(
        home=trained.work / "svc-home", models_dir=trained.models, database_url=db_url
    )
    app = create_app(settings, tracking_uri=trained.uri, poll_seconds=3600)
    with TestClient(app) as client:
        _wait_ready(client, _versions(trained), {"Authorization": f"Bearer {key.key}"})
        yield Service(client, {"Authorization": f"Bearer {key.key}"}, db_url)


def _score_batch(trained: Trained, month: date, out: Path) -> Path:
    result = CliRunner().invoke(
        cli,
        ["score-batch", "--data", str(trained.bank), "--as-of", f"{month:%Y-%m}", "--out",
         str(out), "--tracking-uri", trained.uri],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def _as_sent(frame: pd.DataFrame, pyfunc: Any) -> pd.DataFrame:
    """The columns of the logged input example, categories as plain text: what a caller of
    the registered model sends (its signature types them as strings)."""
    sent = frame[list(pyfunc.input_example.columns)].copy()
    for name in sent.columns:
        if isinstance(sent[name].dtype, pd.CategoricalDtype):
            sent[name] = sent[name].astype(object).where(sent[name].notna(), None)
    return sent


REASON_FIELDS = ("code", "feature", "value", "unit", "direction", "contribution", "text")


def _features(reasons: Any) -> list[tuple[Any, ...]]:
    """Every field of each reason."""
    rows = json.loads(reasons) if isinstance(reasons, str) else reasons
    return [tuple(r[k] for k in REASON_FIELDS) for r in rows]


def test_credit_scores_agree_from_training_to_batch_to_registry_to_service(
    trained: Trained, month: date, service: Service
) -> None:
    a = _test_scores(trained)
    a = a[pd.to_datetime(a["month"]) == pd.Timestamp(month)].set_index("client_id")
    out = _score_batch(trained, month, trained.work / "batch")
    b = pd.read_parquet(out / "credit.parquet").set_index("client_id")
    financing = pd.read_parquet(out / "financing.parquet")
    assert set(a.index) <= set(b.index)
    ids = sorted(a.index)[:CLIENTS_COMPARED]
    assert len(ids) == CLIENTS_COMPARED

    mlflow.set_tracking_uri(trained.uri)
    mlflow.set_registry_uri(trained.uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{CREDIT}@champion")
    inputs, _ = read_feature_inputs(trained.bank)
    frame = snapshot_frame(inputs, SnapshotParams(LAG, CURE), months=[month])
    frame = frame[frame["client_id"].isin(ids)].set_index("client_id").loc[ids].reset_index()
    c = pyfunc.predict(_as_sent(frame, pyfunc)).set_index(frame["client_id"])

    for client_id in ids:
        answer = service.client.post(
            f"/v1/clients/{client_id}/financing-options", headers=service.headers
        )
        assert answer.status_code == 200, answer.text
        d = answer.json()
        assert d["as_of"] == f"{month:%Y-%m-%d}"
        assert d["model_versions"] == _versions(trained)
        # the decision and ranked options are batch scoring's, propensities included
        rows = financing[financing["client_id"] == client_id]
        assert set(rows["decision"]) == {d["decision"]}
        options = rows.dropna(subset=["product_code"]).sort_values("rank")
        assert [o["product_code"] for o in d["options"]] == options["product_code"].tolist()
        for served, batch_row in zip(d["options"], options.itertuples(), strict=True):
            assert served["limit"] == pytest.approx(batch_row.limit, abs=0.01)
            if served["propensity"] is None:
                assert np.isnan(batch_row.propensity)
            else:
                assert abs(served["propensity"] - batch_row.propensity) <= 1e-9
        expected = a.loc[client_id]
        # training's test scores, batch scoring and the registered model name the PD column by
        # the model's horizon; the service states it beside the PD
        assert d["pd_horizon_months"] == 12
        for source, column in (
            (b.loc[client_id], "pd_12m"),
            (c.loc[client_id], "pd_12m"),
            (d, "pd"),
        ):
            assert abs(float(source[column]) - float(expected["pd_12m"])) <= 1e-9
            assert str(source["grade"]) == str(expected["grade"])
        # the same reasons, codes, values, units and texts, the data's currency named alike:
        # batch and service pass it, training's scores and the registry's model record it
        for source in (b.loc[client_id, "reasons"], c.loc[client_id, "reasons"]):
            assert _features(source) == _features(expected["reasons"])
        assert _features(d["reasons"]) == _features(expected["reasons"])
        assert list(b.loc[client_id, "reason_codes"]) == [r["code"] for r in d["reasons"]]
        # the adverse-action reasons of a decline are batch scoring's too
        batch_adverse = json.loads(rows["adverse_action_reasons"].iloc[0])
        assert batch_adverse == d["adverse_action_reasons"]
        assert list(rows["adverse_reason_codes"].iloc[0]) == [
            r["code"] for r in d["adverse_action_reasons"]
        ]


def test_propensities_agree_from_batch_to_registry_to_service(
    trained: Trained, month: date, service: Service
) -> None:
    batch = pd.read_parquet(
        _score_batch(trained, month, trained.work / "batch-offers") / "cross_sell.parquet"
    )
    ids = sorted(pd.unique(batch["client_id"]))[:CLIENTS_COMPARED]
    mlflow.set_tracking_uri(trained.uri)
    mlflow.set_registry_uri(trained.uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{CROSS_SELL}@champion")
    config = load_propensity_model(f"models:/{CROSS_SELL}@champion").config
    inputs, _ = read_feature_inputs(trained.bank)
    panel = config.cross_sell_panel(inputs, months=[month])
    panel = panel[panel["client_id"].isin(ids)].reset_index(drop=True)
    by_pyfunc = pyfunc.predict(_as_sent(panel, pyfunc))
    registry = {
        (str(c), str(p)): float(v)
        for c, p, v in zip(
            panel["client_id"], panel["product_code"], by_pyfunc["propensity"], strict=True
        )
    }
    compared = options_compared = 0
    for client_id in ids:
        answer = service.client.get(
            f"/v1/clients/{client_id}/recommendations?limit=50", headers=service.headers
        )
        assert answer.status_code == 200, answer.text
        served = {i["product_code"]: i["propensity"] for i in answer.json()["items"]}
        # a financing option carries the same propensity as the list's offer of that product
        # (corporate clients: no credit model of their segment in this test, 422)
        financed = service.client.post(
            f"/v1/clients/{client_id}/financing-options", headers=service.headers
        )
        assert financed.status_code in (200, 422), financed.text
        for option in financed.json().get("options", []):
            if option["product_code"] in served:
                assert abs(option["propensity"] - served[option["product_code"]]) <= 1e-9
                options_compared += 1
        offered = batch[batch["client_id"] == client_id].set_index("product_code")["propensity"]
        assert set(served) == set(offered.index)
        for product, propensity in served.items():
            assert abs(propensity - float(offered[product])) <= 1e-9
            assert abs(propensity - registry[(client_id, product)]) <= 1e-9
            compared += 1
    assert compared >= CLIENTS_COMPARED
    assert options_compared > 0


def _stored_fin_age(db_url: str) -> dict[str, float | None]:
    """``fin_age_months`` of every stored snapshot: the age of the accounts the models read,
    which the financials lag decides."""
    engine = create_engine_for(db_url)
    with transaction(session_factory(engine)) as session:
        rows = session.execute(select(ClientFeatures.client_id, ClientFeatures.features)).all()
    engine.dispose()
    return {str(c): f.get("fin_age_months") for c, f in rows}


def test_a_new_lag_reaches_batch_and_service_with_no_other_edit(
    trained: Trained, month: date, service: Service
) -> None:
    """Runs last: it retrains both models with another financials lag."""
    ids = sorted(pd.read_parquet(trained.work / "batch" / "credit.parquet")["client_id"])[
        :CLIENTS_COMPARED
    ]
    stored_before = _stored_fin_age(service.db_url)
    old = _versions(trained)
    _write_specs(trained.models, NEW_LAG)
    _train(trained)
    new = _versions(trained)
    assert new != old

    # the snapshots were computed with the old lag: the new champions are refused, the old
    # ones stay, and readiness says why
    reload = service.client.post("/v1/admin/models/reload", headers=service.headers)
    assert reload.status_code == 200, reload.text
    ready = service.client.get("/readyz", headers=service.headers).json()
    assert ready["models"] == old
    assert "rmreco features refresh" in ready["errors"][CREDIT]
    assert f"financials_lag_months={NEW_LAG}" in ready["errors"][CREDIT]

    refreshed = CliRunner().invoke(cli, ["features", "refresh", "--db", service.db_url])
    assert refreshed.exit_code == 0, refreshed.output
    service.client.post("/v1/admin/models/reload", headers=service.headers)
    _wait_ready(service.client, new, service.headers)
    engine = create_engine_for(service.db_url)
    with transaction(session_factory(engine)) as session:
        assert repository.snapshot_params(session) == [
            {**SnapshotParams(NEW_LAG, CURE).to_dict(), "ingest_run_id": 1}
        ]
    engine.dispose()

    # the service now reads accounts by the new lag, as a direct computation with it does
    inputs, _ = read_feature_inputs(trained.bank)
    expected = {
        lag: snapshot_frame(inputs, SnapshotParams(lag, CURE), months=[month]).set_index(
            "client_id"
        )["fin_age_months"]
        for lag in (LAG, NEW_LAG)
    }
    stored_after = _stored_fin_age(service.db_url)

    def value(v: Any) -> float | None:
        return None if v is None or np.isnan(v) else float(v)

    # clients whose accounts the two lags date differently (with the longer lag, some have
    # none known yet)
    moved = [
        c for c in expected[NEW_LAG].index
        if value(expected[NEW_LAG][c]) is not None
        and value(expected[LAG][c]) != value(expected[NEW_LAG][c])
    ]  # fmt: skip
    assert len(moved) > 10
    for client_id in moved:
        assert stored_before[client_id] == value(expected[LAG][client_id])
        assert stored_after[client_id] == pytest.approx(value(expected[NEW_LAG][client_id]))

    # batch scoring builds the new model's features with the new lag, and the service agrees
    batch = pd.read_parquet(
        _score_batch(trained, month, trained.work / "batch-new") / "credit.parquet"
    ).set_index("client_id")
    model = load_credit_model(f"models:/{CREDIT}/{new[CREDIT]}")
    frame = snapshot_frame(inputs, SnapshotParams(NEW_LAG, CURE), months=[month])
    frame = frame[model.config.scored(frame)]
    direct = pd.Series(model.predict(frame, with_reasons=False).pd, index=frame["client_id"])
    np.testing.assert_allclose(
        batch.loc[direct.index, "pd_12m"].to_numpy(), direct.to_numpy(), rtol=0, atol=1e-12
    )
    for client_id in ids:
        answer = service.client.post(
            f"/v1/clients/{client_id}/financing-options", headers=service.headers
        ).json()
        assert answer["model_versions"] == new
        assert abs(answer["pd"] - float(batch.loc[client_id, "pd_12m"])) <= 1e-9
