"""Validating input tables against the data contract; every failure becomes a located Problem.

This module owns the checks. Per table, a pandera schema built from ``rmreco.domain.contract``
(never re-spelled here) checks that required columns are present, each column has its kind,
required values are not missing, numbers are within their ranges, codes are among their levels
and the natural key is unique. Across tables, plain pandas checks what one frame cannot:

- references: ``clients.rm_id`` -> relationship_managers, holdings -> clients and products,
  account_months / credit_events / financials -> clients. A reference to a table left out of
  the folder is skipped while the column is empty; values in it are refused, naming both (an
  RM id without the RM table cannot be checked);
- ordered pairs: ``holdings.end_month``, when present, is not before ``start_month``;
- history: the last month of ``account_months`` is the end of the load's history. A holding may
  start before the history does (products opened long ago) but not after its end; a credit event
  may be dated after the end of the history, since an extract may be an observation window and
  then its outcomes: up to ``OUTCOME_WINDOW_MAX_MONTHS`` after it for a client whose history
  reaches that end, and otherwise not more than ``CREDIT_EVENT_GRACE_MONTHS`` after the client's
  own last account month (a default is often recorded a few months after the account went
  quiet; one a year later points at a wrong client id), except for an undated status dated at
  the manifest's extract date (it says when the status was known, not when it began); a
  financial year must not be after
  the year of the last month. ``end_month`` after the end of the history is allowed (a bank may
  export planned maturities; the product counts as held until then).
- ``clients`` must have data rows, and so must ``account_months`` when its file is given (a
  header without rows is a failed export more often than a book without history; leave the file
  out for that);
- one currency per load: the optional ``clients.currency`` column, when present, holds one
  three-letter code. Whether it agrees with the database is checked by ingest
  (``rmreco.data.ingest``), which knows the database.
- the RM's role need not match the client's segment: real banks mix.

Months may be any date within the month (read as the first day, ``rmreco.data.dates``). A table
whose file carries a detail column (``account_months.account_id``) is checked row by row with
that column in its key, then aggregated to its grain (``rmreco.data.accounts``) before the
checks across tables and before anything reads it. What was normalised, aggregated, filled from
the manifest (undated credit status, observation month) or left out is said once per column or
table in :attr:`ValidatedTables.notes`, never once per row.

Reading (``rmreco.data.tables``) comes first and reports cells that are not of their kind; the
checks here then run on the typed frames. Problems are collected in full up to
``MAX_PROBLEMS_PER_COLUMN`` per column and check (pandera's ``n_failure_cases``); beyond that a
single problem counts the rest, so that ten million bad rows do not become ten million objects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from rmreco.data.accounts import aggregate_details, row_key
from rmreco.data.dates import is_month_column
from rmreco.data.manifest import Manifest
from rmreco.data.tables import (
    MAX_PROBLEMS_PER_COLUMN,
    InputTable,
    ProblemCollector,
    empty_frame,
    read_input_folder,
    show_value,
)
from rmreco.domain import contract
from rmreco.domain.errors import DataContractError, Problem

logger = logging.getLogger(__name__)

#: How many months after a client's last account month a credit event may still be dated.
CREDIT_EVENT_GRACE_MONTHS = 12
#: How many months after the extract's last account month a credit event of a client whose
#: history reaches that month may be dated: the outcome window of an observation-window extract
#: (statements, then the outcomes of the months after them). The contract does not know a
#: model's label horizon, so it accepts outcomes up to the longest horizon a bank commonly uses
#: for a PD (24 months); a longer gap is a wrong date.
OUTCOME_WINDOW_MAX_MONTHS = 24
CURRENCY_COLUMN = "currency"
#: Tables that must have at least one data row when their file is given.
NON_EMPTY_TABLES: tuple[str, ...] = (contract.CLIENTS.name, contract.ACCOUNT_MONTHS.name)

_PANDERA_DTYPES: dict[str, Any] = {
    "str": pa.String,
    "int": "Int64",
    "float": "float64",
    "date": pa.DateTime,
    "bool": "boolean",
}


@dataclass(frozen=True)
class ValidatedTables:
    """An input folder that passed every check: typed frames indexed by file row number."""

    folder: Path
    tables: dict[str, InputTable]
    fingerprint: str
    #: The clients.currency value, when the column is given; otherwise None.
    currency: str | None
    warnings: list[str] = field(default_factory=list)
    #: What reading changed, once per column or table: months given as another day of the
    #: month, rows of several accounts aggregated to the client-month, empty months filled from
    #: the manifest, tables left out.
    notes: list[str] = field(default_factory=list)
    #: The folder's manifest.yaml; None when it has none.
    manifest: Manifest | None = None

    def frame(self, name: str) -> pd.DataFrame:
        """The frame of table ``name``; for a table left out, no rows and its contract columns
        (each of its kind)."""
        if name in self.tables:
            return self.tables[name].frame
        return empty_frame(contract.TABLES_BY_NAME[name])

    @property
    def row_counts(self) -> dict[str, int]:
        """Data rows per table read."""
        return {name: len(t.frame) for name, t in self.tables.items()}

    @property
    def given_tables(self) -> list[str]:
        """The contract's tables the folder has, in load order."""
        return [t.name for t in contract.TABLES if t.name in self.tables]

    @property
    def absent_tables(self) -> list[str]:
        """The contract's (optional) tables the folder does not have, in load order."""
        return [t.name for t in contract.TABLES if t.name not in self.tables]

    @property
    def extra_columns(self) -> dict[str, dict[str, contract.ExtraKind]]:
        """The bank's own feature columns by table: ``{"clients": {name: kind}, ...}``; a table
        without any is left out (``{}`` when there are none)."""
        return {
            name: dict(table.extra_kinds)
            for name, table in self.tables.items()
            if table.table.extras == "features" and table.extra_kinds
        }

    @property
    def outcome_end(self) -> date | None:
        """The first day of the manifest's extract date's month: outcomes are known up to it.
        None without an extract date."""
        return None if self.manifest is None else self.manifest.extract_month()


