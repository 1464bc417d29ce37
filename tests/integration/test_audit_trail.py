"""An audit trail a regulator can use (issue 13, finding 10 and two of 11).

- Each served decision records the models that answered: name, version, the MLflow run that
  trained the version, the sha256 of the model files the service loaded, and whether they came
  through the registry or from the service's local copy; with the policy version, the inputs
  and the output.
- A thousand financing decisions re-score from their stored inputs, through the registered
  version's own pyfunc model with no cast (float32 was demanded, and a null refused), and
  through its files: the same PD (to 1e-9), grade and ordered reasons.
- The audit tables refuse UPDATE and DELETE (and TRUNCATE) on SQLite and PostgreSQL.
- The model store keeps the local copies it needs (the version in use and the one it replaced)
  and removes the others; a local copy whose files changed since the download is refused.

One small bank and one trained credit model serve the tests marked slow (on SQLite: the
service on PostgreSQL is test_service's); the append-only tests run on both databases.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from served_bank import trained_full
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from rmreco.config import Settings
from rmreco.data.ingest import ingest_folder
from rmreco.db import repository, schema
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.db.migrate import upgrade
from rmreco.domain.names import CHAMPION
from rmreco.features.config import SnapshotParams
from rmreco.features.snapshots import refresh_client_features, stored_params
from rmreco.modeling.adverse import default_reason
from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.pyfunc import MODEL_ARTIFACT, read_model
from rmreco.modeling.spec import load_credit_risk_spec, load_cross_sell_spec
from rmreco.serving.app import create_app
from rmreco.serving.model_store import (
    LAST_GOOD_FILE,
    ModelKind,
    ModelStore,
    artifact_sha256,
    copy_lock,
)
from rmreco.serving.security import issue_key

ROOT = Path(__file__).resolve().parents[2]
CREDIT = load_credit_risk_spec(ROOT / "models" / "sme_credit_risk.yaml").name
CROSS_SELL = load_cross_sell_spec(ROOT / "models" / "cross_sell.yaml").name
POLICY = ROOT / "models" / "credit_policy.yaml"
DECISIONS = 1000
UNREACHABLE = "http://127.0.0.1:9"


@dataclass
class Served:
    """The bank in a SQLite database, its trained credit model in a registry, and the service
    answering through a TestClient."""

    client: TestClient
    app: FastAPI
    headers: dict[str, str]
    db_url: str
    db: sessionmaker[Session]
    tracking: str
    home: Path
    #: SME clients, whom the credit model serves
    clients: list[str]
    #: the versions the service serves, by model name
    versions: dict[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("audit")
    models = trained_full(tmp_path_factory)
    bank, tracking = models.bank, models.tracking_uri
    trained, cross = models.credit, models.cross_sell

    db_url = f"sqlite:///{work / 'rmreco.db'}"
    upgrade(db_url)
    engine = create_engine_for(db_url)
    # a thousand answers in seconds: the per-key rate limit is not under test here
    settings = Settings(home=work / "home", database_url=db_url, rate_limit_per_minute=1_000_000)
    ingest_folder(bank, engine, settings=settings)
    factory = session_factory(engine)
    with transaction(factory) as session:
        refresh_client_features(session, SnapshotParams())
    key = issue_key()
    with transaction(factory) as session:
        repository.add_user(
            session, name="admin", role="admin", rm_id=None, key_prefix=key.prefix,
            key_hash=key.hash,
        )  # fmt: skip
    clients = pd.read_parquet(bank / "clients.parquet")
    sme = sorted(clients.loc[clients["segment"] == "sme", "client_id"].astype(str))
    app = create_app(settings, tracking_uri=tracking, policy_path=POLICY, poll_seconds=3600)
    try:
        with TestClient(app) as client:
            headers = {"Authorization": f"Bearer {key.key}"}
            versions = {CREDIT: trained.version, CROSS_SELL: cross.version}
            _wait_for(client, headers, versions)
            yield Served(
                client, app, headers, db_url, factory, tracking, settings.home, sme,
                versions,
            )  # fmt: skip
    finally:
        engine.dispose()


def _wait_for(client: TestClient, headers: dict[str, str], models: dict[str, str]) -> None:
    """Wait until the service serves ``models`` (``/readyz`` names them to an admin)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready = client.get("/readyz", headers=headers).json()
        if ready["models"] == models:
            return
        time.sleep(0.1)
    raise AssertionError(f"models {models} not served: {ready}")


