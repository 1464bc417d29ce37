"""Personal clients end to end on a small synthetic bank: generated with PRMs and the personal
products, loaded by ingest, and the shipped personal cross-sell spec trained through the CLI on
the persons alone, ranking their products better than popularity does."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from sqlalchemy import select
from typer.testing import CliRunner

from rmreco.cli import app
from rmreco.config import Settings
from rmreco.data.ingest import ingest_folder
from rmreco.db import repository
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.db.migrate import upgrade
from rmreco.db.schema import Client, RelationshipManager
from rmreco.domain.contract import CLIENTS, Segment
from rmreco.features.config import SnapshotParams
from rmreco.features.snapshots import refresh_client_features
from rmreco.modeling.spec import load_cross_sell_spec
from rmreco.serving.app import create_app
from rmreco.serving.security import issue_key
from rmreco.synthetic import PERSONAL_PRODUCT_CODES, generate_bank
from rmreco.training.registry import CHAMPION

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "models" / "personal_cross_sell.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bank") / "bank"
    generate_bank(out, n_clients=1500, n_months=30, seed=5, personal_share=0.5)
    return out


def _fast_spec(tmp_path: Path) -> Path:
    """The shipped spec with a short fit (few, larger boosting steps) and a low floor."""
    raw = yaml.safe_load(SPEC.read_text())
    raw["model"]["lightgbm"]["num_boost_round"] = 40
    raw["model"]["lightgbm"]["params"].update(learning_rate=0.15, min_data_in_leaf=50)
    raw["model"]["per_product_params"] = {"num_leaves": 7, "min_data_in_leaf": 30}
    raw["model"]["logistic"]["max_iter"] = 200
    raw["gates"]["min_value"] = 0.05
    path = tmp_path / "personal.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_ingest_loads_persons_with_their_prms(bank: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rmreco.db'}"
    upgrade(url)
    engine = create_engine_for(url)
    try:
        summary = ingest_folder(bank, engine, settings=Settings(home=tmp_path / "home"))
        clients = pd.read_parquet(bank / f"{CLIENTS.name}.parquet")
        assert summary.rows[CLIENTS.name] == len(clients)
        with transaction(session_factory(engine)) as session:
            rows = session.execute(
                select(Client.segment, Client.sector, Client.turnover, RelationshipManager.role)
                .join(RelationshipManager, Client.rm_id == RelationshipManager.rm_id)
                .where(Client.segment == Segment.PERSONAL.value)
            ).all()
    finally:
        engine.dispose()
    assert len(rows) == (clients["segment"] == Segment.PERSONAL.value).sum() > 500
    assert {role for *_, role in rows} == {"prm"}
    assert all(sector is None and turnover is None for _, sector, turnover, _ in rows)


def test_the_personal_spec_trains_on_persons_and_beats_popularity(
    bank: Path, tmp_path: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_cross_sell_spec(SPEC)
    assert spec.segments == (Segment.PERSONAL,)
    assert spec.name == "rmreco-personal-cross-sell-3m"
    monkeypatch.setenv("RMRECO_HOME", str(tmp_path / "home"))
    uri = mlflow_uri
    trained = CliRunner().invoke(
        app,
        ["train", "cross-sell", "--data", str(bank), "--spec", str(_fast_spec(tmp_path)),
         "--tracking-uri", uri],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "promoted" in trained.output

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias(spec.name, CHAMPION)
    run = client.get_run(version.run_id)
    assert run.data.params["segments"] == Segment.PERSONAL.value
    metrics = run.data.metrics
    # popularity scores every person alike within a product (one segment): its per-product AUC
    # is 0.5, and its ranking of a person's products is the same for everyone
    assert metrics["oot_map_at_5"] > metrics["popularity_oot_map_at_5"]
    aucs = {k.removeprefix("oot_auc_"): v for k, v in metrics.items() if k.startswith("oot_auc_")}
    assert aucs, "no product with both outcomes in the test window"
    assert set(aucs) <= set(PERSONAL_PRODUCT_CODES), "a business product scored for persons"
    assert max(aucs.values()) > 0.65, aucs


def test_a_prm_list_holds_personal_clients_scored_by_the_personal_model(
    bank: Path, tmp_path: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two cross-sell models side by side, one per segment family: a PRM's list holds only
    their personal clients and personal products, from the personal model; a CRM's list only
    corporates and business products, from the business model."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "credit_policy.yaml").write_text((ROOT / "models" / "credit_policy.yaml").read_text())
    business = yaml.safe_load((ROOT / "models" / "cross_sell.yaml").read_text())
    business["model"]["lightgbm"]["num_boost_round"] = 30
    business["model"]["lightgbm"]["params"].update(learning_rate=0.15, min_data_in_leaf=50)
    business["model"]["per_product_params"] = {"num_leaves": 7, "min_data_in_leaf": 30}
    business["model"]["logistic"]["max_iter"] = 200
    business["gates"]["min_value"] = 0.0
    (models / "cross_sell.yaml").write_text(yaml.safe_dump(business))
    _fast_spec(tmp_path).rename(models / "personal_cross_sell.yaml")
    monkeypatch.setenv("RMRECO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RMRECO_MODELS_DIR", str(models))
    uri = mlflow_uri
    for spec in ("cross_sell.yaml", "personal_cross_sell.yaml"):
        trained = CliRunner().invoke(
            app,
            ["train", "cross-sell", "--data", str(bank), "--spec", str(models / spec),
             "--tracking-uri", uri],
        )  # fmt: skip
        assert trained.exit_code == 0, trained.output
    db_url = f"sqlite:///{tmp_path / 'rmreco.db'}"
    upgrade(db_url)
    engine = create_engine_for(db_url)
    clients = pd.read_parquet(bank / f"{CLIENTS.name}.parquet")
    rms = pd.read_parquet(bank / "relationship_managers.parquet")
    keys: dict[str, str] = {}
    try:
        ingest_folder(bank, engine, settings=Settings(home=tmp_path / "home"))
        with transaction(session_factory(engine)) as session:
            refresh_client_features(session, SnapshotParams())
            for role in ("prm", "crm"):
                rm = str(rms.loc[rms["role"] == role, "rm_id"].iloc[0])
                key = issue_key()
                repository.add_user(
                    session, name=role, role=role, rm_id=rm, key_prefix=key.prefix,
                    key_hash=key.hash,
                )  # fmt: skip
                keys[role] = key.key
                keys[f"{role}_rm"] = rm
            ds = issue_key()  # /readyz names the models served to a data scientist
            repository.add_user(
                session, name="ds", role="data_scientist", rm_id=None, key_prefix=ds.prefix,
                key_hash=ds.hash,
            )  # fmt: skip
    finally:
        engine.dispose()
    personal_name = load_cross_sell_spec(models / "personal_cross_sell.yaml").name
    settings = Settings(home=tmp_path / "svc", models_dir=models, database_url=db_url)
    with TestClient(create_app(settings, tracking_uri=uri, poll_seconds=3600)) as client:
        deadline = time.monotonic() + 120
        ready = {"Authorization": f"Bearer {ds.key}"}
        while len(client.get("/readyz", headers=ready).json()["models"]) < 2:
            assert time.monotonic() < deadline, client.get("/readyz", headers=ready).json()
            time.sleep(0.5)
        prm = {"Authorization": f"Bearer {keys['prm']}"}
        page = client.get(f"/v1/rms/{keys['prm_rm']}/cross-sell?limit=200", headers=prm)
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["items"], "a PRM's portfolio has offers"
        assert body["model_versions"] == {personal_name: "1"}
        mine = set(clients.loc[clients["rm_id"] == keys["prm_rm"], "client_id"])
        assert {i["client_id"] for i in body["items"]} <= mine
        assert {i["segment"] for i in body["items"]} == {Segment.PERSONAL.value}
        assert {i["product_code"] for i in body["items"]} <= set(PERSONAL_PRODUCT_CODES)
        # no credit model grades persons here: the rows say so rather than make one up
        assert all(i["grade"] is None and i["decision"] is None for i in body["items"])
        crm = {"Authorization": f"Bearer {keys['crm']}"}
        business_page = client.get(f"/v1/rms/{keys['crm_rm']}/cross-sell?limit=200", headers=crm)
        assert business_page.status_code == 200, business_page.text
        items = business_page.json()["items"]
        assert items
        assert {i["segment"] for i in items} <= {Segment.CORPORATE.value, Segment.SME.value}
        assert not {i["product_code"] for i in items} & set(PERSONAL_PRODUCT_CODES)
        # a PRM's client is not the CRM's to read
        person = body["items"][0]["client_id"]
        assert client.get(f"/v1/clients/{person}/recommendations", headers=crm).status_code == 404
        one = client.get(f"/v1/clients/{person}/recommendations", headers=prm)
        assert one.status_code == 200, one.text
        assert {i["product_code"] for i in one.json()["items"]} <= set(PERSONAL_PRODUCT_CODES)
