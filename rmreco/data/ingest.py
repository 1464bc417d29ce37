"""Ingest: load a validated input folder into the relational database, all or nothing.

This module owns writing input tables to the database. :func:`ingest_folder` reads and
validates the whole folder first (``rmreco.data.contract``); only input without a single problem
is written, every table in ONE transaction, so a failure at any point (a refused value, a lost
connection, a bug) leaves the database exactly as it was, including ``ingest_runs``: a refused
or failed load leaves no trace there (the log and the raised error say what happened).

A load is an upsert on the contract's natural keys (``INSERT ... ON CONFLICT DO UPDATE`` of
SQLite and PostgreSQL, sent in batches with executemany): loading the same folder twice
changes nothing, a changed value is updated, and rows that are in the database but not in the
folder are kept (a load adds and corrects; it does not replace). Optional columns left out of a
file are left as they are in the database, and so are tables left out of the folder. Extra
``products`` columns go into ``products.params``. The bank's own columns of ``clients`` and
``financials`` go into their ``extra`` JSON column as ``{name: value}`` (a load that has such
columns replaces a row's ``extra``; one without leaves it), and their kinds into
``extra_columns``: the first load that brings a column fixes its kind, and a later load that
reads it as another kind is refused (declare the kind in the manifest). What is written is what
reading made of the files: months as their first day, several accounts' rows as one
client-month, undated credit status as events of the extract date's month
(``rmreco.data.contract``); the summary's ``notes`` say so.

One currency per database: the load's currency is ``clients.currency`` when the column is given,
else the ``RMRECO_CURRENCY`` setting; once the database holds a load, every later load must be in
the same currency (the first load sets it, with a warning when it differs from the setting).

Nothing of a load is dated after its own as-of (:func:`load_as_of`): the manifest's
``extract_date`` when the folder has one, else the day of the load (UTC). A date after that day,
a month after its month or a financial year after its year is refused, naming the file, the row,
the column and the as-of, before anything is written (:func:`future_date_problems`): one account
row dated 2099 would make 2099 the end of the history, and every client would drop out of the
month the service scores. A holding's ``end_month`` is the exception: a bank may export planned
maturities, which are known at the as-of though they lie after it (the contract accepts them).

Text longer than its column holds (``Column.max_length``: a client's ``name``) is refused the
same way, naming file, row and column but not the text (a name may be a person's), rather than
cut short or left to the database to reject mid-load (:func:`too_long_problems`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.orm import Session, sessionmaker

from rmreco.config import Settings
from rmreco.data.contract import (
    CURRENCY_COLUMN,
    ValidatedTables,
    read_and_validate,
    sort_problems,
)
from rmreco.data.dates import after_as_of, period_of
from rmreco.data.tables import InputTable, ProblemCollector
from rmreco.db.engine import json_dumps, run_in_transaction, session_factory, transaction
from rmreco.db.migrate import require_head
from rmreco.db.schema import CONTRACT_MODELS, ExtraColumn, IngestRun, utcnow
from rmreco.domain import contract
from rmreco.domain.errors import DataContractError, Problem

logger = logging.getLogger(__name__)

#: Rows per executemany call: large enough to amortise round trips, small enough for memory.
BATCH_ROWS = 5_000
#: Dated columns whose values may lie after the load's as-of: a holding's planned maturity is
#: known at the as-of (the contract accepts an ``end_month`` after the history; the product
#: counts as held until then).
MAY_BE_AFTER_AS_OF: frozenset[tuple[str, str]] = frozenset({(contract.HOLDINGS.name, "end_month")})

#: Told the rows of one table written so far: ``(table, rows written, rows of the table)``,
#: once as a table starts and after every batch (a retried transaction starts again from 0).
RowProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LoadAsOf:
    """The day a load describes: none of its facts may be dated after it."""

    day: date
    #: where the day comes from, as refusals say it
    source: str


@dataclass(frozen=True)
class IngestSummary:
    """What one successful load wrote."""

    run_id: int
    source: str
    fingerprint: str
    currency: str
    #: Data rows read and upserted per contract table (0 for an optional table left out).
    rows: dict[str, int]
    seconds: float
    warnings: list[str] = field(default_factory=list)
    #: What reading changed, once per column or table (months given as another day of the
    #: month, accounts aggregated to the client-month, undated events, tables left out); see
    #: ValidatedTables.notes.
    notes: list[str] = field(default_factory=list)
    #: The contract's tables the folder did not have (nothing of them was written).
    absent: list[str] = field(default_factory=list)
    #: The bank's own columns loaded, by table: {"clients": {name: kind}, ...}.
    extra_columns: dict[str, dict[str, str]] = field(default_factory=dict)
    #: The load's as-of day (see :func:`load_as_of`); nothing loaded is dated after it.
    as_of: date | None = None


def ingest_folder(
    folder: Path,
    target: Engine | sessionmaker[Session],
    *,
    settings: Settings,
    on_rows: RowProgress | None = None,
) -> IngestSummary:
    """Validate the input folder, then write all its tables in one transaction.

    ``target`` is an Engine or a Session factory. The database must be migrated (``rmreco db
    upgrade``). Raises SchemaNotCurrentError (an RmrecoError) when it is not, DataContractError
    with every problem when the input breaks the contract, holds a date after the load's as-of
    (:func:`load_as_of`) or a text longer than its column holds (:func:`too_long_problems`) or
    is in another currency than the database, and sqlalchemy errors when the database fails; in
    every case nothing is written. ``on_rows`` is told each table's rows as they are written
    (nothing while the folder is read and validated).
    """
    started = time.perf_counter()
    factory = target if isinstance(target, sessionmaker) else session_factory(target)
    # Fail before reading what may be millions of rows when the database is not ready.
    with transaction(factory, read_only=True) as session:
        require_head(session.connection())

    validated = read_and_validate(Path(folder))
    as_of = load_as_of(validated)
    future = future_date_problems(validated, as_of)
    if future:
        logger.info("input %s refused: %d values after the as-of", folder, len(future))
        raise DataContractError(sort_problems(future))
    too_long = too_long_problems(validated)
    if too_long:
        logger.info("input %s refused: %d values too long", folder, len(too_long))
        raise DataContractError(sort_problems(too_long))

    def work(session: Session) -> IngestRun:
        return write_tables(
            session, validated, settings_currency=settings.currency, on_rows=on_rows
        )

    run = run_in_transaction(factory, work)
    seconds = time.perf_counter() - started
    logger.info("ingested %s in %.1f s: %s", folder, seconds, run.row_counts)
    return IngestSummary(
        run_id=run.id,
        source=run.source,
        fingerprint=run.fingerprint,
        currency=run.currency,
        rows=dict(run.row_counts),
        seconds=seconds,
        warnings=list(validated.warnings),
        notes=list(validated.notes),
        absent=validated.absent_tables,
        extra_columns={t: dict(kinds) for t, kinds in validated.extra_columns.items()},
        as_of=as_of.day,
    )


def load_as_of(validated: ValidatedTables, *, today: date | None = None) -> LoadAsOf:
    """The load's as-of: the manifest's ``extract_date`` when the folder gives one, else
    ``today`` (default: the day of the load, UTC)."""
    manifest = validated.manifest
    if manifest is not None and manifest.extract_date is not None:
        return LoadAsOf(
            manifest.extract_date,
            f"{contract.MANIFEST_EXTRACT_DATE} of {contract.MANIFEST_FILE}",
        )
    return LoadAsOf(
        today or datetime.now(UTC).date(),
        f"the day of the load, UTC: the folder gives no {contract.MANIFEST_EXTRACT_DATE} in "
        f"{contract.MANIFEST_FILE}",
    )


def future_date_problems(validated: ValidatedTables, as_of: LoadAsOf) -> list[Problem]:
    """A problem for every value of a dated column of a contract table (dates, months, the
    financial year) after ``as_of``, naming file, row and column; [] when there is none.
    ``MAY_BE_AFTER_AS_OF`` columns are not checked."""
    day = as_of.day.isoformat()
    problems: list[Problem] = []
    for name, table in validated.tables.items():
        for column in table.table.columns:
            period = period_of(column.name, column.kind)
            if (
                period is None
                or column.name not in table.frame
                or (name, column.name) in MAY_BE_AFTER_AS_OF
            ):
                continue
            values = table.frame[column.name]
            later = after_as_of(values, as_of.day, period)
            if not later.any():
                continue
            if period == "year":
                shown, what = values, f"year {{value}} is after {as_of.day.year}, the year of"
            elif period == "month":
                shown = values.dt.strftime("%Y-%m")
                what = f"month {{value}} is after {as_of.day:%Y-%m}, the month of"
            else:
                shown, what = values.dt.strftime("%Y-%m-%d"), "{value} is after"
            collector = ProblemCollector(table.file, column.name)
            collector.add(
                shown,
                later,
                f"{what} the load's as-of {day} ({as_of.source}): nothing loaded may be dated "
                "after the day the extract describes",
            )
            problems.extend(collector.problems)
    return problems


def too_long_problems(validated: ValidatedTables) -> list[Problem]:
    """A problem for every text of a column with a ``max_length`` (``clients.name``) longer
    than that many characters, naming file, row and column; [] when there is none. The text
    itself is not quoted: a name may be a person's."""
    problems: list[Problem] = []
    for table in validated.tables.values():
        for column in table.table.columns:
            if column.max_length is None or column.name not in table.frame:
                continue
            lengths = table.frame[column.name].astype("string").str.len()
            longer = (lengths > column.max_length).fillna(False).astype(bool)
            collector = ProblemCollector(table.file, column.name)
            collector.add(
                lengths,
                longer,
                f"holds more than {column.max_length} characters, the most "
                f"{table.name}.{column.name} keeps: shorten it",
            )
            problems.extend(collector.problems)
    return problems


