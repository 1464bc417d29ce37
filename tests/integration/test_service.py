"""The service against a real uvicorn server, on SQLite and PostgreSQL: authentication,
object-level authorisation, financing options with their audit rows, feedback, KPIs, model
reload, the local copy of the last good model, cross-sell lists, and a retryable 503 when the
audit cannot be written.

One server per database serves the whole module (loading a bank and starting the service cost
far more than any test). Tests that change state keep to their own relationship manager and
user, count rows as differences, or put back what they change, so that they hold in any order.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi import FastAPI
from served_bank import empty_database, serve_in_thread, serve_workers, trained_full
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from rmreco.config import Settings
from rmreco.data.ingest import ingest_folder
from rmreco.db import repository, schema
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.db.migrate import upgrade
from rmreco.features.config import SnapshotParams
from rmreco.features.snapshots import refresh_client_features
from rmreco.modeling.policy import load_policy
from rmreco.modeling.spec import load_credit_risk_spec, load_cross_sell_spec
from rmreco.serving.app import create_app
from rmreco.serving.security import issue_key

ROOT = Path(__file__).resolve().parents[2]
#: the registered names, as the shipped specs spell them
CREDIT = load_credit_risk_spec(ROOT / "models" / "sme_credit_risk.yaml").name
CROSS_SELL = load_cross_sell_spec(ROOT / "models" / "cross_sell.yaml").name
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_full(tmp_path_factory).bank


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> str:
    models = trained_full(tmp_path_factory)
    cross = models.cross_sell
    # trained after a credit champion, on a bank with a truth of take-up: the financing order
    # weighted by the client's propensity agrees better with the truth than profit alone
    assert cross.metrics["financing_ndcg_at_3"] > cross.metrics["financing_ndcg_at_3_by_profit"]
    return models.tracking_uri


@dataclass
class Service:
    url: str
    keys: dict[str, str]
    db_url: str
    #: sessions on the service's database, for the tests' own reads and changes
    db: sessionmaker[Session]
    #: the service's home (its local copies of the served models)
    home: Path
    clients: dict[str, list[str]]  # rm_id -> SME client ids
    #: the RMs of brm_a, brm_b and brm_c
    rms: tuple[str, str, str]
    #: the served app (its runtime's clock is moved to test contact windows)
    app: FastAPI


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database for the module's server: a SQLite file, then a new PostgreSQL database
    (the conftest's ``db_url`` is one per test)."""
    with empty_database(request.param, tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="module")