def _decide(svc: Served, client_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = svc.client.post(
        f"/v1/clients/{client_id}/financing-options", headers=svc.headers, json=body
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _registry(svc: Served) -> MlflowClient:
    return MlflowClient(tracking_uri=svc.tracking, registry_uri=svc.tracking)


def _registered(svc: Served, dst: Path) -> dict[str, dict[str, Any]]:
    """What an auditor finds in the registry of each served version: its training run, and
    the sha256 of its model files."""
    mlflow.set_tracking_uri(svc.tracking)
    mlflow.set_registry_uri(svc.tracking)
    out = {}
    for name, version in svc.versions.items():
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=str(dst / name)
        )
        out[name] = {
            "version": version,
            "run_id": _registry(svc).get_model_version(name, version).run_id,
            "artifact_sha256": artifact_sha256(Path(local) / "artifacts" / MODEL_ARTIFACT),
            "served_from": "registry",
        }
    return out


@pytest.mark.slow
def test_each_decision_records_the_model_run_artifact_digest_and_source(
    served: Served, tmp_path: Path
) -> None:
    answer = _decide(served, served.clients[0], {"amount": 50_000, "tenor_months": 24})
    # the credit model's PD, and the cross-sell model's propensities that rank the options
    assert answer["model_versions"] == served.versions
    # the API answer is as it was: the provenance is for the audit, not for the RM
    assert "model_provenance" not in answer
    expected = _registered(served, tmp_path)
    with served.db() as session:
        rows = session.scalars(
            select(schema.Recommendation).where(
                (schema.Recommendation.id == answer["decision_id"])
                | (schema.Recommendation.decision_id == answer["decision_id"])
            )
        ).all()
    assert len(rows) == 1 + len(answer["options"])
    for row in rows:
        assert row.model_versions == served.versions
        assert row.model_provenance == expected
        assert row.policy_version == answer["policy_version"]
    decision = next(r for r in rows if r.id == answer["decision_id"])
    assert decision.features
    assert decision.request
    assert decision.request["amount"] == 50_000
    assert (decision.output["pd"], decision.output["grade"]) == (answer["pd"], answer["grade"])
    assert decision.output["reasons"] == answer["reasons"]
    assert decision.output["in_default"] is False


@pytest.mark.slow
def test_each_cross_sell_row_records_its_models_run_artifact_digest_and_source(
    served: Served, tmp_path: Path
) -> None:
    page = served.client.get(
        f"/v1/clients/{served.clients[2]}/recommendations",
        headers=served.headers,
        params={"limit": 3},
    )
    assert page.status_code == 200, page.text
    items = page.json()["items"]
    assert items
    expected = _registered(served, tmp_path)
    with served.db() as session:
        for item in items:
            row = session.get(schema.Recommendation, item["recommendation_id"])
            assert row is not None
            assert row.kind == "cross_sell"
            assert row.features
            # the cross-sell model that scored the offer and the credit model that graded it
            assert row.model_versions == served.versions
            assert row.model_provenance == expected


@pytest.mark.slow
def test_a_thousand_decisions_rescore_from_their_stored_inputs_to_the_same_pd_grade_and_reasons(
    served: Served,
) -> None:
    with served.db() as session:
        before = len(repository.audited_answers(session, "financing"))
    for i in range(DECISIONS):
        _decide(served, served.clients[i % len(served.clients)])
    with served.db() as session:
        decisions = repository.audited_answers(session, "financing")[before:]
    assert len(decisions) == DECISIONS
    assert sum(d.output["in_default"] for d in decisions) > 0  # the default rule is exercised
    assert sum(d.output["decision"] == "decline" for d in decisions) > 0
    versions = {d.model_provenance[CREDIT]["version"] for d in decisions if d.model_provenance}
    assert len(versions) == 1
    version = versions.pop()

    # the registered version's own pyfunc model, fed the stored features as they are: JSON
    # numbers (float64, int) and nulls, no cast
    mlflow.set_tracking_uri(served.tracking)
    mlflow.set_registry_uri(served.tracking)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{CREDIT}/{version}")
    batch = pyfunc.predict(pd.DataFrame([d.features for d in decisions]))
    pd_column = next(c for c in batch.columns if c.startswith("pd_"))
    # and the same version's files, read as the service reads them
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{CREDIT}/{version}")
    model = read_model(Path(local) / "artifacts" / MODEL_ARTIFACT)
    assert isinstance(model, CreditRiskModel)
    by_files = model.predict_records([d.features for d in decisions])

    for i, decision in enumerate(decisions):
        stored = decision.output
        rescored = batch.iloc[i]
        pd_, grade = float(rescored[pd_column]), str(rescored["grade"])
        reasons = json.loads(rescored["reasons"])
        assert abs(pd_ - float(by_files.pd[i])) <= 1e-9
        assert [r.to_dict() for r in by_files.reasons[i]] == reasons
        if stored["in_default"]:
            # the decision's rule: a client in default is graded D with a PD of 1 whatever
            # the model says, and the default is its one reason
            pd_, grade, reasons = 1.0, "D", [default_reason().to_dict()]
        case = (decision.id, decision.client_id)
        assert abs(pd_ - stored["pd"]) <= 1e-9, case
        assert grade == stored["grade"], case
        assert reasons == stored["reasons"], case
        if stored["decision"] == "decline" and not stored["in_default"]:
            # the features a decline states are the re-scored reasons, in their order
            told = [r for r in stored["adverse_action_reasons"] if r["source"] == "model"]
            codes = [r["code"] for r in reasons]
            assert [r["code"] for r in told] == [c for c in codes if c in {t["code"] for t in told}]

    # one decision at a time, as an auditor checks a complaint: the rows with a null feature
    # (most of them) were refused by the pyfunc model's float32 signature
    with_nulls = [d for d in decisions if None in d.features.values()][:50]
    assert with_nulls
    for decision in with_nulls:
        one = pyfunc.predict(pd.DataFrame([decision.features])).iloc[0]
        if not decision.output["in_default"]:
            assert abs(float(one[pd_column]) - decision.output["pd"]) <= 1e-9
            assert json.loads(one["reasons"]) == decision.output["reasons"]


@pytest.mark.slow
def test_the_pyfunc_model_refuses_text_in_a_number_column(served: Served) -> None:
    with served.db() as session:
        features = dict(repository.audited_answers(session, "financing", limit=1)[0].features)
    mlflow.set_tracking_uri(served.tracking)
    mlflow.set_registry_uri(served.tracking)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{CREDIT}@{CHAMPION}")
    with pytest.raises(Exception, match="dpd_3m: '1' is not a number"):
        pyfunc.predict(pd.DataFrame([features | {"dpd_3m": "1"}]))


@pytest.mark.slow
def test_a_decision_served_from_the_local_copy_says_so(served: Served) -> None:
    # a second service on the same home, whose registry cannot be reached, serves the local
    # copy the first one kept: its decisions say so, with the same run and digest
    settings = Settings(
        home=served.home, database_url=served.db_url, rate_limit_per_minute=1_000_000
    )
    app = create_app(settings, tracking_uri=UNREACHABLE, policy_path=POLICY, poll_seconds=3600)
    with TestClient(app) as client:
        _wait_for(client, served.headers, served.versions)
        answer = client.post(
            f"/v1/clients/{served.clients[1]}/financing-options", headers=served.headers
        )
        assert answer.status_code == 200, answer.text
        decision_id = answer.json()["decision_id"]
    by_registry = _decide(served, served.clients[1])
    with served.db() as session:
        local = session.get(schema.Recommendation, decision_id)
        remote = session.get(schema.Recommendation, by_registry["decision_id"])
        assert local is not None
        assert remote is not None
        assert local.model_provenance is not None
        assert remote.model_provenance is not None
        assert set(local.model_provenance) == set(remote.model_provenance) == set(served.versions)
        for name in served.versions:
            assert local.model_provenance[name]["served_from"] == "local_copy"
            assert remote.model_provenance[name]["served_from"] == "registry"
            for field in ("version", "run_id", "artifact_sha256"):
                assert local.model_provenance[name][field] == remote.model_provenance[name][field]


def _store(svc: Served, cache_dir: Path, tracking: str) -> ModelStore:
    """A model store of the credit model on the module's database, as the service builds it."""

    def check_rows() -> list[dict[str, Any]]:
        with transaction(svc.db, read_only=True) as session:
            return repository.sample_features(session)

    def snapshot_params() -> list[SnapshotParams | None]:
        with transaction(svc.db, read_only=True) as session:
            return stored_params(repository.snapshot_params(session))

    return ModelStore(
        tracking_uri=tracking,
        cache_dir=cache_dir,
        kinds=[ModelKind(CREDIT, "credit_risk")],
        check_rows=check_rows,
        snapshot_params=snapshot_params,
    )


@pytest.mark.slow
def test_a_local_copy_whose_files_changed_since_the_download_is_refused(
    served: Served, tmp_path: Path
) -> None:
    cache = tmp_path / "served-models"
    shutil.copytree(served.home / "served-models", cache)
    intact = _store(served, cache, UNREACHABLE)
    intact.load_local_copies()
    assert intact.current[CREDIT].source == "local_copy"
    version = json.loads((cache / CREDIT / LAST_GOOD_FILE).read_text())["version"]
    model_json = cache / CREDIT / version / MODEL_ARTIFACT / "model.json"
    model_json.write_text(model_json.read_text() + "\n")
    changed = _store(served, cache, UNREACHABLE)
    changed.load_local_copies()
    assert CREDIT not in changed.current
    assert "changed since they were downloaded" in changed.last_errors[CREDIT]


@pytest.mark.slow
def test_a_replaced_version_leaves_only_the_local_copies_of_the_current_and_the_previous(
    served: Served, tmp_path: Path
) -> None:
    registry = _registry(served)
    first = registry.get_model_version_by_alias(CREDIT, CHAMPION)
    assert first.source is not None
    cache = tmp_path / "served-models"
    store = _store(served, cache, served.tracking)
    assert store.refresh() == [CREDIT]
    try:
        served_versions = [str(first.version)]
        for _ in range(3):
            # the same files registered again: a new version for the alias to move to
            again = registry.create_model_version(CREDIT, first.source, run_id=first.run_id)
            registry.set_registered_model_alias(CREDIT, CHAMPION, again.version)
            assert store.refresh() == [CREDIT]
            assert store.current[CREDIT].version == str(again.version)
            served_versions.append(str(again.version))
            kept = sorted(p.name for p in (cache / CREDIT).iterdir() if p.is_dir())
            assert kept == sorted(served_versions[-2:]), kept
        # a restart serves the last good copy, and the store never lost a copy it needed
        restarted = _store(served, cache, UNREACHABLE)
        restarted.load_local_copies()
        assert restarted.current[CREDIT].version == served_versions[-1]
    finally:
        registry.set_registered_model_alias(CREDIT, CHAMPION, first.version)


@pytest.mark.slow
def test_a_worker_downloads_reads_and_checks_a_copy_only_while_it_holds_its_lock(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the workers of `rmreco serve --workers N` share the local copies; without the lock one
    # worker's download deleted the files another was reading, which then refused the version
    # until its next poll (seen in CI: two workers on PostgreSQL, one never ready)
    cache = tmp_path / "served-models"
    store = _store(served, cache, served.tracking)
    seen: list[tuple[str, bool]] = []
    download, checked = store._download, store._checked

    def another_worker_may_take(version: str) -> bool:
        with copy_lock(cache / CREDIT, version, wait=False) as held:
            return held

    def watched_download(name: str, version: str, folder: Path) -> None:
        seen.append(("download", another_worker_may_take(version)))
        download(name, version, folder)

    def watched_check(kind: Any, folder: Path) -> Any:
        seen.append(("check", another_worker_may_take(folder.parent.name)))
        return checked(kind, folder)

    monkeypatch.setattr(store, "_download", watched_download)
    monkeypatch.setattr(store, "_checked", watched_check)
    assert store.refresh() == [CREDIT], store.last_errors
    assert seen == [("download", False), ("check", False)]
    # and two stores on one folder, loading at once, both serve the version
    stores = [_store(served, tmp_path / "shared", served.tracking) for _ in range(2)]
    start = threading.Barrier(2)
    swapped: list[list[str]] = [[], []]

    def load(i: int) -> None:
        start.wait()
        swapped[i] = stores[i].refresh()

    threads = [threading.Thread(target=load, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert swapped == [[CREDIT], [CREDIT]], [s.last_errors for s in stores]


@pytest.fixture
def audited(db_url: str) -> Iterator[sessionmaker[Session]]:
    """A database at the newest revision with two recommendations, the first with feedback
    (so that a refused DELETE of the second is the trigger's, not the foreign key's)."""
    upgrade(db_url)
    engine = create_engine_for(db_url)
    factory = session_factory(engine)
    with transaction(factory) as session:
        session.add(schema.RelationshipManager(rm_id="R1", name="Ann", role="brm"))
        session.add(
            schema.Product(product_code="LOAN", name="Loan", kind="financing", segments="sme")
        )
        session.flush()
        session.add(schema.Client(client_id="C1", segment="sme", rm_id="R1"))
        session.flush()
        user = repository.add_user(
            session, name="ann", role="brm", rm_id="R1", key_prefix="p", key_hash="h"
        )
        repository.add_recommendations(
            session,
            [
                {
                    "id": rec_id,
                    "user_id": user,
                    "client_id": "C1",
                    "kind": "cross_sell",
                    "product_code": "LOAN",
                    "rank": 1,
                    "model_versions": {"m": "1"},
                    "output": {"propensity": 0.3},
                }
                for rec_id in ("rec-1", "rec-2")
            ],
        )
        repository.add_feedback(
            session, recommendation_id="rec-1", client_id="C1", product_code="LOAN",
            user_id=user, outcome="offered", reason=None, amount=None,
        )  # fmt: skip
    try:
        yield factory
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE recommendations SET output = '{}'",
        "UPDATE recommendations SET rank = 2 WHERE id = 'rec-1'",
        "DELETE FROM recommendations WHERE id = 'rec-2'",
        "UPDATE feedback SET outcome = 'accepted'",
        "DELETE FROM feedback WHERE recommendation_id = 'rec-1'",
    ],
)
def test_the_audit_tables_refuse_update_and_delete(
    audited: sessionmaker[Session], statement: str
) -> None:
    with audited() as session:
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text(statement))
        session.rollback()
    with audited() as session:
        assert session.scalar(select(func.count()).select_from(schema.Recommendation)) == 2
        assert session.scalar(select(func.count()).select_from(schema.Feedback)) == 1
        assert session.scalar(select(schema.Feedback.outcome)) == "offered"
        assert session.scalars(select(schema.Recommendation.rank)).all() == [1, 1]


@pytest.mark.postgres
def test_the_audit_tables_refuse_truncate_on_postgresql(postgres_url: str) -> None:
    upgrade(postgres_url)
    engine = create_engine_for(postgres_url)
    try:
        for table in ("recommendations", "feedback"):
            with engine.connect() as connection, pytest.raises(DBAPIError, match="append-only"):
                connection.execute(text(f"TRUNCATE {table} CASCADE"))
    finally:
        engine.dispose()
