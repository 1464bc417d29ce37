"""One final outcome per recommendation, held by the database itself on SQLite and PostgreSQL,
and the upgrade that brings existing databases there without losing what RMs reported."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import IntegrityError

from rmreco.db.engine import create_engine_for
from rmreco.db.migrate import downgrade, upgrade

BOOK = (
    "INSERT INTO relationship_managers (rm_id, name, role) VALUES ('RM1', 'A', 'brm')",
    "INSERT INTO products (product_code, name, kind, segments, params) "
    "VALUES ('P1', 'Loan', 'financing', 'sme', '{}')",
    "INSERT INTO clients (client_id, rm_id, segment) VALUES ('C1', 'RM1', 'sme')",
    "INSERT INTO users (name, role, api_key_prefix, api_key_hash, created_at) "
    "VALUES ('u', 'brm', 'abcd1234', 'h', '2026-01-01')",
    "INSERT INTO recommendations (id, created_at, user_id, client_id, kind, product_code, rank, "
    "model_versions, output) VALUES ('R1', '2026-01-01', 1, 'C1', 'cross_sell', 'P1', 1, '{}', "
    "'{}')",
)


def _feedback(outcome: str, day: int) -> str:
    return (
        "INSERT INTO feedback (recommendation_id, client_id, product_code, user_id, outcome, "
        f"created_at) VALUES ('R1', 'C1', 'P1', 1, '{outcome}', '2026-01-{day:02d}')"
    )


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    upgrade(db_url)
    # a plain engine (no BEGIN IMMEDIATE recipe needed): these tests write raw rows
    plain = create_engine(create_engine_for(db_url).url)
    with plain.begin() as c:
        for statement in BOOK:
            c.execute(text(statement))
    yield plain
    plain.dispose()


def _outcomes(engine: Engine, table: str = "feedback") -> list[str]:
    with engine.connect() as c:
        return [r[0] for r in c.execute(text(f"SELECT outcome FROM {table} ORDER BY id"))]


def test_the_database_refuses_a_second_final_outcome(engine: Engine) -> None:
    with engine.begin() as c:
        c.execute(text(_feedback("offered", 2)))
        c.execute(text(_feedback("accepted", 3)))
    for second in ("declined", "accepted", "not_interested"):
        with pytest.raises(IntegrityError), engine.begin() as c:
            c.execute(text(_feedback(second, 4)))
    # reports that close nothing stay free
    with engine.begin() as c:
        c.execute(text(_feedback("offered", 5)))
    assert _outcomes(engine) == ["offered", "accepted", "offered"]


def test_upgrade_moves_later_final_outcomes_aside_and_keeps_them(db_url: str) -> None:
    upgrade(db_url)
    plain = create_engine(create_engine_for(db_url).url)
    try:
        with plain.begin() as c:
            for statement in BOOK:
                c.execute(text(statement))
        downgrade(db_url, "0007")  # before the constraint: the race could record both
        with plain.begin() as c:
            c.execute(text(_feedback("offered", 2)))
            c.execute(text(_feedback("accepted", 3)))
            c.execute(text(_feedback("declined", 3)))  # same instant: the lower id was first
            c.execute(text(_feedback("accepted", 4)))
        upgrade(db_url)
        assert _outcomes(plain) == ["offered", "accepted"]
        assert _outcomes(plain, "feedback_conflicts") == ["declined", "accepted"]
        with pytest.raises(IntegrityError), plain.begin() as c:
            c.execute(text(_feedback("declined", 5)))
        # going back puts them back where they were
        downgrade(db_url, "0007")
        assert sorted(_outcomes(plain)) == ["accepted", "accepted", "declined", "offered"]
    finally:
        plain.dispose()
