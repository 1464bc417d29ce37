"""Ingest of the tiny bank into SQLite and PostgreSQL: counts, upserts, all-or-nothing."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, text
from typer.testing import CliRunner, Result

from rmreco.config import Settings
from rmreco.data import ingest as ingest_module
from rmreco.data.ingest import ingest_folder
from rmreco.data.tables import InputTable
from rmreco.db.engine import create_engine_for, session_factory
from rmreco.db.migrate import SchemaNotCurrentError, current, head_revision, upgrade
from rmreco.db.schema import Base, Client, IngestRun, Product
from rmreco.domain import contract
from rmreco.domain.errors import DataContractError
from rmreco.synthetic import generate_bank

TINY_COUNTS = {
    "relationship_managers": 2,
    "products": 5,
    "clients": 4,
    "account_months": 24,
    "holdings": 8,
    "credit_events": 1,
    "financials": 4,
}
Snapshot = dict[str, list[tuple[Any, ...]]]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    upgrade(db_url)
    engine = create_engine_for(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", currency="EUR")


def snapshot(engine: Engine) -> Snapshot:
    """Every row of every table, in primary-key order."""
    with engine.connect() as connection:
        return {
            table.name: [
                tuple(row)
                for row in connection.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in Base.metadata.sorted_tables
        }


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            t.name: connection.execute(select(func.count()).select_from(t)).scalar_one()
            for t in contract.TABLES
            for t in [Base.metadata.tables[t.name]]
        }


def edit_csv(folder: Path, name: str, row: int, column: str, value: str) -> None:
    path = folder / f"{name}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[row - 1, column] = value
    frame.to_csv(path, index=False)


def test_loads_the_tiny_bank(engine: Engine, tiny_bank: Path, settings: Settings) -> None:
    summary = ingest_folder(tiny_bank, engine, settings=settings)
    assert summary.rows == TINY_COUNTS
    assert counts(engine) == TINY_COUNTS
    assert summary.currency == "EUR"
    assert len(summary.fingerprint) == 64
    with session_factory(engine)() as session:
        run = session.get(IngestRun, summary.run_id)
        assert run is not None
        assert run.status == "succeeded"
        assert run.finished_at is not None
        assert run.row_counts == TINY_COUNTS
        overdraft = session.get(Product, "OVERDRAFT")
        assert overdraft is not None
        assert overdraft.params == {"collateral": "no"}
        assert overdraft.lgd == pytest.approx(0.45)
        client = session.get(Client, "C001")
        assert client is not None
        assert client.founded is not None
        assert client.founded.isoformat() == "2015-03-12"
        assert client.employees == 12
        assert session.get(Client, "C004") is not None
        c004 = session.get(Client, "C004")
        assert c004 is not None
        assert c004.sector is None


def test_loading_twice_does_not_duplicate(
    engine: Engine, tiny_bank: Path, settings: Settings
) -> None:
    ingest_folder(tiny_bank, engine, settings=settings)
    before = snapshot(engine)
    ingest_folder(tiny_bank, engine, settings=settings)
    after = snapshot(engine)
    assert counts(engine) == TINY_COUNTS
    assert {k: v for k, v in after.items() if k != "ingest_runs"} == {
        k: v for k, v in before.items() if k != "ingest_runs"
    }
    assert len(after["ingest_runs"]) == 2


def test_a_changed_value_is_updated(engine: Engine, tiny_bank: Path, settings: Settings) -> None:
    ingest_folder(tiny_bank, engine, settings=settings)
    edit_csv(tiny_bank, "clients", 1, "turnover", "2000000")
    edit_csv(tiny_bank, "holdings", 1, "end_month", "2024-05-01")
    edit_csv(tiny_bank, "products", 1, "collateral", "yes")
    ingest_folder(tiny_bank, engine, settings=settings)
    with engine.connect() as connection:
        assert (
            connection.execute(
                text("SELECT turnover FROM clients WHERE client_id = 'C001'")
            ).scalar()
            == 2_000_000
        )
        assert (
            str(
                connection.execute(
                    text(
                        "SELECT end_month FROM holdings WHERE client_id = 'C001' "
                        "AND product_code = 'OVERDRAFT'"
                    )
                ).scalar()
            )
            == "2024-05-01"
        )
    with session_factory(engine)() as session:
        product = session.get(Product, "OVERDRAFT")
        assert product is not None
        assert product.params == {"collateral": "yes"}
    assert counts(engine) == TINY_COUNTS


def test_parquet_input_loads_the_same(engine: Engine, tiny_bank: Path, settings: Settings) -> None:
    from rmreco.data.tables import read_input_folder

    read = read_input_folder(tiny_bank)
    for table in read.tables.values():
        table.frame.reset_index(drop=True).to_parquet(tiny_bank / f"{table.name}.parquet")
        table.path.unlink()
    assert ingest_folder(tiny_bank, engine, settings=settings).rows == TINY_COUNTS
    assert counts(engine) == TINY_COUNTS


def test_refused_input_leaves_the_database_as_it_was(
    engine: Engine, tiny_bank: Path, settings: Settings
) -> None:
    ingest_folder(tiny_bank, engine, settings=settings)
    before = snapshot(engine)
    edit_csv(tiny_bank, "clients", 1, "turnover", "999")  # a valid change ...
    edit_csv(tiny_bank, "account_months", 3, "credit_turnover", "-5")  # ... and a bad one
    edit_csv(tiny_bank, "holdings", 2, "client_id", "C999")
    with pytest.raises(DataContractError) as caught:
        ingest_folder(tiny_bank, engine, settings=settings)
    assert {(p.file, p.row, p.column) for p in caught.value.problems} == {
        ("account_months.csv", 3, "credit_turnover"),
        ("holdings.csv", 2, "client_id"),
    }
    assert snapshot(engine) == before


def test_refused_first_load_writes_nothing(
    engine: Engine, tiny_bank: Path, settings: Settings
) -> None:
    (tiny_bank / "products.csv").unlink()
    with pytest.raises(DataContractError):
        ingest_folder(tiny_bank, engine, settings=settings)
    assert all(rows == [] for rows in snapshot(engine).values())


def test_failure_during_the_write_rolls_everything_back(
    engine: Engine, tiny_bank: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_folder(tiny_bank, engine, settings=settings)
    before = snapshot(engine)
    edit_csv(tiny_bank, "relationship_managers", 1, "name", "Anna Keller-Roth")
    edit_csv(tiny_bank, "clients", 2, "employees", "5")
    real_upsert = ingest_module.upsert_table
    written: list[str] = []

    def failing_upsert(session: Any, table: InputTable) -> int:
        if table.name == contract.ACCOUNT_MONTHS.name:
            # RMs, products and clients are written by now; so is the running ingest run
            assert session.scalar(select(func.count()).select_from(IngestRun)) == 2
            raise RuntimeError("connection lost")
        written.append(table.name)
        return real_upsert(session, table)

    monkeypatch.setattr(ingest_module, "upsert_table", failing_upsert)
    with pytest.raises(RuntimeError, match="connection lost"):
        ingest_folder(tiny_bank, engine, settings=settings)
    assert written == ["relationship_managers", "products", "clients"]
    assert snapshot(engine) == before


def test_database_must_be_migrated(db_url: str, tiny_bank: Path, settings: Settings) -> None:
    engine = create_engine_for(db_url)
    try:
        with pytest.raises(SchemaNotCurrentError, match="rmreco db upgrade"):
            ingest_folder(tiny_bank, engine, settings=settings)
    finally:
        engine.dispose()


# --- a fresh database on the first ingest (the CLI) ----------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's settings in a temporary home, with an empty tracking store and no models."""
    monkeypatch.setenv("RMRECO_HOME", str(tmp_path / "home"))
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("RMRECO_MODELS_DIR", str(models))
    monkeypatch.setenv("RMRECO_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")