# --- per table: pandera ---------------------------------------------------------------------

# Each check: (name, function giving True where a value passes, message for a failing value).
_Rule = tuple[str, Callable[[pd.Series], pd.Series], str]


def _column_rules(column: contract.Column) -> list[_Rule]:
    rules: list[_Rule] = []
    if not column.nullable:
        rules.append(("not_null", lambda s: s.notna(), "is empty; a value is required"))
    if column.ge is not None:
        ge = column.ge
        rules.append(("ge", lambda s: s >= ge, f"{{value}} is below the minimum {ge:g}"))
    if column.le is not None:
        le = column.le
        rules.append(("le", lambda s: s <= le, f"{{value}} is above the maximum {le:g}"))
    if column.levels is not None:
        levels = column.levels
        rules.append(
            ("levels", lambda s: s.isin(levels), f"{{value}} is not one of: {', '.join(levels)}")
        )
    return rules


def _key_is_first(key: tuple[str, ...]) -> Callable[[pd.DataFrame], pd.Series]:
    def check(frame: pd.DataFrame) -> pd.Series:
        if not set(key) <= set(frame.columns):
            return pd.Series(True, index=frame.index)
        return ~frame.duplicated(list(key), keep="first")

    return check


def build_schema(table: contract.Table, key: tuple[str, ...] | None = None) -> pa.DataFrameSchema:
    """The pandera schema of one contract table, built from the contract.

    ``key`` is the key rows must be unique on (default: the table's; with a detail column such
    as ``account_id``, the table's key plus that column). Missing values are handled by an
    explicit ``not_null`` check rather than pandera's ``nullable=False``, because checks cap
    their failure cases (``n_failure_cases``) and pandera's built-in null check does not.
    """
    columns: dict[str, pa.Column] = {}
    for column in (*table.columns, *table.detail_columns):
        checks = [
            pa.Check(
                fn, name=name, ignore_na=name != "not_null", n_failure_cases=MAX_PROBLEMS_PER_COLUMN
            )
            for name, fn, message in _column_rules(column)
        ]
        columns[column.name] = pa.Column(
            _PANDERA_DTYPES[column.kind],
            checks=checks,
            nullable=True,
            required=column.required,
            coerce=False,
            name=column.name,
        )
    key_check = pa.Check(
        _key_is_first(table.key if key is None else key),
        name="unique_key",
        ignore_na=False,
        n_failure_cases=MAX_PROBLEMS_PER_COLUMN,
    )
    return pa.DataFrameSchema(
        columns, checks=[key_check], strict=False, coerce=False, name=table.name
    )