def database_currency(session: Session) -> str | None:
    """The currency of the latest successful load, or None for a database without one."""
    return session.scalar(
        select(IngestRun.currency)
        .where(IngestRun.status == "succeeded")
        .order_by(IngestRun.id.desc())
        .limit(1)
    )


def resolve_currency(validated: ValidatedTables, *, database: str | None, setting: str) -> str:
    """The load's currency, checked against the database's.

    Raises DataContractError when the database already holds figures in another currency.
    """
    load = validated.currency or setting
    if database is not None and load != database:
        clients = validated.tables.get(contract.CLIENTS.name)
        file = clients.file if clients is not None else "clients"
        stated = (
            f"clients.currency says {load}"
            if validated.currency
            else f"the RMRECO_CURRENCY setting says {load}"
        )
        raise DataContractError(
            [
                Problem(
                    file=file,
                    column=CURRENCY_COLUMN if validated.currency else None,
                    message=f"{stated}, but the database holds figures in {database}; "
                    f"a database holds one currency",
                )
            ]
        )
    if database is None and load != setting:
        logger.warning(
            "first load is in %s, not in %s as RMRECO_CURRENCY says; the database keeps %s",
            load,
            setting,
            load,
        )
    return load


def write_tables(
    session: Session,
    validated: ValidatedTables,
    *,
    settings_currency: str,
    on_rows: RowProgress | None = None,
) -> IngestRun:
    """Upsert every table of a validated load and record the run; never commits. ``on_rows``
    is told each table's rows as they are written.

    Raises SchemaNotCurrentError, DataContractError (currency) and sqlalchemy errors.
    """
    require_head(session.connection())
    currency = resolve_currency(
        validated, database=database_currency(session), setting=settings_currency
    )
    row_counts = {
        t.name: len(validated.tables[t.name].frame) if t.name in validated.tables else 0
        for t in contract.TABLES
    }
    run = IngestRun(
        source=str(validated.folder.resolve()),
        fingerprint=validated.fingerprint,
        currency=currency,
        row_counts=row_counts,
        status="running",
    )
    session.add(run)
    session.flush()
    record_extra_kinds(session, validated, run_id=run.id)
    for table in contract.TABLES:  # parents before children, for the foreign keys
        if table.name in validated.tables:
            # the progress argument only when someone listens: upsert_table keeps its plain
            # (session, table) call for callers that wrap it
            listened = {} if on_rows is None else {"on_rows": on_rows}
            upsert_table(session, validated.tables[table.name], **listened)
    run.status = "succeeded"
    run.finished_at = utcnow()
    session.flush()
    return run