def _cli_ingest(folder: Path, db_url: str) -> Result:
    from rmreco.cli.main import app

    return CliRunner().invoke(app, ["ingest", str(folder), "--db", db_url])


@pytest.mark.usefixtures("cli_env")
def test_cli_ingest_creates_the_schema_of_an_empty_database(db_url: str, tiny_bank: Path) -> None:
    assert current(db_url) is None
    result = _cli_ingest(tiny_bank, db_url)
    assert result.exit_code == 0, result.output
    assert f"created the schema (revision {head_revision()})" in result.output
    assert current(db_url) == head_revision()
    engine = create_engine_for(db_url)
    try:
        assert counts(engine) == TINY_COUNTS
    finally:
        engine.dispose()
    again = _cli_ingest(tiny_bank, db_url)  # at head: loads as before, nothing created
    assert again.exit_code == 0, again.output
    assert "created the schema" not in again.output


@pytest.mark.usefixtures("cli_env")
def test_cli_ingest_refuses_an_older_schema_naming_the_command(
    db_url: str, tiny_bank: Path
) -> None:
    upgrade(db_url, "0003")
    result = _cli_ingest(tiny_bank, db_url)
    assert result.exit_code != 0
    message = " ".join(result.output.split())
    assert "revision 0003" in message
    assert f"needs revision {head_revision()}" in message
    assert "rmreco db upgrade --db" in message
    assert current(db_url) == "0003"  # never migrated behind the operator's back