def validate_table(table: InputTable) -> list[Problem]:
    """Check one table against its pandera schema; return every problem, located."""
    schema = build_schema(table.table, row_key(table))
    try:
        schema.validate(table.frame, lazy=True)
    except SchemaErrors as exc:
        return _translate(table, exc.failure_cases)
    return []


def _translate(table: InputTable, cases: pd.DataFrame) -> list[Problem]:
    file = table.file
    problems: list[Problem] = []
    rules = {
        (c.name, name): (fn, message)
        for c in (*table.table.columns, *table.table.detail_columns)
        for name, fn, message in _column_rules(c)
    }
    key_rows: set[int] = set()
    counts: dict[tuple[str | None, str], int] = {}
    for check_name, column_name, failure_case, index in zip(
        cases["check"].tolist(),
        cases["column"].tolist(),
        cases["failure_case"].tolist(),
        cases["index"].tolist(),
        strict=True,
    ):
        check = str(check_name)
        column = None if _is_missing(column_name) else str(column_name)
        row = None if _is_missing(index) else int(index)
        if check != "unique_key":  # a failing key is one case per column of its row
            counts[(column, check)] = counts.get((column, check), 0) + 1
        if check == "column_in_dataframe":
            problems.append(
                Problem(file=file, column=str(failure_case), message="required column is missing")
            )
        elif check == "unique_key":
            if row is not None:
                key_rows.add(row)
        elif column is not None and (column, check) in rules:
            message = rules[(column, check)][1].format(value=show_value(failure_case))
            problems.append(Problem(file=file, row=row, column=column, message=message))
        elif check.startswith("dtype("):
            kinds = {c.name: c.kind for c in (*table.table.columns, *table.table.detail_columns)}
            kind = kinds.get(column or "", "?")
            problems.append(
                Problem(
                    file=file,
                    row=row,
                    column=column,
                    message=f"values are not of kind {kind} (found {failure_case})",
                )
            )
        else:  # a check that could not run at all, e.g. on a column of the wrong type
            problems.append(
                Problem(
                    file=file,
                    row=row,
                    column=column,
                    message=f"fails check {check}: {failure_case}",
                )
            )
    problems.extend(_key_problems(table, sorted(key_rows)))
    if key_rows:
        counts[(None, "unique_key")] = len(key_rows)
    problems.extend(_overflow_problems(table, counts, rules))
    return problems


def _key_problems(table: InputTable, rows: list[int]) -> list[Problem]:
    if not rows:
        return []
    key = list(row_key(table))
    frame = table.frame
    firsts = (
        frame[key]
        .reset_index()
        .drop_duplicates(subset=key, keep="first")
        .rename(columns={"row": "first_row"})
    )
    dup = frame.loc[rows, key].reset_index().merge(firsts, on=key, how="left")
    shown = ", ".join(key)
    months = [k for k in key if is_month_column(k)]
    hint = f" ({months[0]}: dates within a month count as that month)" if months else ""
    return [
        Problem(
            file=table.file,
            row=int(row),
            column=shown,
            message=f"duplicate key ({shown}): the same values as row {int(first)}{hint}",
        )
        for row, first in zip(dup["row"].tolist(), dup["first_row"].tolist(), strict=True)
    ]