def record_extra_kinds(session: Session, validated: ValidatedTables, *, run_id: int) -> None:
    """Record the kinds of the bank's own columns new to the database; never commits.

    Raises DataContractError when a column the database knows arrives with another kind.
    """
    known = {
        (row.table_name, row.column_name): row for row in session.scalars(select(ExtraColumn)).all()
    }
    problems: list[Problem] = []
    for table_name, kinds in validated.extra_columns.items():
        table = validated.tables[table_name]
        declared = validated.manifest.declared(table_name) if validated.manifest else {}
        for name, kind in kinds.items():
            stored = known.get((table_name, name))
            if stored is None:
                session.add(
                    ExtraColumn(
                        table_name=table_name, column_name=name, kind=kind, ingest_run_id=run_id
                    )
                )
            elif stored.kind != kind:
                how = f"declared in {contract.MANIFEST_FILE}" if name in declared else "inferred"
                problems.append(
                    Problem(
                        file=contract.MANIFEST_FILE if name in declared else table.file,
                        column=None if name in declared else name,
                        message=f"{table_name}.{name} is {stored.kind} in the database (since "
                        f"ingest run {stored.ingest_run_id}) but {kind} in this load ({how}); "
                        f"a column keeps its kind: declare it {stored.kind} under "
                        f"columns.{table_name} in {contract.MANIFEST_FILE}, or give it another "
                        "name",
                    )
                )
    if problems:
        raise DataContractError(problems)
    session.flush()