@pytest.mark.usefixtures("cli_env")
def test_cli_ingest_says_once_how_many_month_end_dates_were_read(
    tiny_bank: Path, sqlite_url: str
) -> None:
    path = tiny_bank / "account_months.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["month"] = (pd.to_datetime(frame["month"]) + pd.offsets.MonthEnd(0)).dt.strftime(
        "%Y-%m-%d"
    )
    frame.to_csv(path, index=False)
    result = _cli_ingest(tiny_bank, sqlite_url)
    assert result.exit_code == 0, result.output
    line = "account_months.month: 24 dates within their month read as that month"
    assert result.output.count(line) == 1
    assert "first day" not in result.output


def test_month_ends_and_several_accounts_load_as_the_client_months(
    engine: Engine, tiny_bank: Path, settings: Settings, tmp_path: Path
) -> None:
    """The same bank sent with month-end dates and two accounts per client-month is stored as
    the client-months of the plain shape, and the summary says what reading did, once."""
    plain = tmp_path / "plain"
    shutil.copytree(tiny_bank, plain)
    path = tiny_bank / "account_months.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["month"] = (pd.to_datetime(frame["month"]) + pd.offsets.MonthEnd(0)).dt.strftime(
        "%Y-%m-%d"
    )
    current = frame.assign(account_id="CUR")
    card = frame.assign(account_id="CARD")
    for column, how, _ in contract.ACCOUNT_MONTHS.aggregation:
        if how == "sum":  # the whole figure on the current account, none on the card
            required = contract.ACCOUNT_MONTHS.column(column).required
            card[column] = "0" if required else ""
    pd.concat([card, current]).to_csv(path, index=False)

    summary = ingest_folder(tiny_bank, engine, settings=settings)
    assert summary.rows == TINY_COUNTS
    assert summary.notes == [
        "account_months.month: 48 dates within their month read as that month",
        "account_months: 48 rows of one account_id each aggregated to 24 rows of client_id, month",
    ]
    shaped = snapshot(engine)
    ingest_folder(plain, engine, settings=settings)  # the plain shape changes no row
    assert snapshot(engine)["account_months"] == shaped["account_months"]


def test_one_currency_per_database(engine: Engine, tiny_bank: Path, settings: Settings) -> None:
    ingest_folder(tiny_bank, engine, settings=settings)
    before = snapshot(engine)
    frame = pd.read_csv(tiny_bank / "clients.csv", dtype=str, keep_default_na=False)
    frame["currency"] = "USD"
    frame.to_csv(tiny_bank / "clients.csv", index=False)
    with pytest.raises(DataContractError) as caught:
        ingest_folder(tiny_bank, engine, settings=settings)
    problem = caught.value.problems[0]
    assert (problem.file, problem.column) == ("clients.csv", "currency")
    assert "EUR" in problem.message
    assert snapshot(engine) == before


