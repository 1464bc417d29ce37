"""One credit model per segment, side by side: a corporate client is refused (422, naming its
segment and the segments served) while only the SME model is registered, and is answered by the
corporate model once ``rmreco train credit-risk --spec corporate_credit_risk.yaml`` has run;
batch scoring grades each client with its segment's model."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rmreco.cli import app as cli
from rmreco.config import Settings
from rmreco.db import repository
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.modeling.spec import load_credit_risk_spec
from rmreco.serving.app import create_app
from rmreco.serving.security import issue_key
from rmreco.synthetic import generate_bank

ROOT = Path(__file__).resolve().parents[2]
SME = load_credit_risk_spec(ROOT / "models" / "sme_credit_risk.yaml").name
CORPORATE = load_credit_risk_spec(ROOT / "models" / "corporate_credit_risk.yaml").name

pytestmark = pytest.mark.slow


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_each_client_is_served_by_its_segments_credit_model(
    tmp_path: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a bank with enough corporates for a corporate model (a low-default book otherwise)
    bank = tmp_path / "bank"
    # the corporate book holds a few dozen defaults: a seed whose corporate scorecard clears
    # its floor (seed 7 does not since the generator's draws changed)
    generate_bank(bank, n_clients=3000, n_months=36, seed=8, corporate_share=0.4)
    models = tmp_path / "models"
    models.mkdir()
    sme = yaml.safe_load((ROOT / "models" / "sme_credit_risk.yaml").read_text())
    sme["model"]["lightgbm"]["num_boost_round"] = 60
    sme["model"]["lightgbm"]["params"]["learning_rate"] = 0.1
    (models / "sme_credit_risk.yaml").write_text(yaml.safe_dump(sme))
    for name in ("corporate_credit_risk.yaml", "credit_policy.yaml"):
        (models / name).write_text((ROOT / "models" / name).read_text())
    monkeypatch.setenv("RMRECO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RMRECO_MODELS_DIR", str(models))
    uri = mlflow_uri
    db_url = f"sqlite:///{tmp_path / 'rmreco.db'}"

    _invoke("train", "credit-risk", "--data", str(bank), "--tracking-uri", uri)
    _invoke("db", "upgrade", "--db", db_url)
    monkeypatch.setenv("RMRECO_TRACKING_URI", uri)  # ingest refreshes with the champions'
    _invoke("ingest", str(bank), "--db", db_url)

    clients = pd.read_parquet(bank / "clients.parquet")
    corporate = clients[clients["segment"] == "corporate"].iloc[0]
    small = clients[clients["segment"] == "sme"].iloc[0]
    engine = create_engine_for(db_url)
    key = issue_key()
    with transaction(session_factory(engine)) as session:
        repository.add_user(
            session, name="crm", role="crm", rm_id=str(corporate["rm_id"]),
            key_prefix=key.prefix, key_hash=key.hash,
        )  # fmt: skip
        admin = issue_key()
        repository.add_user(
            session, name="admin", role="admin", rm_id=None, key_prefix=admin.prefix,
            key_hash=admin.hash,
        )  # fmt: skip
    engine.dispose()
    crm = {"Authorization": f"Bearer {key.key}"}
    settings = Settings(home=tmp_path / "svc", models_dir=models, database_url=db_url)
    app = create_app(settings, tracking_uri=uri, poll_seconds=3600)
    with TestClient(app) as client:
        _wait_for(client, {SME: "1"}, {"Authorization": f"Bearer {admin.key}"})
        path = f"/v1/clients/{corporate['client_id']}/financing-options"
        refused = client.post(path, headers=crm)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "segment_not_served"
        assert error["details"] == {"segment": "corporate", "segments_served": ["sme"]}
        assert "corporate" in error["message"]

        output = _invoke(
            "train", "credit-risk", "--data", str(bank), "--spec",
            str(models / "corporate_credit_risk.yaml"), "--tracking-uri", uri,
        )  # fmt: skip
        assert "promoted" in output
        reload = client.post(
            "/v1/admin/models/reload", headers={"Authorization": f"Bearer {admin.key}"}
        )
        assert reload.status_code == 200, reload.text
        _wait_for(client, {SME: "1", CORPORATE: "1"}, {"Authorization": f"Bearer {admin.key}"})
        answered = client.post(path, headers=crm)
        assert answered.status_code == 200, answered.text
        assert answered.json()["model_versions"] == {CORPORATE: "1"}
        as_admin = client.post(
            f"/v1/clients/{small['client_id']}/financing-options",
            headers={"Authorization": f"Bearer {admin.key}"},
        )
        assert as_admin.json()["model_versions"] == {SME: "1"}

    out = tmp_path / "scores"
    _invoke(
        "score-batch", "--data", str(bank), "--as-of", "2024-06", "--out", str(out),
        "--tracking-uri", uri,
    )  # fmt: skip
    scored = pd.read_parquet(out / "credit.parquet")
    assert dict(scored.groupby("segment")["model_name"].unique().map(list)) == {
        "corporate": [CORPORATE],
        "sme": [SME],
    }
    financing = pd.read_parquet(out / "financing.parquet")
    assert set(financing["client_id"]) == set(scored["client_id"])
    assert set(financing["decision"]) <= {"approve", "refer", "decline"}


def _wait_for(client: TestClient, models: dict[str, str], headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready = client.get("/readyz", headers=headers).json()  # models: an admin's answer
        if ready["models"] == models:
            return
        time.sleep(0.5)
    raise AssertionError(f"models {models} not served: {ready}")
