"""KPIs a sales manager can trust, and the feedback history, on SQLite and PostgreSQL.

A tiny bank is built by hand in each test's database (nine clients of three RMs, a few account
months and holding spells), so that every figure below is a count one can check on paper:

========  ====  =============================  ==================================  ===========
client    RM    account months (2024)          holdings                            Jan -> Jun
========  ====  =============================  ==================================  ===========
A         R1    Jan .. Jun                     CARD 2023-12 open; SAVE 2024-03     kept
B         R1    Jan .. Mar                     LOAN 2022-01 .. 2024-03             lost
C         R1    none                           LOAN 2020-01 open                   kept
D         R1    Apr .. Jun                     CARD 2024-04 open                   new client
E         R1    Jan .. Jun                     LOAN 2021-01 .. 2024-02             kept
F         R1    none                           CARD 2019-01 .. 2023-12             gone before
G         R1    Jan                            none                                lost
H         R2    Jan .. Jun                     SAVE 2024-02 open                   kept
J         R3    none                           CARD 2018-01 .. 2023-06             gone before
========  ====  =============================  ==================================  ===========

The service is the real app (``create_app``) through FastAPI's TestClient; the KPI and feedback
routes need no model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from rmreco.config import Settings
from rmreco.db import kpis as kpi_db
from rmreco.db import repository, schema
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.db.migrate import upgrade
from rmreco.serving.app import create_app
from rmreco.serving.security import issue_key

ROOT = Path(__file__).resolve().parents[2]
HALF_YEAR = kpi_db.Period(date(2024, 1, 1), date(2024, 6, 30))


def _months(first: date, last: date) -> list[date]:
    out = [first]
    while out[-1] < last:
        m = out[-1]
        out.append(date(m.year + m.month // 12, m.month % 12 + 1, 1))
    return out


ACCOUNT_MONTHS: dict[str, tuple[date, date]] = {
    "A": (date(2024, 1, 1), date(2024, 6, 1)),
    "B": (date(2024, 1, 1), date(2024, 3, 1)),
    "D": (date(2024, 4, 1), date(2024, 6, 1)),
    "E": (date(2024, 1, 1), date(2024, 6, 1)),
    "G": (date(2024, 1, 1), date(2024, 1, 1)),
    "H": (date(2024, 1, 1), date(2024, 6, 1)),
}
#: client, product, start month, end month, amount
HOLDINGS: list[tuple[str, str, date, date | None, float | None]] = [
    ("A", "CARD", date(2023, 12, 1), None, None),
    ("A", "SAVE", date(2024, 3, 1), None, 10000.0),
    ("B", "LOAN", date(2022, 1, 1), date(2024, 3, 1), 30000.0),
    ("C", "LOAN", date(2020, 1, 1), None, 50000.0),
    ("D", "CARD", date(2024, 4, 1), None, None),
    ("E", "LOAN", date(2021, 1, 1), date(2024, 2, 1), 20000.0),
    ("F", "CARD", date(2019, 1, 1), date(2023, 12, 1), None),
    ("H", "SAVE", date(2024, 2, 1), None, 5000.0),
    ("J", "CARD", date(2018, 1, 1), date(2023, 6, 1), None),
]
CLIENT_RM = {"A": "R1", "B": "R1", "C": "R1", "D": "R1", "E": "R1", "F": "R1", "G": "R1"}
CLIENT_RM |= {"H": "R2", "J": "R3"}


@dataclass
class Bank:
    db: sessionmaker[Session]
    keys: dict[str, str]
    users: dict[str, int]
    settings: Settings


def _load(session: Session) -> None:
    session.add_all(
        [
            schema.RelationshipManager(rm_id="R1", name="Ann", role="brm", team="North"),
            schema.RelationshipManager(rm_id="R2", name="Bo", role="brm", team="North"),
            schema.RelationshipManager(rm_id="R3", name="Cy", role="crm", team="Corporate"),
        ]
    )
    session.add_all(
        [
            schema.Product(product_code=code, name=code.title(), kind=kind, segments="sme")
            for code, kind in (("LOAN", "financing"), ("CARD", "service"), ("SAVE", "service"))
        ]
    )
    session.flush()
    session.add_all(
        [schema.Client(client_id=c, segment="sme", rm_id=rm) for c, rm in CLIENT_RM.items()]
    )
    session.flush()
    session.add_all(
        [
            schema.AccountMonth(
                client_id=client,
                month=month,
                balance_avg=1000.0,
                credit_turnover=5000.0,
                debit_turnover=4800.0,
            )
            for client, (first, last) in ACCOUNT_MONTHS.items()
            for month in _months(first, last)
        ]
    )
    session.add_all(
        [
            schema.Holding(
                client_id=c, product_code=p, start_month=start, end_month=end, amount=amount
            )
            for c, p, start, end, amount in HOLDINGS
        ]
    )


@pytest.fixture
def bank(db_url: str, tmp_path: Path) -> Iterator[Bank]:
    upgrade(db_url)
    engine = create_engine_for(db_url)
    factory = session_factory(engine)
    keys: dict[str, str] = {}
    users: dict[str, int] = {}
    with transaction(factory) as session:
        _load(session)
        for name, role, rm in (
            ("ann", "brm", "R1"),
            ("bo", "brm", "R2"),
            ("admin", "admin", None),
            ("ds", "data_scientist", None),
        ):
            key = issue_key()
            users[name] = repository.add_user(
                session, name=name, role=role, rm_id=rm, key_prefix=key.prefix, key_hash=key.hash
            )
            keys[name] = key.key
    (tmp_path / "models").mkdir()
    settings = Settings(home=tmp_path / "home", database_url=db_url, models_dir=tmp_path / "models")
    try:
        yield Bank(factory, keys, users, settings)
    finally:
        engine.dispose()


@pytest.fixture
def api(bank: Bank) -> Iterator[TestClient]:
    app = create_app(
        bank.settings,
        tracking_uri="http://127.0.0.1:9",  # never asked: the models folder names no model
        policy_path=ROOT / "models" / "credit_policy.yaml",
        poll_seconds=3600,
    )
    with TestClient(app) as client:
        yield client


def _auth(bank: Bank, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {bank.keys[who]}"}


def _show(
    session: Session,
    user_id: int,
    pairs: list[tuple[str, str]],
    at: datetime | None = None,
    output: dict[str, Any] | None = None,
) -> list[str]:
    """Audit rows of one page showing ``pairs`` (written as the routes write them); their ids."""
    rows = []
    for rank, (client, product) in enumerate(pairs, start=1):
        row = {
            "id": schema.new_uuid(),
            "user_id": user_id,
            "client_id": client,
            "kind": "cross_sell",
            "product_code": product,
            "rank": rank,
            "model_versions": {"m": "1"},
            "output": dict(output or {"expected_value": 12.5}),
        }
        if at is not None:
            row["created_at"] = at
        rows.append(row)
    repository.add_recommendations(session, rows)
    return [str(r["id"]) for r in rows]


def _feedback(
    session: Session,
    rec_id: str,
    user_id: int,
    outcome: str,
    at: datetime,
    amount: float | None = None,
    reason: str | None = None,
) -> int:
    rec = session.get(schema.Recommendation, rec_id)
    assert rec is not None
    assert rec.product_code is not None
    row = schema.Feedback(
        recommendation_id=rec_id,
        client_id=rec.client_id,
        product_code=rec.product_code,
        user_id=user_id,
        outcome=outcome,
        reason=reason,
        amount=amount,
        created_at=at,
    )
    session.add(row)
    session.flush()
    return row.id


def _at(day: int, hour: int = 10, month: int = 3) -> datetime:
    return datetime(2024, month, day, hour, tzinfo=UTC)


def _kpis(bank: Bank, period: kpi_db.Period, rms: list[str]) -> dict[str, kpi_db.RmKpis]:
    with transaction(bank.db, read_only=True) as session:
        return kpi_db.rm_kpis(session, period, rms)


# --- the KPI queries, on both databases -----------------------------------------------------


def test_retention_matches_a_hand_count(bank: Bank) -> None:
    found = _kpis(bank, HALF_YEAR, ["R1", "R2", "R3"])
    # R1 in January: A, B, C (a holding only), E, G; D came in April, F left in 2023.
    # In June: A, C, E (its loan ended, its account did not); B and G left.
    r1 = found["R1"].retention
    assert (r1.clients_at_start, r1.retained) == (5, 3)
    assert r1.rate == pytest.approx(0.6)
    assert r1.note is None
    assert (found["R2"].retention.clients_at_start, found["R2"].retention.retained) == (1, 1)
    # R3's only client left before the period: no base, so no rate (and said why)
    r3 = found["R3"].retention
    assert (r3.clients_at_start, r3.rate) == (0, None)
    assert r3.note
    # mid-month days read the months that hold them: February -> May
    spring = _kpis(bank, kpi_db.Period(date(2024, 2, 15), date(2024, 5, 10)), ["R1"])["R1"]
    assert (spring.retention.start_month, spring.retention.end_month) == (
        date(2024, 2, 1),
        date(2024, 5, 1),
    )
    # February: A, B, C, E (G's last month was January); May: A, C, E
    assert (spring.retention.clients_at_start, spring.retention.retained) == (4, 3)
    total = kpi_db.team_total(HALF_YEAR, list(found.values())).retention
    assert (total.clients_at_start, total.retained) == (6, 4)


def test_retention_is_unknown_where_the_data_does_not_reach(bank: Bank) -> None:
    past_the_data = _kpis(bank, kpi_db.Period(date(2024, 2, 1), date(2024, 7, 31)), ["R1"])
    kept = past_the_data["R1"].retention
    assert (kept.clients_at_start, kept.retained, kept.rate) == (None, None, None)
    assert kept.note is not None
    assert "2024-06" in kept.note  # where the data ends
    assert "2024-06-30" in kept.note  # the last day a period may end on
    before_the_data = _kpis(bank, kpi_db.Period(date(2023, 12, 1), date(2024, 5, 31)), ["R1"])
    assert before_the_data["R1"].retention.clients_at_start is None
    assert "2024-01" in (before_the_data["R1"].retention.note or "")
    # a book without account months: holdings alone tell who banks with us, up to their months
    with transaction(bank.db) as session:
        session.execute(delete(schema.AccountMonth))
    r1 = _kpis(bank, kpi_db.Period(date(2024, 1, 1), date(2024, 2, 29)), ["R1"])["R1"]
    # January: A (card), B, C, E (loans); February: the same four
    assert (r1.retention.clients_at_start, r1.retention.retained) == (4, 4)
    # the holdings' latest month is 2024-04 (D's card): later is unknown
    assert _kpis(bank, HALF_YEAR, ["R1"])["R1"].retention.clients_at_start is None


def test_new_holdings_by_product_with_their_amounts(bank: Bank) -> None:
    found = _kpis(bank, HALF_YEAR, ["R1", "R2"])
    r1 = found["R1"].new_holdings
    assert (r1.first_month, r1.last_month, r1.started) == (date(2024, 1, 1), date(2024, 6, 1), 2)
    assert r1.by_product == [
        kpi_db.ProductHoldings("CARD", started=1, with_amount=0, amount=0.0),
        kpi_db.ProductHoldings("SAVE", started=1, with_amount=1, amount=10000.0),
    ]
    assert found["R2"].new_holdings.by_product == [kpi_db.ProductHoldings("SAVE", 1, 1, 5000.0)]
    # a month counts when its first day is in the period: 15 Mar .. 30 Apr counts April only
    april = _kpis(bank, kpi_db.Period(date(2024, 3, 15), date(2024, 4, 30)), ["R1"])["R1"]
    assert [(p.product_code, p.started) for p in april.new_holdings.by_product] == [("CARD", 1)]
    # no month starts in 10..20 March: no count rather than a made-up zero
    inside = _kpis(bank, kpi_db.Period(date(2024, 3, 10), date(2024, 3, 20)), ["R1"])["R1"]
    assert inside.new_holdings.started is None
    assert inside.new_holdings.note
    # past the data's end: counted up to it, and said
    late = _kpis(bank, kpi_db.Period(date(2024, 4, 1), date(2024, 8, 31)), ["R1"])["R1"]
    assert late.new_holdings.last_month == date(2024, 6, 1)
    assert late.new_holdings.started == 1
    assert "2024-06" in (late.new_holdings.note or "")


def test_each_pair_counts_once_and_its_outcome_once(bank: Bank) -> None:
    ann = bank.users["ann"]
    page = [("A", "LOAN"), ("A", "CARD"), ("B", "LOAN"), ("E", "SAVE")]
    with transaction(bank.db) as session:
        first = _show(session, ann, page, at=_at(10))
        again = _show(session, ann, page, at=_at(10, 11))  # the same page read again
        _show(session, ann, [("H", "SAVE")], at=_at(10))  # R2's client: not R1's figure
        a_loan, a_card, b_loan, e_save = first
        _feedback(session, a_loan, ann, "offered", _at(11))
        _feedback(session, a_loan, ann, "accepted", _at(20), amount=100000)
        # a double post of a final outcome: the database refuses it (one final outcome per
        # recommendation), so no figure can count it twice
        with pytest.raises(IntegrityError), session.begin_nested():
            _feedback(session, a_loan, ann, "accepted", _at(21), amount=100000)
        # the same client and product accepted on the second reading's row: still one
        # acceptance, booked at the first amount recorded
        _feedback(session, again[0], ann, "accepted", _at(22), amount=120000)
        _feedback(session, a_card, ann, "offered", _at(11))
        _feedback(session, b_loan, ann, "declined", _at(12), reason="rate too high")
        _feedback(session, e_save, ann, "not_interested", _at(13))
        # given after the period: not counted in it
        _feedback(session, a_card, ann, "accepted", _at(2, month=7), amount=10)
    kpis = _kpis(bank, HALF_YEAR, ["R1"])["R1"]
    total = kpis.total
    assert total.recommended == 4
    assert (total.offered, total.accepted, total.declined, total.not_interested) == (3, 1, 1, 1)
    assert total.accepted_amount == pytest.approx(100000)
    assert total.accepted_without_amount == 0
    by_product = {p.product_code: p for p in kpis.pipeline}
    assert by_product["LOAN"] == kpi_db.ProductPipeline(
        "LOAN", recommended=2, offered=2, accepted=1, declined=1, accepted_amount=100000.0
    )
    assert by_product["CARD"] == kpi_db.ProductPipeline("CARD", recommended=1, offered=1)
    assert by_product["SAVE"] == kpi_db.ProductPipeline("SAVE", recommended=1, not_interested=1)
    # reading the list once more changes no figure
    with transaction(bank.db) as session:
        _show(session, ann, page, at=_at(25))
    assert _kpis(bank, HALF_YEAR, ["R1"])["R1"] == kpis
    # the next period sees July's acceptance of the card
    july = _kpis(bank, kpi_db.Period(date(2024, 7, 1), date(2024, 7, 31)), ["R1"])["R1"].total
    assert (july.recommended, july.offered, july.accepted) == (0, 1, 1)


def test_a_team_adds_up_its_rms(bank: Bank) -> None:
    ann, bo = bank.users["ann"], bank.users["bo"]
    with transaction(bank.db) as session:
        (a_loan,) = _show(session, ann, [("A", "LOAN")], at=_at(10))
        (h_card,) = _show(session, bo, [("H", "CARD")], at=_at(10))
        _feedback(session, a_loan, ann, "accepted", _at(12), amount=1000)
        _feedback(session, h_card, bo, "declined", _at(12))
        rms = [rm.rm_id for rm in kpi_db.relationship_managers(session, "North")]
    assert rms == ["R1", "R2"]
    found = _kpis(bank, HALF_YEAR, rms)
    team = kpi_db.team_total(HALF_YEAR, list(found.values()))
    assert [(p.product_code, p.offered, p.accepted) for p in team.pipeline] == [
        ("CARD", 1, 0),
        ("LOAN", 1, 1),
    ]
    assert team.total.accepted_amount == pytest.approx(1000)
    assert team.new_holdings.started == 3  # A's savings, D's card, H's savings


# --- the service ----------------------------------------------------------------------------


def _window() -> dict[str, str]:
    today = datetime.now(UTC).date()
    return {"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=1))}


def test_a_repeated_final_outcome_is_answered_not_stored(bank: Bank, api: TestClient) -> None:
    ann = _auth(bank, "ann")
    with transaction(bank.db) as session:
        (loan,) = _show(session, bank.users["ann"], [("A", "LOAN")], output={"limit": 80000})
        card = _show(session, bank.users["ann"], [("A", "CARD")])[0]
    path = f"/v1/recommendations/{loan}/feedback"
    assert api.post(path, json={"outcome": "offered"}, headers=ann).status_code == 201
    accepted = api.post(path, json={"outcome": "accepted"}, headers=ann)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["amount"] == 80000  # the offer's limit, when no amount is given
    assert accepted.json()["is_repeat"] is False
    before = api.get("/v1/rms/R1/kpis", params=_window(), headers=ann).json()
    assert (before["offered"], before["accepted"], before["new_business_volume"]) == (1, 1, 80000)
    with bank.db() as session:
        stored = session.scalar(select(func.count()).select_from(schema.Feedback))

    repeat = api.post(path, json={"outcome": "accepted"}, headers=ann)
    assert repeat.status_code == 200, repeat.text
    assert repeat.json() == {
        "feedback_id": accepted.json()["feedback_id"],
        "recommendation_id": loan,
        "outcome": "accepted",
        "amount": 80000,
        "is_repeat": True,
    }
    same_amount = api.post(path, json={"outcome": "accepted", "amount": 80000}, headers=ann)
    assert same_amount.status_code == 200
    # an amount no loan has (1e308 made the KPI null) is refused before anything is stored
    huge = api.post(path, json={"outcome": "accepted", "amount": 1e308}, headers=ann)
    assert huge.status_code == 422, huge.text
    assert "amount" in huge.text
    other_amount = api.post(path, json={"outcome": "accepted", "amount": 90000}, headers=ann)
    assert other_amount.status_code == 409
    assert other_amount.json()["error"]["field"] == "amount"
    changed = api.post(path, json={"outcome": "declined"}, headers=ann)
    assert changed.status_code == 409
    assert changed.json()["error"]["field"] == "outcome"
    with bank.db() as session:
        assert session.scalar(select(func.count()).select_from(schema.Feedback)) == stored
    # reading the list again (new audit rows for the same pairs) changes no figure either
    with transaction(bank.db) as session:
        _show(session, bank.users["ann"], [("A", "LOAN"), ("A", "CARD")])
    after = api.get("/v1/rms/R1/kpis", params=_window(), headers=ann).json()
    assert after == before
    assert after["recommendations"] == 2
    # a cross-sell row's expected value is no booked amount: accepted without one, and said
    card_accepted = api.post(
        f"/v1/recommendations/{card}/feedback", json={"outcome": "accepted"}, headers=ann
    )
    assert card_accepted.json()["amount"] is None
    later = api.get("/v1/rms/R1/kpis", params=_window(), headers=ann).json()
    assert (later["accepted"], later["accepted_without_amount"]) == (2, 1)
    assert later["new_business_volume"] == 80000
    assert later["pipeline_conversion_rate"] == pytest.approx(1.0)
    # today lies after the data's last month: retention is unknown, and the answer says so
    assert later["retention"]["retention_rate"] is None
    assert "2024-06" in later["retention"]["note"]


def test_kpis_answer_and_authorisation(bank: Bank, api: TestClient) -> None:
    half_year = {"from": "2024-01-01", "to": "2024-06-30"}
    answer = api.get("/v1/rms/R1/kpis", params=half_year, headers=_auth(bank, "ann"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["retention"] == {
        "start_month": "2024-01-01",
        "end_month": "2024-06-01",
        "clients_at_start": 5,
        "retained": 3,
        "retention_rate": pytest.approx(0.6),
        "note": None,
    }
    assert body["new_holdings"]["started"] == 2
    assert body["currency"] == "EUR"
    assert api.get("/v1/rms/R1/kpis", headers=_auth(bank, "bo")).status_code == 404
    bad = api.get("/v1/rms/R1/kpis", params={"from": "2024-02-01", "to": "2024-01-01"},
                  headers=_auth(bank, "ann"))  # fmt: skip
    assert bad.status_code == 422
    # a period's last day whose next day is no date was a 500: refused naming the field
    for field, day in (("to", "9999-12-31"), ("from", "0001-01-01")):
        far = api.get("/v1/rms/R1/kpis", params={field: day}, headers=_auth(bank, "ann"))
        assert far.status_code == 422, far.text
        assert field in far.text
    # the team view: admins only
    assert api.get("/v1/kpis", headers=_auth(bank, "ann")).status_code == 403
    assert api.get("/v1/kpis", headers=_auth(bank, "ds")).status_code == 403
    nobody = api.get("/v1/kpis")
    assert nobody.status_code == 401
    assert nobody.headers["WWW-Authenticate"] == "Bearer"  # the scheme to use (RFC 6750)
    forged = api.get("/v1/kpis", headers={"Authorization": "Bearer rmr_x_y"})
    assert forged.status_code == 401
    assert forged.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    team = api.get("/v1/kpis", params=half_year, headers=_auth(bank, "admin"))
    assert team.status_code == 200, team.text
    everyone = team.json()
    assert [r["rm_id"] for r in everyone["rms"]] == ["R1", "R2", "R3"]
    assert everyone["rms"][0]["name"] == "Ann"
    assert everyone["total"]["retention"]["clients_at_start"] == 6
    assert everyone["total"]["new_holdings"]["started"] == 3
    north = api.get(
        "/v1/kpis", params={**half_year, "team": "North"}, headers=_auth(bank, "admin")
    ).json()
    assert [r["rm_id"] for r in north["rms"]] == ["R1", "R2"]
    nowhere = api.get("/v1/kpis", params={"team": "Nowhere"}, headers=_auth(bank, "admin"))
    assert nowhere.status_code == 404


def test_feedback_history_newest_first_in_ones_own_portfolio(bank: Bank, api: TestClient) -> None:
    ann, bo = bank.users["ann"], bank.users["bo"]
    with transaction(bank.db) as session:
        a_loan, a_card, b_loan = _show(session, ann, [("A", "LOAN"), ("A", "CARD"), ("B", "LOAN")])
        (h_save,) = _show(session, bo, [("H", "SAVE")])
        ids = {
            "a_offered": _feedback(session, a_loan, ann, "offered", _at(1)),
            "a_accepted": _feedback(session, a_loan, ann, "accepted", _at(5), amount=7000),
            "b_declined": _feedback(session, b_loan, ann, "declined", _at(3), reason="too dear"),
            "h_offered": _feedback(session, h_save, bo, "offered", _at(4)),
            # recorded last, given first: the history follows when it was given
            "a_card": _feedback(session, a_card, bank.users["admin"], "offered", _at(1, 8)),
        }
    page = api.get("/v1/clients/A/feedback", headers=_auth(bank, "ann"))
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == 3
    assert [i["feedback_id"] for i in body["items"]] == [
        ids["a_accepted"],
        ids["a_offered"],
        ids["a_card"],
    ]
    top = body["items"][0]
    assert top == {
        "feedback_id": ids["a_accepted"],
        "recommendation_id": a_loan,
        "kind": "cross_sell",
        "client_id": "A",
        "product_code": "LOAN",
        "outcome": "accepted",
        "reason": None,
        "amount": 7000,
        "created_at": top["created_at"],
        "user": "ann",
    }
    assert datetime.fromisoformat(top["created_at"]) == _at(5)
    assert body["items"][2]["user"] == "admin"
    rm_page = api.get("/v1/rms/R1/feedback", headers=_auth(bank, "ann")).json()
    assert [i["feedback_id"] for i in rm_page["items"]] == [
        ids["a_accepted"],
        ids["b_declined"],
        ids["a_offered"],
        ids["a_card"],
    ]  # not R2's client H
    assert rm_page["items"][1]["reason"] == "too dear"
    paged = api.get(
        "/v1/rms/R1/feedback", params={"limit": 2, "offset": 1}, headers=_auth(bank, "ann")
    ).json()
    assert (paged["total"], paged["offset"], paged["limit"]) == (4, 1, 2)
    assert paged["items"] == rm_page["items"][1:3]
    # an RM reads only their own portfolio; admins every one
    for path in ("/v1/clients/A/feedback", "/v1/rms/R1/feedback", "/v1/clients/ZZ/feedback"):
        refused = api.get(path, headers=_auth(bank, "bo"))
        assert refused.status_code == 404, path
        assert api.get(path).status_code == 401
    assert api.get("/v1/clients/A/feedback", headers=_auth(bank, "ds")).status_code == 403
    assert api.get("/v1/rms/R2/feedback", headers=_auth(bank, "bo")).json()["total"] == 1
    assert api.get("/v1/rms/R1/feedback", headers=_auth(bank, "admin")).json()["total"] == 4
    too_many = api.get("/v1/rms/R1/feedback", params={"limit": 0}, headers=_auth(bank, "ann"))
    assert too_many.status_code == 422


def test_period_months() -> None:
    assert HALF_YEAR.months == (date(2024, 1, 1), date(2024, 6, 1))
    assert kpi_db.Period(date(2024, 1, 2), date(2024, 3, 1)).months == (
        date(2024, 2, 1),
        date(2024, 3, 1),
    )
    assert kpi_db.Period(date(2024, 12, 2), date(2024, 12, 31)).months is None
    assert kpi_db.Period(date(2024, 12, 2), date(2025, 1, 1)).months == (
        date(2025, 1, 1),
        date(2025, 1, 1),
    )
    assert HALF_YEAR.ends_before == datetime(2024, 7, 1, tzinfo=UTC)