def _overflow_problems(
    table: InputTable,
    counts: Mapping[tuple[str | None, str], int],
    rules: Mapping[tuple[str, str], tuple[Callable[[pd.Series], pd.Series], str]],
) -> list[Problem]:
    """Count the failures beyond the cap of the checks whose failure cases were capped."""
    problems: list[Problem] = []
    frame = table.frame
    for (column, check), n_listed in counts.items():
        if n_listed < MAX_PROBLEMS_PER_COLUMN:
            continue
        if check == "unique_key":
            key = list(row_key(table))
            total = int(frame.duplicated(key, keep="first").sum())
            shown = ", ".join(key)
            message = f"duplicate key ({shown})"
            column = shown
        elif column is not None and (column, check) in rules:
            fn, message = rules[(column, check)]
            series = frame[column]
            passed = fn(series)
            if check != "not_null":
                passed = passed | series.isna()
            total = int((~passed.astype(bool)).sum())
            message = message.format(value="value")
        else:
            continue
        if total > n_listed:
            problems.append(
                Problem(
                    file=table.file,
                    column=column,
                    message=f"{total - n_listed} more rows with the same problem: {message}",
                )
            )
    return problems


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


# --- across tables --------------------------------------------------------------------------


def _reference_problems(tables: Mapping[str, InputTable]) -> list[Problem]:
    problems: list[Problem] = []
    for table in tables.values():
        for ref in table.table.references:
            target = tables.get(ref.target_table)
            if target is None and ref.column in table.frame:
                problems.extend(_absent_reference_problems(table, ref))
                continue
            if (
                target is None
                or ref.column not in table.frame
                or ref.target_column not in target.frame
            ):
                continue  # the missing file or column is reported already
            values = table.frame[ref.column]
            known = target.frame[ref.target_column].dropna().unique()
            collector = ProblemCollector(table.file, ref.column)
            collector.add(
                values,
                values.notna() & ~values.isin(known),
                f"{{value}} is not found in column '{ref.target_column}' of {target.file}",
            )
            problems.extend(collector.problems)
    return problems


def _absent_reference_problems(table: InputTable, ref: contract.Reference) -> list[Problem]:
    """A reference to a table left out of the folder: fine while the column is empty."""
    values = table.frame[ref.column]
    given = int(values.notna().sum())
    if not given:
        return []
    target = contract.TABLES_BY_NAME[ref.target_table]
    required = "" if target.is_optional else " (a required table)"
    return [
        Problem(
            file=table.file,
            column=ref.column,
            message=f"{given:,} rows name a {ref.target_table}.{ref.target_column}, but the "
            f"folder has no {ref.target_table}.parquet or {ref.target_table}.csv{required} to "
            f"check them against: give that table, or leave {ref.column} empty",
        )
    ]


def _order_problems(tables: Mapping[str, InputTable]) -> list[Problem]:
    problems: list[Problem] = []
    for table in tables.values():
        for start, end in table.table.ordered:
            if start not in table.frame or end not in table.frame:
                continue
            frame = table.frame
            collector = ProblemCollector(table.file, end)
            collector.add(
                frame[end].dt.strftime("%Y-%m-%d"),
                frame[end] < frame[start],
                f"{end} {{value}} is before {start}",
            )
            problems.extend(collector.problems)
    return problems


