"""The service's promises under races, retries and a stuck database, on SQLite and PostgreSQL:
one final outcome per recommendation whoever posts it, one row per idempotency key however often
(and however simultaneously) it is sent, and a bounded 503 rather than a stall when the
database holds a lock, with ``/healthz`` answering throughout.

The book is the tiny bank with recommendation rows written directly: feedback, KPIs and the
probes need no model, so no training is paid for here. The server is ``rmreco serve --workers
2`` on a free port, each worker with a small pool (2 connections, 1 s to get one, 2 s lock
wait), so every promise holds across processes, not only across threads.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from served_bank import empty_database, serve_workers
from sqlalchemy import Engine, create_engine, func, select, text, update

from rmreco.config import Settings
from rmreco.data.ingest import ingest_folder
from rmreco.db import repository, schema
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.db.migrate import upgrade
from rmreco.serving.idempotency import KEY_LIFETIME
from rmreco.serving.security import issue_key

ROOT = Path(__file__).resolve().parents[2]

#: timing-bound (or the type check): run alone, not beside other tests (see Makefile)
pytestmark = pytest.mark.serial
TINY_BANK = ROOT / "tests" / "fixtures" / "tiny_bank"
LOCK_TIMEOUT_MS = 2_000
POOL_TIMEOUT_SECONDS = 1.0
#: what a request may take, at most, while the database is stuck: the slot wait, then the
#: lock wait, with room for a slow, shared machine
STUCK_BOUND_SECONDS = POOL_TIMEOUT_SECONDS + LOCK_TIMEOUT_MS / 1000 + 3.0


@dataclass
class Book:
    url: str
    db_url: str
    engine: Engine
    brm_key: str
    admin_key: str

    def recommendation(self) -> str:
        """A new cross-sell recommendation of RM01's client C001 (TERM_LOAN), by brm."""
        rec_id = str(uuid.uuid4())
        with self.engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO recommendations (id, created_at, user_id, client_id, kind, "
                    "product_code, rank, model_versions, output) VALUES (:id, :at, 1, 'C001', "
                    "'cross_sell', 'TERM_LOAN', 1, '{}', '{}')"
                ),
                {"id": rec_id, "at": schema.utcnow()},
            )
        return rec_id

    def post(self, path: str, body: Any, key: str | None = None, **headers: str) -> httpx.Response:
        sent = {"Authorization": f"Bearer {key or self.brm_key}", **headers}
        return httpx.post(f"{self.url}{path}", json=body, headers=sent, timeout=30)

    def feedback_rows(self, rec_id: str) -> list[str]:
        with self.engine.connect() as c:
            rows = c.execute(
                select(schema.Feedback.outcome)
                .where(schema.Feedback.recommendation_id == rec_id)
                .order_by(schema.Feedback.id)
            )
            return [r[0] for r in rows]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def book(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Book]:
    """One server per database for the module: each test posts on recommendations of its own."""
    with empty_database(request.param, tmp_path_factory) as db_url:
        yield from _book(db_url, tmp_path_factory.mktemp("faults"))


def _book(db_url: str, tmp_path: Path) -> Iterator[Book]:
    upgrade(db_url)
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    engine = create_engine_for(db_url)
    ingest_folder(TINY_BANK, engine, settings=settings)
    keys = {}
    with transaction(session_factory(engine)) as session:
        for name, role, rm in (("brm", "brm", "RM01"), ("admin", "admin", None)):
            issued = issue_key()
            repository.add_user(
                session,
                name=name,
                role=role,
                rm_id=rm,
                key_prefix=issued.prefix,
                key_hash=issued.hash,
            )
            keys[name] = issued.key
    engine.dispose()
    plain = create_engine(create_engine_for(db_url).url)
    service = {
        "RMRECO_HOME": str(tmp_path / "home"),
        "RMRECO_DATABASE_URL": db_url,
        "RMRECO_DB_POOL_SIZE": "2",
        "RMRECO_DB_POOL_TIMEOUT_SECONDS": str(POOL_TIMEOUT_SECONDS),
        "RMRECO_DB_LOCK_TIMEOUT_MS": str(LOCK_TIMEOUT_MS),
    }
    try:
        with serve_workers(tmp_path, service, workers=2) as url:
            yield Book(url, db_url, plain, keys["brm"], keys["admin"])
    finally:
        plain.dispose()


def _feedback_path(rec_id: str) -> str:
    return f"/v1/recommendations/{rec_id}/feedback"


def test_a_contradicting_outcome_is_409_naming_the_recorded_one(book: Book) -> None:
    rec = book.recommendation()
    first = book.post(_feedback_path(rec), {"outcome": "accepted", "amount": 1000})
    assert first.status_code == 201, first.text
    again = book.post(_feedback_path(rec), {"outcome": "accepted"})
    assert again.status_code == 200
    assert again.json()["is_repeat"]
    assert again.json()["feedback_id"] == first.json()["feedback_id"]
    other = book.post(_feedback_path(rec), {"outcome": "declined"})
    assert other.status_code == 409
    error = other.json()["error"]
    assert error["code"] == "outcome_recorded"
    assert error["field"] == "outcome"
    assert error["details"]["outcome"] == "accepted"
    assert error["details"]["feedback_id"] == first.json()["feedback_id"]
    assert book.feedback_rows(rec) == ["accepted"]