def upsert_table(session: Session, table: InputTable, on_rows: RowProgress | None = None) -> int:
    """Insert or update the rows of one input table on its natural key; return the row count.
    ``on_rows`` is told the rows written as the table starts and after every batch.

    The statement is compiled once and its rows go to the driver's ``executemany`` as plain
    tuples, converted column by column (dates and JSON as the column's type stores them):
    SQLAlchemy's per-row parameter processing cost two thirds of a large load's time.
    """
    db_table = CONTRACT_MODELS[table.name].__table__
    assert isinstance(db_table, Table)
    columns = [c for c in table.table.column_names if c in table.frame.columns]
    extras_column = _extras_column_written(table)
    columns_written = columns if extras_column is None else [*columns, extras_column]
    key = list(table.table.key)
    update = [c for c in columns_written if c not in key]

    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    insert = postgresql.insert if postgres else sqlite.insert
    stmt = insert(db_table)
    if update:
        stmt = stmt.on_conflict_do_update(
            index_elements=key, set_={c: stmt.excluded[c] for c in update}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=key)
    # positional parameters (psycopg's "%s", SQLite's "?"): rows are tuples, not dicts
    dialect = PGDialect_psycopg(paramstyle="format") if postgres else connection.dialect
    compiled = stmt.compile(dialect=dialect, column_keys=columns_written)
    order = list(compiled.positiontup or ())
    assert sorted(order) == sorted(columns_written), order  # each value bound once, in VALUES

    total = len(table.frame)
    n = 0
    if on_rows is not None:
        on_rows(table.name, n, total)
    for batch in _rows(table, columns, order, db_table, postgres=postgres):
        connection.exec_driver_sql(compiled.string, batch)
        n += len(batch)
        if on_rows is not None:
            on_rows(table.name, n, total)
    logger.debug("upserted %d rows into %s", n, table.name)
    return n


def _rows(
    table: InputTable, columns: list[str], order: list[str], db_table: Table, *, postgres: bool
) -> Iterator[list[tuple[Any, ...]]]:
    """The rows as parameter tuples in ``order`` (None for missing values; dates as the
    database takes them: ISO text on SQLite, dates on PostgreSQL; JSON as the column's type
    stores it), in batches."""
    frame = table.frame
    extras_column = _extras_column_written(table)
    for start in range(0, len(frame), BATCH_ROWS):
        chunk = frame.iloc[start : start + BATCH_ROWS]
        values: dict[str, list[Any]] = {}
        for name in columns:
            series = chunk[name]
            missing = series.isna().to_numpy()
            if pd.api.types.is_datetime64_any_dtype(series.dtype):
                # numpy's days: dates for psycopg, ISO text (YYYY-MM-DD) for SQLite
                days = series.to_numpy(dtype="datetime64[D]")
                values[name] = _python_values(days.astype(object if postgres else str), missing)
            else:
                values[name] = _python_values(series.to_numpy(), missing)
        if extras_column is not None:
            values[extras_column] = [
                _json_parameter(value, postgres=postgres)
                for value in _params(chunk, table.extra_columns)
            ]
        yield list(zip(*(values[name] for name in order), strict=True))


def _python_values(cells: np.ndarray, missing: np.ndarray) -> list[Any]:
    """A column's cells as Python values (what the driver binds), None where ``missing``:
    numpy's own conversion to a list, then the few missing cells set (a pandas ``where`` on
    object values cost more than the write itself)."""
    values = cells.tolist()
    for i in np.flatnonzero(missing).tolist():
        values[i] = None
    return values


def _json_parameter(value: dict[str, Any], *, postgres: bool) -> Any:
    """A JSON column's value as the driver takes it (what SQLAlchemy's JSON types send): JSONB
    on PostgreSQL, JSON text on SQLite; an empty object stays ``{}``, as before."""
    if postgres:
        from psycopg.types.json import Jsonb

        return Jsonb(value, dumps=json_dumps)
    return json_dumps(value)


def _extras_column_written(table: InputTable) -> str | None:
    """The JSON column this load writes the table's extra columns to, if any: the catalog's
    ``params`` always (empty when there are none), ``extra`` of clients and financials only
    when the load has such columns (a load without them leaves what the database holds)."""
    if table.table.extras == "params" or (table.table.extras == "features" and table.extra_columns):
        return table.table.extras_column
    return None


def _params(chunk: pd.DataFrame, extra: tuple[str, ...]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [{} for _ in range(len(chunk))]
    for name in extra:
        for i, value in enumerate(chunk[name].tolist()):
            json_value = _json_value(value)
            if json_value is not None:
                params[i][name] = json_value
    return params


def _json_value(value: Any) -> Any:
    """A cell as a JSON value: None for missing, Python numbers, dates as ISO text."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str | int | bool):
        return value
    return str(value)