def _history_problems(tables: Mapping[str, InputTable]) -> list[Problem]:
    accounts = tables.get(contract.ACCOUNT_MONTHS.name)
    if accounts is None or "month" not in accounts.frame or accounts.frame["month"].isna().all():
        return []
    months = accounts.frame["month"]
    data_end = months.max()
    end_text = data_end.strftime("%Y-%m-%d")
    problems: list[Problem] = []

    window_end = data_end + pd.DateOffset(months=OUTCOME_WINDOW_MAX_MONTHS)
    holdings = tables.get(contract.HOLDINGS.name)
    if holdings is not None and "start_month" in holdings.frame:
        # products taken up after the last account month are the adoptions of an
        # observation-window extract (statements, then what the clients took in the months
        # after), as credit events after it are the defaults
        start = holdings.frame["start_month"]
        collector = ProblemCollector(holdings.file, "start_month")
        collector.add(
            start.dt.strftime("%Y-%m-%d"),
            start > window_end,
            f"{{value}} is more than {OUTCOME_WINDOW_MAX_MONTHS} months after the last month "
            f"of {accounts.file} ({end_text})",
        )
        problems.extend(collector.problems)

    events = tables.get(contract.CREDIT_EVENTS.name)
    if events is not None and {"month", "client_id"} <= set(events.frame.columns):
        month = events.frame["month"]
        shown = month.dt.strftime("%Y-%m-%d")
        collector = ProblemCollector(events.file, "month")
        too_late = month > window_end
        collector.add(
            shown,
            too_late,
            f"{{value}} is more than {OUTCOME_WINDOW_MAX_MONTHS} months after the last month "
            f"of {accounts.file} ({end_text})",
        )
        if "client_id" in accounts.frame:
            last = accounts.frame.groupby("client_id", observed=True)["month"].max()
            client_last = events.frame["client_id"].map(last)
            limit = client_last + pd.DateOffset(months=CREDIT_EVENT_GRACE_MONTHS)
            # a client still in the extract at its end may have its outcome up to the window's
            # end; one whose history stopped earlier only within the grace. A status known at
            # the extract date (an undated row) says nothing of when it began: no grace applies.
            in_window = (client_last == data_end).fillna(False).astype(bool)
            undated = events.frame.index.isin(events.filled_months.get("month", pd.Index([])))
            late = ~too_late & ~in_window & ~undated & client_last.notna() & (month > limit)
            collector.add(
                shown,
                late,
                f"{{value}} is more than {CREDIT_EVENT_GRACE_MONTHS} months after "
                f"the client's last month in {accounts.file}",
            )
        problems.extend(collector.problems)

    financials = tables.get(contract.FINANCIALS.name)
    if financials is not None and "year" in financials.frame:
        year = financials.frame["year"]
        collector = ProblemCollector(financials.file, "year")
        collector.add(
            year,
            (year > data_end.year).fillna(False).astype(bool),
            f"year {{value}} is after the last month of {accounts.file} ({end_text})",
        )
        problems.extend(collector.problems)
    return problems


def _emptiness_problems(tables: Mapping[str, InputTable]) -> list[Problem]:
    return [
        Problem(file=tables[name].file, message="has no data rows")
        for name in NON_EMPTY_TABLES
        if name in tables and len(tables[name].frame) == 0
    ]


def _currency_problems(tables: Mapping[str, InputTable]) -> list[Problem]:
    clients = tables.get(contract.CLIENTS.name)
    if clients is None or CURRENCY_COLUMN not in clients.frame:
        return []
    values = clients.frame[CURRENCY_COLUMN]
    collector = ProblemCollector(clients.file, CURRENCY_COLUMN)
    is_code = values.str.fullmatch(r"[A-Za-z]{3}").fillna(False).astype(bool)
    collector.add(
        values, values.notna() & ~is_code, "{value} is not a three-letter ISO 4217 currency code"
    )
    codes = values[is_code].str.upper()
    if codes.nunique() > 1:
        first = codes.iloc[0]
        collector.add(
            values,
            is_code & (values.str.upper() != first),
            f"{{value}} differs from {first!r} (row {codes.index[0]}); a load has one currency",
        )
    return collector.problems


def load_currency(tables: Mapping[str, InputTable]) -> str | None:
    """The currency the input states (clients.currency, upper case), or None when not given."""
    clients = tables.get(contract.CLIENTS.name)
    if clients is None or CURRENCY_COLUMN not in clients.frame:
        return None
    codes = clients.frame[CURRENCY_COLUMN].dropna().str.upper().unique()
    return str(codes[0]) if len(codes) == 1 else None


def validate_tables(tables: Mapping[str, InputTable]) -> list[Problem]:
    """Check typed input tables against the contract; return every problem found (or [])."""
    return _validate_and_aggregate(tables)[0]