def test_contradicting_outcomes_posted_at_once_leave_exactly_one(book: Book) -> None:
    rec = book.recommendation()
    outcomes = ["accepted", "declined", "not_interested"] * 7
    with ThreadPoolExecutor(max_workers=len(outcomes)) as pool:
        answers = list(pool.map(lambda o: book.post(_feedback_path(rec), {"outcome": o}), outcomes))
    statuses = sorted(a.status_code for a in answers)
    assert all(s in (200, 201, 409) for s in statuses), [a.text for a in answers]
    assert statuses.count(201) == 1
    (kept,) = book.feedback_rows(rec)
    # every answer agrees with what was kept: 201 recorded it, 200 repeated it, 409 named it
    for outcome, answer in zip(outcomes, answers, strict=True):
        if answer.status_code == 409:
            assert answer.json()["error"]["details"]["outcome"] == kept
        else:
            assert outcome == kept


def test_an_idempotency_key_gives_the_same_answer_and_one_row(book: Book) -> None:
    rec = book.recommendation()
    key = str(uuid.uuid4())
    body = {"outcome": "offered"}  # not final: without the key, every post would be a row
    first = book.post(_feedback_path(rec), body, **{"Idempotency-Key": key})
    again = book.post(_feedback_path(rec), body, **{"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert book.feedback_rows(rec) == ["offered"]
    # the same key with another body is a mistake of the client's, said as such
    reused = book.post(_feedback_path(rec), {"outcome": "accepted"}, **{"Idempotency-Key": key})
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert reused.json()["error"]["field"] == "Idempotency-Key"
    # keys are the caller's own: another user's identical key is another request
    admin = book.post(_feedback_path(rec), body, key=book.admin_key, **{"Idempotency-Key": key})
    assert admin.status_code == 201
    assert book.feedback_rows(rec) == ["offered", "offered"]


def test_ten_posts_with_one_key_at_once_store_one_row(book: Book) -> None:
    rec = book.recommendation()
    key = str(uuid.uuid4())
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(
            pool.map(
                lambda _: book.post(
                    _feedback_path(rec), {"outcome": "offered"}, **{"Idempotency-Key": key}
                ),
                range(10),
            )
        )
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.json()["feedback_id"] for a in answers}) == 1
    assert book.feedback_rows(rec) == ["offered"]


@contextlib.contextmanager
def _database_locked(book: Book) -> Iterator[None]:
    """Hold a lock every request of the service needs, from another connection."""
    with book.engine.connect() as c:
        if c.dialect.name == "sqlite":
            c.exec_driver_sql("BEGIN EXCLUSIVE")  # the write lock, and readers shut out
        else:
            c.exec_driver_sql("BEGIN")
            c.exec_driver_sql("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            c.exec_driver_sql("ROLLBACK")


def test_a_stuck_database_is_a_bounded_503_and_healthz_answers(book: Book) -> None:
    rec = book.recommendation()
    with _database_locked(book), ThreadPoolExecutor(max_workers=8) as pool:
        started = time.monotonic()
        # more requests than connections: some wait for the lock, the others for a slot
        pending = [
            pool.submit(book.post, _feedback_path(rec), {"outcome": "offered"}) for _ in range(6)
        ]
        time.sleep(0.2)
        probe_started = time.monotonic()
        probe = httpx.get(f"{book.url}/healthz", timeout=5)
        probe_took = time.monotonic() - probe_started
        answers = [p.result() for p in pending]
        took = time.monotonic() - started
    assert probe.status_code == 200
    assert probe_took < 1.0  # the event loop was free while the database work waited
    assert {a.status_code for a in answers} == {503}, [a.text for a in answers]
    assert all(a.headers.get("Retry-After") for a in answers)
    assert all(a.json()["error"]["code"] == "unavailable" for a in answers)
    assert took < STUCK_BOUND_SECONDS
    # the lock gone, the same worker answers again: nothing was left stuck
    after = book.post(_feedback_path(rec), {"outcome": "offered"})
    assert after.status_code == 201, after.text
    assert book.feedback_rows(rec) == ["offered"]


def test_an_expired_idempotency_key_is_a_new_request_and_old_answers_are_forgotten(
    book: Book,
) -> None:
    rec = book.recommendation()
    key = str(uuid.uuid4())
    first = book.post(_feedback_path(rec), {"outcome": "offered"}, **{"Idempotency-Key": key})
    assert first.status_code == 201
    with book.engine.begin() as c:  # a day and an hour later
        c.execute(
            update(schema.IdempotentAnswer)
            .where(schema.IdempotentAnswer.key == key)
            .values(created_at=schema.utcnow() - KEY_LIFETIME - timedelta(hours=1))
        )
    # the key's lifetime is over: another body under it is a new request, not a reuse
    again = book.post(_feedback_path(rec), {"outcome": "accepted"}, **{"Idempotency-Key": key})
    assert again.status_code == 201, again.text
    assert book.feedback_rows(rec) == ["offered", "accepted"]
    with book.engine.begin() as c:
        c.execute(
            update(schema.IdempotentAnswer)
            .where(schema.IdempotentAnswer.key == key)
            .values(created_at=schema.utcnow() - KEY_LIFETIME - timedelta(hours=1))
        )
    # the other tests' keys are fresh: only this one is forgotten
    with transaction(session_factory(book.engine)) as session:
        assert repository.forget_answers(session, schema.utcnow() - KEY_LIFETIME) == 1
    with book.engine.connect() as c:
        left = c.execute(
            select(func.count())
            .select_from(schema.IdempotentAnswer)
            .where(schema.IdempotentAnswer.key == key)
        ).scalar_one()
    assert left == 0
