"""Nothing of a load is dated after its own as-of (one account row dated 2099 emptied every
client's cross-sell candidates), and every ingest refusal is a message with an exit code, never
a traceback, whatever the files hold."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from rmreco.cli import app
from rmreco.cli.main import EXIT_INPUT_REFUSED
from rmreco.config import Settings
from rmreco.data.ingest import ingest_folder
from rmreco.db import schema
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.db.migrate import upgrade
from rmreco.domain import contract
from rmreco.domain.errors import DataContractError, Problem

TINY_BANK = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_bank"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated, empty SQLite database; refusals write nothing, so tests share it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'rmreco.db'}"
    upgrade(url)
    return url


@pytest.fixture
def engine(migrated: str) -> Iterator[Engine]:
    engine = create_engine_for(migrated)
    yield engine
    engine.dispose()


def _set(folder: Path, table: str, row: int, column: str, value: str) -> None:
    path = folder / f"{table}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[row - 1, column] = value
    frame.to_csv(path, index=False)


def _refused(folder: Path, engine: Engine, tmp_path: Path) -> list[Problem]:
    with pytest.raises(DataContractError) as caught:
        ingest_folder(folder, engine, settings=Settings(home=tmp_path / "home"))
    return caught.value.problems


def _nothing_written(engine: Engine) -> None:
    with transaction(session_factory(engine), read_only=True) as session:
        for model in (schema.IngestRun, *schema.CONTRACT_MODELS.values()):
            assert session.scalar(select(func.count()).select_from(model)) == 0, model


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def test_an_account_month_after_the_day_of_the_load_is_refused_and_nothing_is_written(
    tiny_bank: Path, engine: Engine, tmp_path: Path
) -> None:
    before = _today()
    later = (pd.Timestamp(before) + pd.DateOffset(months=2)).date()
    _set(tiny_bank, "account_months", 6, "month", f"{later:%Y-%m}-15")
    problems = _refused(tiny_bank, engine, tmp_path)
    after = _today()
    assert [(p.file, p.row, p.column) for p in problems] == [("account_months.csv", 6, "month")]
    message = problems[0].message
    assert f"month '{later:%Y-%m}' is after" in message
    # the as-of is the day of the load, and the refusal says so
    assert f"as-of {before.isoformat()}" in message or f"as-of {after.isoformat()}" in message
    assert "day of the load" in message
    _nothing_written(engine)


def test_every_dated_column_is_checked_against_the_manifest_extract_date(
    tiny_bank: Path, engine: Engine, tmp_path: Path
) -> None:
    # the tiny bank's history ends 2024-06: an extract of 2024-06-20 holds all of it
    (tiny_bank / contract.MANIFEST_FILE).write_text("extract_date: 2024-06-20\n")
    _set(tiny_bank, "clients", 2, "founded", "2024-06-21")  # a day after: refused
    _set(tiny_bank, "clients", 3, "onboarded", "2024-06-20")  # the day itself: fine
    _set(tiny_bank, "holdings", 2, "start_month", "2024-07-01")  # a month after: refused
    _set(tiny_bank, "credit_events", 1, "month", "2024-06-30")  # its own month: fine
    problems = _refused(tiny_bank, engine, tmp_path)
    assert {(p.file, p.row, p.column) for p in problems} == {
        ("clients.csv", 2, "founded"),
        ("holdings.csv", 2, "start_month"),
    }
    for problem in problems:
        assert "as-of 2024-06-20 (extract_date of manifest.yaml)" in problem.message
    by_column = {p.column: p.message for p in problems}
    assert by_column["founded"].startswith("'2024-06-21' is after")
    assert by_column["start_month"].startswith("month '2024-07' is after 2024-06")
    _nothing_written(engine)


def test_a_financial_year_after_the_as_of_year_is_refused(
    tiny_bank: Path, engine: Engine, tmp_path: Path
) -> None:
    # a statements-only book: no account history bounds the years, the as-of does
    (tiny_bank / "account_months.csv").unlink()
    (tiny_bank / contract.MANIFEST_FILE).write_text("extract_date: 2024-06-20\n")
    _set(tiny_bank, "financials", 1, "year", "2025")
    _set(tiny_bank, "financials", 2, "year", "2024")  # the as-of's year: fine
    problems = _refused(tiny_bank, engine, tmp_path)
    assert [(p.file, p.row, p.column) for p in problems] == [("financials.csv", 1, "year")]
    assert problems[0].message.startswith("year '2025' is after 2024, the year of the load's")
    _nothing_written(engine)


def test_a_month_within_the_as_of_month_and_a_planned_maturity_are_loaded(
    tiny_bank: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'rmreco.db'}"
    upgrade(url)
    engine = create_engine_for(url)
    try:
        # the last account month (2024-06) is the as-of's month, though after its day
        (tiny_bank / contract.MANIFEST_FILE).write_text("extract_date: 2024-06-10\n")
        _set(tiny_bank, "account_months", 24, "month", "2024-06-30")
        # a holding's end may be a planned maturity, known at the as-of
        _set(tiny_bank, "holdings", 1, "end_month", "2031-12-31")
        summary = ingest_folder(tiny_bank, engine, settings=Settings(home=tmp_path / "home"))
    finally:
        engine.dispose()
    assert summary.as_of == dt.date(2024, 6, 10)
    assert summary.rows["holdings"] == 8


# --- refusals are messages, not tracebacks ----------------------------------------------------


def _empty(folder: Path) -> None:
    (folder / "clients.csv").write_bytes(b"")


def _bom_only(folder: Path) -> None:
    (folder / "clients.csv").write_bytes(b"\xef\xbb\xbf\n\n")


def _binary_garbage(folder: Path) -> None:
    # fixed bytes (not os.urandom): the same message each run; 0x0a, a line break, comes first
    (folder / "holdings.csv").write_bytes(bytes(range(256)) * 8)


def _latin1(folder: Path) -> None:
    text = (folder / "clients.csv").read_text().replace("North", "Zürich")
    (folder / "clients.csv").write_bytes(text.encode("latin-1"))


def _utf16(folder: Path) -> None:
    text = (folder / "clients.csv").read_text()
    (folder / "clients.csv").write_bytes(text.encode("utf-16"))


def _duplicate_header(folder: Path) -> None:
    lines = (folder / "clients.csv").read_text().splitlines()
    lines[0] = lines[0].replace("region,founded", "region,region")
    (folder / "clients.csv").write_text("\n".join(lines) + "\n")


def _duplicate_parquet_column(folder: Path) -> None:
    ids = pa.array(["C001", "C002", "C003", "C004"])
    segments = pa.array(["sme", "sme", "corporate", "corporate"])
    table = pa.table([ids, ids, segments], names=["client_id", "client_id", "segment"])
    pq.write_table(table, folder / "clients.parquet")
    (folder / "clients.csv").unlink()


def _parquet_named_csv(folder: Path) -> None:
    pd.read_csv(folder / "products.csv").to_parquet(folder / "products.csv")


def _ragged_row(folder: Path) -> None:
    with (folder / "relationship_managers.csv").open("a") as handle:
        handle.write("RM03,Cleo Park,brm,SME South,South,extra\n")


def _open_quote(folder: Path) -> None:
    with (folder / "relationship_managers.csv").open("a") as handle:
        handle.write('RM03,"Cleo Park,brm,SME South,South\n')


HOSTILE = {
    "empty file": (_empty, "clients.csv: is empty: a CSV file needs at least its header row"),
    "byte-order mark only": (_bom_only, "clients.csv: is empty"),
    "binary garbage": (
        _binary_garbage,
        "holdings.csv: is not UTF-8 text: line 2 holds the byte 0x80",
    ),
    "latin-1 text": (_latin1, "clients.csv: is not UTF-8 text: line 2 holds the byte 0xfc"),
    "utf-16 text": (_utf16, "clients.csv: is UTF-16 text: save it as UTF-8"),
    "duplicate header": (
        _duplicate_header,
        "clients.csv, column 'region': column appears more than once",
    ),
    "duplicate parquet column": (
        _duplicate_parquet_column,
        "clients.parquet, column 'client_id': column appears more than once",
    ),
    "parquet named .csv": (_parquet_named_csv, "products.csv: is a Parquet file, not CSV text"),
    "ragged row": (
        _ragged_row,
        "relationship_managers.csv: cannot be read: line 4 has 6 cells, but the header has 5",
    ),
    "open quote": (
        _open_quote,
        "relationship_managers.csv: cannot be read: the quote opened on line 4 is never closed",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_file_is_refused_with_a_message_and_exit_code_not_a_traceback(
    case: str, migrated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spoil, expected = HOSTILE[case]
    folder = tmp_path / "bank"
    shutil.copytree(TINY_BANK, folder)
    spoil(folder)
    monkeypatch.setenv("RMRECO_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["ingest", str(folder), "--db", migrated])
    # Click's runner turns an exception that escapes into exit code 1 with result.exception
    assert result.exit_code == EXIT_INPUT_REFUSED, (result.exception, result.output)
    assert "Traceback" not in result.output
    flat = " ".join(result.output.split())  # the console wraps long lines
    assert expected in flat, flat