def _validate_and_aggregate(
    tables: Mapping[str, InputTable],
) -> tuple[list[Problem], dict[str, InputTable], list[str]]:
    """Check each table's rows, aggregate detail rows to the tables' grain, check across tables.

    Returns the problems, the tables at their grain and a note per aggregated table.
    """
    problems: list[Problem] = []
    for name in contract.TABLES_BY_NAME:
        if name in tables:
            problems.extend(validate_table(tables[name]))
    aggregated = {name: aggregate_details(table) for name, table in tables.items()}
    notes = [a.note for a in aggregated.values() if a.note is not None]
    tables = {name: a.table for name, a in aggregated.items()}
    problems.extend(_across_tables_problems(tables))
    return problems, tables, notes


def _across_tables_problems(tables: Mapping[str, InputTable]) -> list[Problem]:
    problems: list[Problem] = []
    problems.extend(_emptiness_problems(tables))
    problems.extend(_reference_problems(tables))
    problems.extend(_order_problems(tables))
    problems.extend(_history_problems(tables))
    problems.extend(_currency_problems(tables))
    return problems


def _drop_repeated_cells(problems: list[Problem]) -> list[Problem]:
    """Keep the first problem of each cell: a value that could not be read is also missing."""
    seen: set[tuple[str, int, str]] = set()
    kept: list[Problem] = []
    for p in problems:
        if p.row is not None and p.column is not None:
            cell = (p.file, p.row, p.column)
            if cell in seen:
                continue
            seen.add(cell)
        kept.append(p)
    return kept


def sort_problems(problems: list[Problem]) -> list[Problem]:
    """Problems in reading order: by table (contract order), then row; table-wide ones first."""
    order = {
        f"{t.name}{suffix}": i
        for i, t in enumerate(contract.TABLES)
        for suffix in (".csv", ".parquet")
    }
    return sorted(problems, key=lambda p: (order.get(p.file, -1), p.row or 0))


def read_and_validate(folder: Path) -> ValidatedTables:
    """Read the input folder and check it against the contract.

    Raises DataContractError carrying every problem (file, row, column) when anything is wrong.
    """
    read = read_input_folder(Path(folder))
    found, tables, aggregated = _validate_and_aggregate(read.tables)
    problems = sort_problems(_drop_repeated_cells(read.problems + found))
    if problems:
        logger.info("input %s refused: %d problems", folder, len(problems))
        raise DataContractError(problems)
    notes = [
        *absent_notes(tables),
        *month_notes(read.tables.values()),
        *filled_notes(read.tables.values(), read.manifest),
        *aggregated,
    ]
    for note in notes:
        logger.info("%s", note)
    return ValidatedTables(
        folder=read.folder,
        tables=tables,
        fingerprint=read.fingerprint,
        currency=load_currency(tables),
        warnings=read.warnings,
        notes=notes,
        manifest=read.manifest,
    )


def absent_notes(tables: Mapping[str, InputTable]) -> list[str]:
    """One line naming the tables the folder left out (read as empty), if any."""
    absent = [t.name for t in contract.TABLES if t.name not in tables]
    if not absent:
        return []
    return [f"tables not given, read as empty: {', '.join(absent)}"]


def filled_notes(tables: Iterable[InputTable], manifest: Manifest | None) -> list[str]:
    """One line per month column whose empty cells the manifest filled."""
    notes: list[str] = []
    if manifest is None:
        return notes
    for table in tables:
        for column, rows in table.filled_months.items():
            key = table.table.column(column).filled_from
            assert key is not None
            month = manifest.month_of(key)
            assert month is not None
            what = (
                "events without a month"
                if table.name == contract.CREDIT_EVENTS.name
                else ("empty values")
            )
            notes.append(
                f"{table.name}.{column}: {len(rows):,} {what} dated {month:%Y-%m} "
                f"({key} of {contract.MANIFEST_FILE})"
            )
    return notes


def month_notes(tables: Iterable[InputTable]) -> list[str]:
    """One line per month column whose values named another day of the month."""
    return [
        f"{table.name}.{column}: {count:,} dates within their month read as that month"
        for table in tables
        for column, count in table.normalised_months.items()
    ]