def service(
    bank: Path, tracking: str, database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """The bank loaded into ``database`` and served by one uvicorn server for the module."""
    upgrade(database)
    home = tmp_path_factory.mktemp("service") / "home"
    engine = create_engine_for(database)
    settings = Settings(home=home, database_url=database)
    ingest_folder(bank, engine, settings=settings)
    factory = session_factory(engine)
    with transaction(factory) as session:
        refresh_client_features(session, SnapshotParams())
    clients = pd.read_parquet(bank / "clients.parquet")
    sme = clients[clients["segment"] == "sme"]
    rms = tuple(str(rm) for rm in sme["rm_id"].value_counts().index[:3])
    keys = {}
    with transaction(factory) as session:
        for name, role, rm in (
            ("brm_a", "brm", rms[0]),
            ("brm_b", "brm", rms[1]),
            ("brm_c", "brm", rms[2]),
            ("admin", "admin", None),
            ("ds", "data_scientist", None),
            ("gone", "brm", rms[0]),
        ):
            key = issue_key()
            repository.add_user(
                session, name=name, role=role, rm_id=rm, key_prefix=key.prefix, key_hash=key.hash
            )
            keys[name] = key.key
        repository.revoke_user(session, "gone", pd.Timestamp.now(tz="UTC").to_pydatetime())
    app = create_app(
        settings,
        tracking_uri=tracking,
        policy_path=ROOT / "models" / "credit_policy.yaml",
        poll_seconds=3600,
    )
    try:
        with serve_in_thread(app) as url:
            admin = {"Authorization": f"Bearer {keys['admin']}"}
            _wait_ready(url, until=lambda r: len(r["models"]) == 2, headers=admin)
            yield Service(
                url=url,
                keys=keys,
                db_url=database,
                db=factory,
                home=home,
                clients={rm: list(sme.loc[sme["rm_id"] == rm, "client_id"]) for rm in rms},
                rms=(rms[0], rms[1], rms[2]),
                app=app,
            )
    finally:
        engine.dispose()


def _wait_ready(
    url: str,
    until: Callable[[dict[str, Any]], bool] = lambda r: True,
    seconds: float = 90,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Poll /readyz until the service is ready (models load in the background); the models
    and errors are only in the answer to an admin's or a data scientist's ``headers``."""
    deadline = time.monotonic() + seconds
    answer: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(f"{url}/readyz", headers=headers, timeout=30).json()
        if answer["ready"] and until(answer):
            return answer
        time.sleep(0.2)
    raise AssertionError(f"service not ready: {answer}")


def _get(svc: Service, who: str | None, path: str, **kw: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {svc.keys[who]}"} if who else {}
    return httpx.get(f"{svc.url}{path}", headers=headers, timeout=30, **kw)  # type: ignore[arg-type]


def _post(svc: Service, who: str | None, path: str, json: object = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {svc.keys[who]}"} if who else {}
    return httpx.post(f"{svc.url}{path}", headers=headers, json=json, timeout=30)


def _count(svc: Service, model: type[schema.Base]) -> int:
    with svc.db() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_health_and_models(service: Service) -> None:
    assert httpx.get(f"{service.url}/healthz").json() == {"status": "ok"}
    ready = _get(service, "ds", "/readyz").json()
    assert ready["ready"]
    assert ready["database"] == "ok"
    assert ready["registry"] == "ok"
    assert ready["models"] == {CREDIT: "1", CROSS_SELL: "1"}
    models = _get(service, "ds", "/v1/models").json()
    by_name = {m["name"]: m for m in models["models"]}
    assert by_name[CREDIT]["version"] == "1"
    assert "oot_auc" in by_name[CREDIT]["metrics"]
    assert "oot_map_at_5" in by_name[CROSS_SELL]["metrics"]


def test_financing_options_are_answered_and_audited(service: Service) -> None:
    rm = service.rms[0]
    client = service.clients[rm][0]
    before = _count(service, schema.Recommendation)
    answer = _post(
        service,
        "brm_a",
        f"/v1/clients/{client}/financing-options",
        {"amount": 50000, "tenor_months": 24},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["client_id"] == client
    assert 0 <= body["pd"] <= 1
    assert body["pd_horizon_months"] == 12  # the SME model's label horizon
    assert "pd_12m" not in body  # a field's name does not change with the model
    assert body["decision"] in ("approve", "refer", "decline")
    # the credit model of the client's segment, and the cross-sell model for the propensities
    assert body["model_versions"] == {CREDIT: "1", CROSS_SELL: "1"}
    assert body["currency"] == "EUR"  # the loaded data's currency names every amount
    # reasons carry the catalogue's codes (docs/reasons.md); a decline states one to four
    for reason in body["reasons"]:
        assert reason["code"]
        assert reason["text"]
        assert reason["direction"] == "raises the PD"
        assert reason["contribution"] > 0
        assert reason["feature"] != "history_months"
    assert all(r["code"].startswith("POL_") for r in body["decision_reasons"])
    if body["decision"] == "decline":
        assert 1 <= len(body["adverse_action_reasons"]) <= 4
        assert all(r["code"] and r["text"] for r in body["adverse_action_reasons"])
    else:
        assert body["adverse_action_reasons"] == []
    known = [o["score"] for o in body["options"] if o["propensity"] is not None]
    assert known == sorted(known, reverse=True)  # best expected profit x propensity first
    for rank, option in enumerate(body["options"], start=1):
        assert option["rank"] == rank
        assert option["limit"] > 0
        assert option["indicative_rate"] > 0
        if option["propensity"] is None:  # never a made-up constant: said, and ranked last
            assert any("no take-up propensity" in n for n in option["notes"])
            assert all(o["propensity"] is None for o in body["options"][rank:])
        else:
            assert 0 <= option["propensity"] <= 1
    after = _count(service, schema.Recommendation)
    assert after - before == 1 + len(body["options"])  # the decision and each option
    with service.db() as session:
        row = session.get(schema.Recommendation, body["decision_id"])
        snapshot = session.get(schema.ClientFeatures, client)
        assert row is not None
        assert snapshot is not None
        assert row.client_id == client
        assert row.features == snapshot.features  # exactly what the model saw
        assert row.request is not None
        assert row.policy_version
        assert row.model_versions == body["model_versions"]
        assert row.output is not None
        for key in ("reasons", "decision_reasons", "adverse_action_reasons"):
            assert row.output[key] == body[key]  # the audit row states the same coded reasons
        # the PD is stored with its horizon, on the decision row and on every option
        assert (row.output["pd"], row.output["pd_horizon_months"]) == (body["pd"], 12)
        for option in body["options"]:
            stored = session.get(schema.Recommendation, option["recommendation_id"])
            assert stored is not None
            # an option points at its decision row, which holds the inputs once
            assert stored.decision_id == body["decision_id"]
            assert stored.features is None
            assert stored.request is None
            assert stored.product_code == option["product_code"]
            assert stored.rank == option["rank"]
            assert stored.output is not None
            assert (stored.output["pd"], stored.output["pd_horizon_months"]) == (body["pd"], 12)
    # a client in default is declined with the default as its one reason, and no feature
    with service.db() as session:
        snapshot = session.get(schema.ClientFeatures, client)
        assert snapshot is not None
        was = snapshot.in_default
        snapshot.in_default, snapshot.computed_at = True, schema.utcnow()
        session.commit()
    try:
        defaulted = _post(service, "brm_a", f"/v1/clients/{client}/financing-options").json()
    finally:
        with service.db() as session:
            snapshot = session.get(schema.ClientFeatures, client)
            assert snapshot is not None
            snapshot.in_default, snapshot.computed_at = was, schema.utcnow()
            session.commit()
    assert (defaulted["decision"], defaulted["grade"]) == ("decline", "D")
    assert [r["code"] for r in defaulted["decision_reasons"]] == ["POL_DEFAULT"]
    assert [r["code"] for r in defaulted["reasons"]] == ["DEF01"]
    assert [(r["code"], r["source"]) for r in defaulted["adverse_action_reasons"]] == [
        ("DEF01", "default")
    ]


def test_every_scoped_endpoint_is_404_for_another_portfolio_and_401_for_no_one(
    service: Service,
) -> None:
    other_client = service.clients[service.rms[1]][0]
    own = _post(
        service, "brm_a", f"/v1/clients/{service.clients[service.rms[0]][0]}/financing-options"
    ).json()
    option_id = own["options"][0]["recommendation_id"] if own["options"] else own["decision_id"]
    scoped: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", f"/v1/clients/{other_client}/financing-options", {}),
        ("POST", "/v1/clients/NO-SUCH-CLIENT/financing-options", {}),
        ("GET", f"/v1/rms/{service.rms[1]}/kpis", None),
        ("GET", f"/v1/rms/{service.rms[1]}/cross-sell", None),
        ("GET", f"/v1/clients/{other_client}/recommendations", None),
        ("GET", "/v1/rms/NO-SUCH-RM/kpis", None),
    ]
    for method, path, payload in scoped:
        r = (
            _post(service, "brm_a", path, payload)
            if method == "POST"
            else _get(service, "brm_a", path)
        )
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["code"] == "not_found"
    feedback = ("POST", f"/v1/recommendations/{option_id}/feedback", {"outcome": "offered"})
    foreign = _post(service, "brm_b", feedback[1], feedback[2])
    assert foreign.status_code == 404
    assert foreign.json()["error"]["message"] == "no such recommendation in your portfolio"
    for method, path, payload in [*scoped, feedback]:
        for who in (None, "gone"):  # no key, a revoked key
            r = _post(service, who, path, payload) if method == "POST" else _get(service, who, path)
            assert r.status_code == 401, (who, path, r.text)
            assert r.headers["WWW-Authenticate"].startswith("Bearer"), (who, path)
    bad = httpx.get(f"{service.url}/v1/models", headers={"Authorization": "Bearer rmr_x_y"})
    assert bad.status_code == 401
    assert _post(service, "ds", f"/v1/clients/{other_client}/financing-options").status_code == 403
    # an admin sees every portfolio
    assert _get(service, "admin", f"/v1/rms/{service.rms[1]}/kpis").status_code == 200


def test_feedback_and_kpis_agree_with_the_audit(service: Service) -> None:
    # brm_c's portfolio is this test's alone: its KPIs count only the feedback given here
    rm = service.rms[2]
    offered_ids: list[str] = []
    for client in service.clients[rm][:8]:
        body = _post(service, "brm_c", f"/v1/clients/{client}/financing-options").json()
        offered_ids += [o["recommendation_id"] for o in body["options"][:1]]
        if len(offered_ids) >= 3:
            break
    assert len(offered_ids) >= 2, "the small bank should give approvable SMEs"
    first, second = offered_ids[0], offered_ids[1]
    feedback_before = _count(service, schema.Feedback)
    assert (
        _post(
            service, "brm_c", f"/v1/recommendations/{first}/feedback", {"outcome": "offered"}
        ).status_code
        == 201
    )
    accepted = _post(
        service,
        "brm_c",
        f"/v1/recommendations/{first}/feedback",
        {"outcome": "accepted", "amount": 40000},
    )
    assert accepted.status_code == 201
    assert accepted.json()["recommendation_id"] == first
    conflict = _post(
        service, "brm_c", f"/v1/recommendations/{first}/feedback", {"outcome": "declined"}
    )
    assert conflict.status_code == 409
    assert conflict.json()["error"]["field"] == "outcome"
    assert (
        _post(
            service,
            "brm_c",
            f"/v1/recommendations/{second}/feedback",
            {"outcome": "declined", "reason": "has a loan elsewhere"},
        ).status_code
        == 201
    )
    invalid = _post(
        service, "brm_c", f"/v1/recommendations/{second}/feedback", {"outcome": "maybe"}
    )
    assert invalid.status_code == 422
    assert invalid.json()["error"]["field"] == "outcome"
    kpis = _get(service, "brm_c", f"/v1/rms/{rm}/kpis").json()
    assert kpis["offered"] == 2
    assert kpis["accepted"] == 1
    assert kpis["declined"] == 1
    assert kpis["pipeline_conversion_rate"] == pytest.approx(0.5)
    assert kpis["new_business_volume"] == pytest.approx(40000)
    assert sum(p["offered"] for p in kpis["by_product"]) == 2
    assert _count(service, schema.Feedback) - feedback_before == 3


def test_admin_reload_needs_admin(service: Service) -> None:
    assert _post(service, "brm_a", "/v1/admin/models/reload").status_code == 403
    reloaded = _post(service, "admin", "/v1/admin/models/reload")
    assert reloaded.status_code == 200
    assert {m["version"] for m in reloaded.json()["models"]} == {"1"}


def test_an_unrecorded_answer_is_never_served(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(repository, "add_recommendations", fail)
    client = service.clients[service.rms[0]][0]
    before = _count(service, schema.Recommendation)
    r = _post(service, "brm_a", f"/v1/clients/{client}/financing-options")
    assert r.status_code == 503
    assert r.headers["retry-after"]
    assert r.json()["error"]["code"] == "unavailable"
    assert _count(service, schema.Recommendation) == before


def test_restart_with_the_registry_unreachable_serves_the_local_copy(service: Service) -> None:
    # the fixture's app stored the champion under home/served-models; a service started on the
    # same home, whose registry cannot be reached, must serve that copy: two workers, each (on
    # SQLite; on PostgreSQL one process: the registry's path does not change with the database)
    settings = {"RMRECO_HOME": str(service.home), "RMRECO_DATABASE_URL": service.db_url}
    admin = {"Authorization": f"Bearer {service.keys['admin']}"}
    workers = 2 if service.db_url.startswith("sqlite") else 1
    with serve_workers(
        service.home, settings, workers=workers, tracking_uri="http://127.0.0.1:9"
    ) as url:
        answers = [
            _wait_ready(
                url,
                until=lambda r: r["registry"] == "unreachable" and len(r["models"]) == 2,
                headers=admin,
            )
            for _ in range(20)  # each on a new connection, which either worker may take
        ]
        financing = _post(
            dataclasses.replace(service, url=url),
            "brm_a",
            f"/v1/clients/{service.clients[service.rms[0]][0]}/financing-options",
        )
    for ready in answers:
        assert ready["ready"], ready
        assert ready["registry"] == "unreachable"
        assert ready["models"] == {CREDIT: "1", CROSS_SELL: "1"}
    assert financing.status_code == 200, financing.text
    assert financing.json()["model_versions"][CREDIT] == "1"


def test_cross_sell_list_is_ranked_paged_audited_and_respects_declines(service: Service) -> None:
    rm = service.rms[0]
    before = _count(service, schema.Recommendation)
    page = _get(service, "brm_a", f"/v1/rms/{rm}/cross-sell", params={"limit": 20})
    assert page.status_code == 200, page.text
    body = page.json()
    items = body["items"]
    assert items
    assert body["total"] >= len(items)
    assert [i["rank"] for i in items] == list(range(1, len(items) + 1))
    _assert_ranked_by_expected_value(items)
    assert all(0 <= i["propensity"] <= 1 for i in items)
    assert set(body["model_versions"]) == {CROSS_SELL, CREDIT}
    assert body["currency"] == "EUR"
    assert {i["client_id"] for i in items} <= set(service.clients[rm]) | _portfolio(service, rm)
    assert _count(service, schema.Recommendation) - before == len(items)
    _assert_nothing_held_is_offered(service, items)
    # paging continues the same ranking
    second = _get(
        service, "brm_a", f"/v1/rms/{rm}/cross-sell", params={"limit": 5, "offset": 5}
    ).json()
    assert [i["rank"] for i in second["items"]] == list(range(6, 6 + len(second["items"])))
    assert [i["product_code"] for i in second["items"]] == [i["product_code"] for i in items[5:10]]
    # a declined offer stays out for the cool-off window
    top = items[0]
    assert (
        _post(
            service,
            "brm_a",
            f"/v1/recommendations/{top['recommendation_id']}/feedback",
            {"outcome": "declined"},
        ).status_code
        == 201
    )
    again = _get(service, "brm_a", f"/v1/rms/{rm}/cross-sell", params={"limit": 200}).json()
    assert (top["client_id"], top["product_code"]) not in {
        (i["client_id"], i["product_code"]) for i in again["items"]
    }
    # filters and bounds
    only = _get(
        service,
        "brm_a",
        f"/v1/rms/{rm}/cross-sell",
        params={"product": top["product_code"], "min_score": 0.0},
    ).json()
    assert {i["product_code"] for i in only["items"]} <= {top["product_code"]}
    too_many = _get(service, "brm_a", f"/v1/rms/{rm}/cross-sell", params={"limit": 1000})
    assert too_many.status_code == 422
    assert too_many.json()["error"]["field"] == "limit"
    # the scored portfolio is kept until a snapshot of it changes: a client refreshed into
    # default drops out of the very next list
    victim = again["items"][0]["client_id"]
    with service.db() as session:
        snapshot = session.get(schema.ClientFeatures, victim)
        assert snapshot is not None
        was = snapshot.in_default
        snapshot.in_default, snapshot.computed_at = True, schema.utcnow()
        session.commit()
    try:
        after = _get(service, "brm_a", f"/v1/rms/{rm}/cross-sell", params={"limit": 200}).json()
        assert after["items"]
        assert victim not in {i["client_id"] for i in after["items"]}
    finally:
        with service.db() as session:
            snapshot = session.get(schema.ClientFeatures, victim)
            assert snapshot is not None
            snapshot.in_default, snapshot.computed_at = was, schema.utcnow()
            session.commit()
    restored = _get(service, "brm_a", f"/v1/rms/{rm}/cross-sell", params={"limit": 200}).json()
    assert victim in {i["client_id"] for i in restored["items"]}


def test_recommendations_for_one_client(service: Service) -> None:
    rm = service.rms[1]  # brm_b's portfolio: no other test changes it
    client, segment = _scored_client(service, rm)
    before = _count(service, schema.Recommendation)
    answer = _get(service, "brm_b", f"/v1/clients/{client}/recommendations")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    items = body["items"]
    assert items, "a scored client that is not in default has products to offer"
    assert (body["rm_id"], body["client_id"], body["limit"]) == (rm, client, 5)
    assert len(items) <= 5
    assert body["total"] >= len(items)
    assert {(i["client_id"], i["segment"]) for i in items} == {(client, segment)}
    assert len({i["product_code"] for i in items}) == len(items)  # one offer per product
    assert [i["rank"] for i in items] == list(range(1, len(items) + 1))
    _assert_ranked_by_expected_value(items)
    _assert_nothing_held_is_offered(service, items)
    # every item is an audit row of this client, asked by brm_b, with what the model saw
    assert _count(service, schema.Recommendation) - before == len(items)
    with service.db() as session:
        user = repository.user_by_name(session, "brm_b")
        assert user is not None
        for item in items:
            row = session.get(schema.Recommendation, item["recommendation_id"])
            assert row is not None
            assert (row.kind, row.client_id, row.user_id) == ("cross_sell", client, user.id)
            assert (row.product_code, row.rank) == (item["product_code"], item["rank"])
            assert row.model_versions == body["model_versions"]
            assert row.features
            assert row.request == {"rm_id": rm, "client_id": client, "offset": 0, "limit": 5}
    # a shorter list is the head of the same ranking
    head = _get(
        service, "brm_b", f"/v1/clients/{client}/recommendations", params={"limit": 2}
    ).json()
    assert [i["product_code"] for i in head["items"]] == [i["product_code"] for i in items[:2]]


def _assert_ranked_by_expected_value(items: list[dict[str, Any]]) -> None:
    """Best expected value first; offers whose value is unknown come last, by propensity."""
    values = [i["expected_value"] for i in items]
    known = [v for v in values if v is not None]
    assert values == sorted(known, reverse=True) + [None] * (len(values) - len(known))
    unknown = [i["propensity"] for i in items if i["expected_value"] is None]
    assert unknown == sorted(unknown, reverse=True)


def _assert_nothing_held_is_offered(service: Service, items: list[dict[str, Any]]) -> None:
    with service.db() as session:
        held = repository.held_products(session, [i["client_id"] for i in items])
    assert all(i["product_code"] not in held[i["client_id"]] for i in items)


def _scored_client(service: Service, rm: str) -> tuple[str, str]:
    """The first client of ``rm`` with a feature snapshot and not in default, and its segment."""
    with service.db() as session:
        for client_id in service.clients[rm]:
            view = repository.client_with_features(session, client_id)
            if view is not None and view.features is not None and not view.in_default:
                return client_id, view.segment
    raise AssertionError(f"no scored client in the portfolio of {rm}")


def _portfolio(service: Service, rm: str) -> set[str]:
    with service.db() as session:
        return {row.client_id for row in repository.portfolio_features(session, rm)}


def test_a_declined_product_is_suppressed_until_the_cool_off_ends(service: Service) -> None:
    """One contact policy: after a recorded decline the product leaves the client's cross-sell
    rows and is marked suppressed in its financing answer, with the day it returns; the
    service's clock moved past the policy's window brings it back."""
    runtime = service.app.state.runtime
    cool_off = runtime.policy.contact.cool_off_days
    rm = service.rms[0]
    client, product, rec_id = _offered_financing(service, rm)
    assert product in _listed(service, client)
    declined = _post(service, "brm_a", f"/v1/recommendations/{rec_id}/feedback",
                     {"outcome": "declined", "reason": "not now"})  # fmt: skip
    assert declined.status_code == 201, declined.text
    returns = (datetime.now(UTC) + timedelta(days=cool_off)).date()
    answer = _financing(service, client)
    marked = next(o for o in answer["options"] if o["product_code"] == product)
    assert marked["suppressed"]["until"] in {
        returns.isoformat(),
        (returns - timedelta(days=1)).isoformat(),
    }
    assert "declined" in marked["suppressed"]["reasons"][0]
    assert marked["rank"] == len(answer["options"])  # suppressed options come last
    assert "not to be offered before" in marked["rank_reason"]
    assert product not in _listed(service, client)
    real = runtime.clock
    try:
        runtime.clock = lambda: real() + timedelta(days=cool_off - 1)
        assert product not in _listed(service, client)
        runtime.clock = lambda: real() + timedelta(days=cool_off + 1)
        back = _financing(service, client)
        assert (
            next(o for o in back["options"] if o["product_code"] == product)["suppressed"] is None
        )
        assert product in _listed(service, client)
    finally:
        runtime.clock = real


def test_a_policy_without_amounts_in_the_data_currency_refuses_financing(
    service: Service, tmp_path: Path
) -> None:
    """Limits and turnover bounds in one currency are never applied to figures in another: a
    policy stating its amounts in PLN answers the EUR book's financing request with a 409 that
    names the currency, the file and the key to add, and records nothing; once the file gives
    EUR amounts, the answer comes."""
    runtime = service.app.state.runtime
    text = (ROOT / "models" / "credit_policy.yaml").read_text()
    assert "\ncurrency: EUR\n" in text
    path = tmp_path / "policy_pln.yaml"
    path.write_text(text.replace("\ncurrency: EUR\n", "\ncurrency: PLN\n", 1))
    client = service.clients[service.rms[0]][0]
    before = _count(service, schema.Recommendation)
    shipped = runtime.policy
    try:
        runtime.policy = load_policy(path)
        refused = _post(service, "brm_a", f"/v1/clients/{client}/financing-options")
        assert _count(service, schema.Recommendation) == before
        path.write_text(
            text.replace(
                "\ncurrency: EUR\n",
                "\ncurrency: PLN\nother_currencies:\n  EUR: {min_limit: 5000, "
                "sme_turnover_floor_millions: 5.0, sme_turnover_cap_millions: 50.0}\n",
                1,
            )
        )
        runtime.policy = load_policy(path)
        answered = _post(service, "brm_a", f"/v1/clients/{client}/financing-options")
    finally:
        runtime.policy = shipped
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "policy_currency"
    assert "the data's money is in EUR" in error["message"]
    assert f"credit policy {path}" in error["message"]
    assert "add other_currencies.EUR" in error["message"]
    assert error["details"] == {
        "currency": "EUR",
        "policy_currencies": ["PLN"],
        "policy_file": str(path),
        "key": "other_currencies.EUR",
        "amounts": ["min_limit", "sme_turnover_floor_millions", "sme_turnover_cap_millions"],
    }
    assert answered.status_code == 200, answered.text
    assert answered.json()["currency"] == "EUR"


def test_the_request_purpose_shapes_the_options(service: Service) -> None:
    runtime = service.app.state.runtime
    client, _, _ = _offered_financing(service, service.rms[0])
    wanted = set(runtime.policy.purposes["working_capital"])
    answer = _financing(service, client, {"purpose": "working_capital"})
    assert answer["options"]
    assert {o["product_code"] for o in answer["options"]} <= wanted
    wrong = _post(service, "brm_a", f"/v1/clients/{client}/financing-options", {"purpose": "yacht"})
    assert wrong.status_code == 422
    assert wrong.json()["error"]["field"] == "purpose"
    assert "working_capital" in wrong.json()["error"]["message"]


def test_cross_sell_rows_are_credit_aware(service: Service) -> None:
    rm = service.rms[0]
    items = _get(service, "brm_a", f"/v1/rms/{rm}/cross-sell", params={"limit": 200}).json()[
        "items"
    ]
    with service.db() as session:
        financing = {
            p["product_code"] for p in repository.catalog(session) if p["kind"] == "financing"
        }
    assert items
    assert all(i["grade"] is not None and 0 < i["pd"] <= 1 for i in items)  # SMEs: graded
    assert all(i["pd_horizon_months"] == 12 for i in items)
    credit = [i for i in items if i["product_code"] in financing]
    assert all(i["decision"] in ("approve", "refer") for i in credit)
    assert all(i["decision"] is None for i in items if i["product_code"] not in financing)
    # the same client's financing answer agrees on PD, grade and decision
    for item in credit[:3]:
        answer = _financing(service, item["client_id"])
        assert answer["pd"] == pytest.approx(item["pd"], abs=1e-12)
        assert answer["pd_horizon_months"] == item["pd_horizon_months"]
        assert (answer["grade"], answer["decision"]) == (item["grade"], item["decision"])


def _financing(service: Service, client: str, body: object = None) -> dict[str, Any]:
    answer = _post(service, "brm_a", f"/v1/clients/{client}/financing-options", body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _listed(service: Service, client: str) -> set[str]:
    page = _get(service, "brm_a", f"/v1/clients/{client}/recommendations", params={"limit": 200})
    assert page.status_code == 200, page.text
    return {i["product_code"] for i in page.json()["items"]}


def _offered_financing(service: Service, rm: str) -> tuple[str, str, str]:
    """A client of ``rm`` with no feedback yet whose financing answer offers a product the
    cross-sell model scores for it, that product, and the option's recommendation id."""
    with service.db() as session:
        answered = set(session.scalars(select(schema.Feedback.client_id)))
    for client in service.clients[rm]:
        if client in answered:
            continue
        answer = _post(service, "brm_a", f"/v1/clients/{client}/financing-options")
        if answer.status_code != 200:
            continue
        for option in answer.json()["options"]:
            if option["propensity"] is not None and option["suppressed"] is None:
                return client, option["product_code"], option["recommendation_id"]
    raise AssertionError(f"no client of {rm} is offered a product the cross-sell model scores")


def test_smes_with_different_behaviour_get_different_orders(service: Service) -> None:
    """Options are ranked for each client (its take-up propensities), not by one order for
    every SME; no option claims a propensity the model did not compute."""
    orders, answers = set(), 0
    for client in service.clients[service.rms[0]][:40]:
        answer = _post(service, "brm_a", f"/v1/clients/{client}/financing-options")
        if answer.status_code != 200 or len(answer.json()["options"]) < 2:
            continue
        options = answer.json()["options"]
        assert all(o["propensity"] is None or 0 < o["propensity"] < 1 for o in options)
        orders.add(tuple(o["product_code"] for o in options))
        answers += 1
        if answers == 20:
            break
    assert answers >= 10
    assert len(orders) > 1
