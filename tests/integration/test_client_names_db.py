"""Clients' names in SQLite and PostgreSQL: ingest writes them (an empty one as NULL, a file
without them leaves them be, a too long one is refused before anything is written), the
repository hands them to the pages, and migration 0010 adds the column, takes names kept as a
bank's own column (a feature) out of ``extra``, and goes back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, inspect, text

from rmreco.config import Settings
from rmreco.data.ingest import ingest_folder
from rmreco.db import repository
from rmreco.db.engine import create_engine_for, session_factory
from rmreco.db.migrate import downgrade, upgrade
from rmreco.domain import contract
from rmreco.domain.errors import DataContractError

NAMES = {
    "C001": "Peeters Handel BV",
    "C002": None,
    "C003": "Lambert Métal Industries SA",
    "C004": None,
}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    upgrade(db_url)
    engine = create_engine_for(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", currency="EUR")


def stored_names(engine: Engine) -> dict[str, str | None]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT client_id, name FROM clients ORDER BY client_id"))
        return {str(client_id): name for client_id, name in rows}


def edit_clients(folder: Path, **columns: list[str]) -> None:
    path = folder / "clients.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column, values in columns.items():
        frame[column] = values
    frame.to_csv(path, index=False)


def drop_names(folder: Path) -> None:
    path = folder / "clients.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.drop(columns=["name"]).to_csv(path, index=False)


def test_ingest_writes_names_and_an_empty_one_as_null(
    engine: Engine, tiny_bank: Path, settings: Settings
) -> None:
    ingest_folder(tiny_bank, engine, settings=settings)
    assert stored_names(engine) == NAMES
    with engine.connect() as connection:
        kinds = connection.execute(text("SELECT table_name, column_name FROM extra_columns"))
        assert list(kinds) == [], "a name was kept as one of the bank's own columns"
        extras = connection.execute(text("SELECT extra FROM clients")).scalars().all()
        assert all(extra is None for extra in extras)


def test_a_load_without_names_keeps_those_the_database_has(
    engine: Engine, tiny_bank: Path, settings: Settings
) -> None:
    ingest_folder(tiny_bank, engine, settings=settings)
    drop_names(tiny_bank)
    ingest_folder(tiny_bank, engine, settings=settings)
    assert stored_names(engine) == NAMES


def test_a_first_load_without_names_leaves_them_empty(
    engine: Engine, tiny_bank: Path, settings: Settings
) -> None:
    drop_names(tiny_bank)
    summary = ingest_folder(tiny_bank, engine, settings=settings)
    assert summary.rows[contract.CLIENTS.name] == 4
    assert stored_names(engine) == dict.fromkeys(NAMES)


def test_a_changed_name_is_updated(engine: Engine, tiny_bank: Path, settings: Settings) -> None:
    ingest_folder(tiny_bank, engine, settings=settings)
    edit_clients(tiny_bank, name=["Peeters Groothandel BV", "Nieuwe Naam CommV", "", ""])
    ingest_folder(tiny_bank, engine, settings=settings)
    assert stored_names(engine) == {
        "C001": "Peeters Groothandel BV",
        "C002": "Nieuwe Naam CommV",
        "C003": None,
        "C004": None,
    }


def test_a_too_long_name_is_refused_and_nothing_is_written(
    engine: Engine, tiny_bank: Path, settings: Settings
) -> None:
    limit = contract.CLIENT_NAME_MAX_LENGTH
    edit_clients(tiny_bank, name=["Fits " + "a" * (limit - 5), "", "Private " + "b" * limit, ""])
    with pytest.raises(DataContractError) as caught:
        ingest_folder(tiny_bank, engine, settings=settings)
    assert [(p.file, p.row, p.column) for p in caught.value.problems] == [
        ("clients.csv", 3, "name")
    ]
    assert "Private" not in str(caught.value)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM clients")).scalar_one() == 0
        assert connection.execute(text("SELECT count(*) FROM ingest_runs")).scalar_one() == 0


def test_the_repository_gives_the_pages_the_name(
    engine: Engine, tiny_bank: Path, settings: Settings
) -> None:
    ingest_folder(tiny_bank, engine, settings=settings)
    with session_factory(engine)() as session:
        named = repository.client_with_features(session, "C003")
        unnamed = repository.client_with_features(session, "C002")
    assert named is not None
    assert named.client_name == "Lambert Métal Industries SA"
    assert unnamed is not None
    assert unnamed.client_name is None


# --- migration 0010 ---------------------------------------------------------------------------


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def test_migration_moves_names_out_of_the_bank_columns_and_goes_back(db_url: str) -> None:
    upgrade(db_url, "0009")
    engine = create_engine_for(db_url)
    try:
        with engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO ingest_runs (started_at, source, fingerprint, currency, "
                    "row_counts, status) VALUES ('2026-01-01', 'old', 'f', 'EUR', '{}', "
                    "'succeeded')"
                )
            )
            run = c.execute(text("SELECT id FROM ingest_runs")).scalar_one()
            c.execute(
                text(
                    "INSERT INTO extra_columns (table_name, column_name, kind, ingest_run_id) "
                    "VALUES ('clients', 'name', 'categorical', :run), "
                    "('clients', 'score', 'numeric', :run)"
                ),
                {"run": run},
            )
            rows = {
                "C1": {"name": "  Weber Logistik GmbH ", "score": 3},
                "C2": {"score": 5},
                "C3": None,
                "C4": {"name": "x" * 250},
            }
            for client_id, extra in rows.items():
                c.execute(
                    text(
                        "INSERT INTO clients (client_id, segment, extra) "
                        "VALUES (:id, 'sme', :extra)"
                    ),
                    {"id": client_id, "extra": None if extra is None else json.dumps(extra)},
                )

        upgrade(db_url, "0010")
        with engine.connect() as c:
            moved = {
                r.client_id: (r.name, _json(r.extra))
                for r in c.execute(text("SELECT client_id, name, extra FROM clients"))
            }
            kinds = set(c.execute(text("SELECT table_name, column_name FROM extra_columns")))
        assert moved == {
            "C1": ("Weber Logistik GmbH", {"score": 3}),
            "C2": (None, {"score": 5}),
            "C3": (None, None),
            "C4": ("x" * contract.CLIENT_NAME_MAX_LENGTH, {}),
        }
        assert kinds == {("clients", "score")}, "the name is still a feature's column"

        downgrade(db_url, "0009")
        inspector = inspect(engine)
        assert "name" not in {col["name"] for col in inspector.get_columns("clients")}
        with engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM clients")).scalar_one() == 4
        upgrade(db_url)  # and forward again
        assert "name" in {col["name"] for col in inspect(engine).get_columns("clients")}
    finally:
        engine.dispose()
