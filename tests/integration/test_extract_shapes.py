"""Each shape of bank extract end to end, as a bank's data engineer would run it: the folder
written by the generator (``rmreco.synthetic.shapes``) is loaded by ``rmreco ingest``, the
shipped SME credit spec (with the settings the shape needs) is trained and backtested through
the CLI, ``rmreco score-batch`` scores the book, and the service answers a BRM's financing
question for one of the clients. Each run gives a model that ranks, or a refusal that names the
cause and the fix.

Sizes are small (the suite's budget); ``benchmarks/bench_shapes.py`` measures the shapes at
size beside a plain LightGBM.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from typer.testing import CliRunner

from rmreco.cli import app
from rmreco.config import Settings
from rmreco.db import repository
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.features.config import SnapshotParams
from rmreco.features.inputs import read_feature_inputs
from rmreco.features.observations import observation_months
from rmreco.features.snapshots import refresh_client_features
from rmreco.modeling.spec import load_credit_risk_spec, load_cross_sell_spec
from rmreco.serving.app import create_app
from rmreco.serving.security import issue_key
from rmreco.synthetic.extracts import to_month_ends
from rmreco.synthetic.shape_options import ONE_OUTCOME_WINDOW, Shape, ShapeOptions
from rmreco.synthetic.shapes import write_shape
from rmreco.training.registry import CHAMPION

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "models" / "sme_credit_risk.yaml"
CROSS_SELL_SPEC = ROOT / "models" / "cross_sell.yaml"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Size:
    clients: int
    months: int


#: Each shape at a size where a 2% default rate still leaves defaulters in every set. Shapes
#: without account months are cheap, so they get more clients. ``accounts`` is also written
#: with month-end dates (``month_end``): the two only change how rows are read, and together
#: they are the common bank export.
SIZES = {
    Shape.ACCOUNTS: Size(1000, 30),
    Shape.SINGLE_COHORT: Size(2500, 19),
    Shape.STATEMENTS_ONLY: Size(2500, 48),
    Shape.ATTRIBUTES_ONLY: Size(4000, 24),
    Shape.RARE_PRODUCT: Size(1000, 30),
    Shape.SMALL_BOOK: Size(1400, 30),
}


def _credit_spec(shape: Shape, folder: Path) -> Path:
    raw = yaml.safe_load(SPEC.read_text())
    raw["model"]["lightgbm"]["num_boost_round"] = 120
    raw["model"]["lightgbm"]["params"]["learning_rate"] = 0.1
    raw["validation"]["bootstrap_resamples"] = 30
    raw["gates"]["min_auc"] = 0.6  # a small book's test window is noisy; 0.6 still ranks
    if shape in ONE_OUTCOME_WINDOW:
        raw["split"]["kind"] = "client"
    path = folder / "sme_credit_risk.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _cross_sell_spec(folder: Path) -> Path:
    raw = yaml.safe_load(CROSS_SELL_SPEC.read_text())
    raw["model"]["lightgbm"]["num_boost_round"] = 40
    raw["model"]["lightgbm"]["params"].update(learning_rate=0.15, min_data_in_leaf=50)
    raw["model"]["per_product_params"] = {"num_leaves": 7, "min_data_in_leaf": 30}
    raw["model"]["logistic"]["max_iter"] = 200
    raw["validation"]["bootstrap_resamples"] = 30
    raw["gates"]["min_value"] = 0.05
    path = folder / "cross_sell.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _scoring_month(bank: Path) -> pd.Timestamp:
    """The latest month the book's SMEs are observed: their last account month, statements
    becoming known, or the as-of month of an application sample."""
    inputs, _ = read_feature_inputs(bank)
    months = observation_months(inputs, SnapshotParams().financials_lag_months)
    sme = inputs.clients.loc[inputs.clients["segment"] == "sme", "client_id"].astype(str)
    return pd.Timestamp(months.loc[months["client_id"].astype(str).isin(sme), "month"].max())


@pytest.mark.parametrize(
    "shape",
    list(SIZES),
    ids=["accounts+month_end" if s is Shape.ACCOUNTS else s.value for s in SIZES],
)
def test_each_shape_loads_trains_scores_and_answers(
    shape: Shape, tmp_path: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = SIZES[shape]
    bank = tmp_path / "bank"
    write_shape(
        bank,
        shape,
        n_clients=size.clients,
        n_months=size.months,
        seed=3,
        options=ShapeOptions(small_book_clients=1300),
    )
    if shape is Shape.ACCOUNTS:
        assert to_month_ends(bank)  # and every month dated on its last day
    models = tmp_path / "models"
    models.mkdir()
    (models / "credit_policy.yaml").write_text((ROOT / "models" / "credit_policy.yaml").read_text())
    spec = _credit_spec(shape, models)
    home, db = tmp_path / "home", f"sqlite:///{tmp_path / 'rmreco.db'}"
    uri = mlflow_uri
    monkeypatch.setenv("RMRECO_HOME", str(home))
    monkeypatch.setenv("RMRECO_MODELS_DIR", str(models))

    # ingest: a fresh database is created, every table of the shape loaded
    _invoke("ingest", str(bank), "--db", db)

    # train: a model that ranks (the gate's floor) and was promoted
    trained = _invoke("train", "credit-risk", "--data", str(bank), "--spec", str(spec),
                      "--tracking-uri", uri)  # fmt: skip
    assert "promoted" in trained, trained
    name = load_credit_risk_spec(spec).name
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias(name, CHAMPION)
    run = client.get_run(version.run_id)
    assert run.data.metrics["oot_auc"] > 0.6
    params = run.data.params
    if shape is Shape.STATEMENTS_ONLY:
        # the account features were left out, the bank's 40 ratios were added
        assert "inflow_3m_log" in params["features_left_out"]
        assert params["features_added"].count("financials__ratio_") == 40
    if shape is Shape.ATTRIBUTES_ONLY:
        assert params["features_added"].startswith("clients__")

    if shape is Shape.RARE_PRODUCT:
        # the cross-sell model leaves the rare product out, says so, and still trains
        crossed = _invoke("train", "cross-sell", "--data", str(bank), "--spec",
                          str(_cross_sell_spec(models)), "--tracking-uri", uri)  # fmt: skip
        assert "fx_hedging" in crossed, crossed
        cross_name = load_cross_sell_spec(models / "cross_sell.yaml").name
        assert client.get_model_version_by_alias(cross_name, CHAMPION)

    # evaluate: the champion backtested with its own settings
    evaluated = _invoke("evaluate", "--data", str(bank), "--spec", str(spec), "--tracking-uri", uri)
    assert "AUC" in evaluated or "auc" in evaluated, evaluated

    # score-batch at the latest month the book's SMEs are observed
    as_of = _scoring_month(bank)
    out = tmp_path / "scores"
    _invoke("score-batch", "--data", str(bank), "--as-of", f"{as_of:%Y-%m}", "--out", str(out),
            "--tracking-uri", uri)  # fmt: skip
    credit = pd.read_parquet(out / "credit.parquet")
    assert len(credit) > 50
    assert credit["pd_12m"].between(0, 1).all()
    assert credit["pd_12m"].nunique() > 10  # scores that tell clients apart

    # one service answer: a BRM asks what financing one of their scored SMEs can get
    engine = create_engine_for(db)
    try:
        with transaction(session_factory(engine)) as session:
            refresh_client_features(session, SnapshotParams())
            clients = pd.read_parquet(bank / "clients.parquet")
            scored = clients[clients["client_id"].astype(str).isin(credit["client_id"])]
            sme = scored[(scored["segment"] == "sme") & scored["rm_id"].notna()].iloc[0]
            key = issue_key()
            repository.add_user(
                session, name="brm", role="brm", rm_id=str(sme["rm_id"]),
                key_prefix=key.prefix, key_hash=key.hash,
            )  # fmt: skip
    finally:
        engine.dispose()
    settings = Settings(home=tmp_path / "svc", models_dir=models, database_url=db)
    with TestClient(create_app(settings, tracking_uri=uri, poll_seconds=3600)) as service:
        deadline = time.monotonic() + 120  # models load in the background
        while not service.get("/readyz").json()["ready"]:
            assert time.monotonic() < deadline, service.get("/readyz").json()
            time.sleep(0.3)
        answer = service.post(
            f"/v1/clients/{sme['client_id']}/financing-options",
            json={},
            headers={"Authorization": f"Bearer {key.key}"},
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert 0 < body["pd"] < 1, body
    assert body["pd_horizon_months"] == 12
    assert body["grade"] is not None
    assert body["decision"] in ("approve", "refer", "decline")
    expected = credit.set_index("client_id").loc[str(sme["client_id"]), "pd_12m"]
    # the client was scored at the latest month SMEs are observed, which is its own latest
    # snapshot: the service answers from the same month, with the same PD (train = batch = serve)
    assert pd.Timestamp(body["as_of"]) == as_of
    assert body["pd"] == pytest.approx(float(expected), rel=1e-6)
    json.dumps(body)  # the whole answer is plain JSON