def test_first_load_sets_the_currency(engine: Engine, tiny_bank: Path, settings: Settings) -> None:
    frame = pd.read_csv(tiny_bank / "clients.csv", dtype=str, keep_default_na=False)
    frame["currency"] = "chf"
    frame.to_csv(tiny_bank / "clients.csv", index=False)
    assert ingest_folder(tiny_bank, engine, settings=settings).currency == "CHF"
    # without the column, the setting (EUR) no longer matches the database (CHF)
    frame.drop(columns=["currency"]).to_csv(tiny_bank / "clients.csv", index=False)
    with pytest.raises(DataContractError, match="RMRECO_CURRENCY"):
        ingest_folder(tiny_bank, engine, settings=settings)


def test_a_partitioned_bank_loads_as_the_same_bank_in_single_files(
    tmp_path: Path, settings: Settings
) -> None:
    """The client-partitioned layout (``rmreco generate --partitions``) ingests to the same rows
    as the same bank written one file per table, each into a database of its own."""
    arguments: dict[str, Any] = {"n_clients": 300, "n_months": 13, "seed": 4, "chunk_clients": 128}
    single, parted = tmp_path / "single", tmp_path / "parted"
    generate_bank(single, **arguments)
    generate_bank(parted, partitions=4, **arguments)
    assert len(list((parted / "account_months").glob("part-*.parquet"))) == 4
    loaded: list[tuple[dict[str, int], Snapshot]] = []
    for folder in (single, parted):
        url = f"sqlite:///{tmp_path / f'{folder.name}.db'}"
        upgrade(url)
        engine = create_engine_for(url)
        try:
            summary = ingest_folder(folder, engine, settings=settings)
            rows = snapshot(engine)
        finally:
            engine.dispose()
        del rows["ingest_runs"]  # their fingerprints and times differ
        loaded.append((summary.rows, rows))
    (single_counts, single_rows), (parted_counts, parted_rows) = loaded
    assert single_counts == parted_counts
    assert single_counts["clients"] == 300
    assert single_counts["account_months"] > 300 * 10
    assert parted_rows == single_rows


def _bank_of(folder: Path, n_clients: int, n_months: int) -> Path:
    """A valid bank of ``n_clients`` x ``n_months`` account rows, on the tiny bank's catalog."""
    rng = np.random.default_rng(0)
    ids = [f"C{i:05d}" for i in range(n_clients)]
    months = pd.date_range("2021-01-01", periods=n_months, freq="MS").strftime("%Y-%m-%d")
    pd.DataFrame(
        {
            "client_id": ids,
            "segment": "sme",
            "sector": "G",
            "region": "North",
            "founded": "2010-01-01",
            "employees": 5,
            "turnover": 1e6,
            "rm_id": "RM01",
        }
    ).to_csv(folder / "clients.csv", index=False)
    accounts = pd.DataFrame(
        {"client_id": np.repeat(ids, n_months), "month": np.tile(months, n_clients)}
    )
    for name in contract.ACCOUNT_MONTHS.column_names[2:]:
        kind = contract.ACCOUNT_MONTHS.column(name).kind
        accounts[name] = (
            rng.integers(0, 20, len(accounts))
            if kind == "int"
            else rng.gamma(2, 1000, len(accounts)).round(2)
        )
    accounts.to_csv(folder / "account_months.csv", index=False)
    pd.DataFrame(
        {
            "client_id": np.repeat(ids, 2),
            "product_code": np.tile(["OVERDRAFT", "PAYROLL"], n_clients),
            "start_month": "2020-01-01",
            "end_month": "",
            "amount": 1000.0,
        }
    ).to_csv(folder / "holdings.csv", index=False)
    pd.DataFrame({"client_id": ids[:50], "month": months[10], "event_type": "default"}).to_csv(
        folder / "credit_events.csv", index=False
    )
    (folder / "financials.csv").unlink()
    return folder


@pytest.mark.slow
def test_two_thousand_clients_load_in_seconds(
    engine: Engine, tiny_bank: Path, settings: Settings
) -> None:
    folder = _bank_of(tiny_bank, 2000, 36)
    started = time.perf_counter()
    summary = ingest_folder(folder, engine, settings=settings)
    seconds = time.perf_counter() - started
    assert summary.rows["account_months"] == 72_000
    assert counts(engine)["account_months"] == 72_000
    assert seconds < 20, f"ingest took {seconds:.1f} s"
