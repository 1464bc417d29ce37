"""Several accounts per client: rows finer than a table's grain, aggregated to it.

This module owns turning a table read with one of its contract's ``detail_columns`` (e.g.
``account_months.account_id``: one row per account and month, as banks export current, card and
loan accounts) into the table's own grain (one row per client and month) by the contract's
``aggregation`` rules (``rmreco.domain.contract``: sums for flows, counts and balances, the
largest value for days in overdraft and days past due). Reading and validation
(``rmreco.data.contract.read_and_validate``) call :func:`aggregate_details` once, after each
account row was checked and before anything else reads the table, so ingest, training and batch
scoring see the same client-months.

Per column, missing values are skipped: the sum or largest value of the accounts that report the
column, and missing when no account does (a card account has no overdraft limit; that does not
make the client's limit unknown). Each aggregated row keeps the file row number of its group's
first row, so later checks (references, history) still name a row of the file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from rmreco.data.tables import InputTable
from rmreco.domain import contract

ROW = "row"


@dataclass(frozen=True)
class Aggregated:
    """A table at its own grain, and what aggregating it did."""

    table: InputTable
    #: Rows read from the file (account rows) and rows after aggregation.
    rows_read: int
    rows_kept: int
    #: The detail column that was aggregated away (None when the file had none).
    detail_column: str | None = None

    @property
    def note(self) -> str | None:
        """One line for the load summary, or None when nothing was aggregated."""
        if self.detail_column is None:
            return None
        return (
            f"{self.table.name}: {self.rows_read:,} rows of one {self.detail_column} each "
            f"aggregated to {self.rows_kept:,} rows of {', '.join(self.table.table.key)}"
        )


def detail_columns_present(table: InputTable) -> tuple[str, ...]:
    """The table's detail columns (e.g. ``account_id``) that its file carries."""
    return tuple(c.name for c in table.table.detail_columns if c.name in table.frame.columns)


def row_key(table: InputTable) -> tuple[str, ...]:
    """The key a row of the file must be unique on: the table's key plus its detail columns."""
    return (*table.table.key, *detail_columns_present(table))


def aggregation_rules(table: contract.Table) -> dict[str, contract.Aggregation]:
    """Column -> how finer rows are aggregated, from the contract."""
    return {column: how for column, how, _ in table.aggregation}


def aggregate_details(table: InputTable) -> Aggregated:
    """Aggregate a table's rows to its contract grain when its file has a detail column.

    A table without one is returned as it is. Raises KeyError (a contract without a rule for a
    column, which a test rules out).
    """
    detail = detail_columns_present(table)
    frame = table.frame
    if not detail:
        return Aggregated(table=table, rows_read=len(frame), rows_kept=len(frame))
    key = list(table.table.key)
    rules = aggregation_rules(table.table)
    values = [c for c in frame.columns if c not in key and c not in detail]
    work = frame.drop(columns=list(detail)).reset_index()
    grouped = work.groupby(key, sort=False, dropna=False)
    parts: dict[str, pd.Series] = {ROW: grouped[ROW].min()}
    for column in values:
        how = rules[column]
        if how == "sum":
            parts[column] = grouped[column].sum(min_count=1)
        elif how == "max":
            parts[column] = grouped[column].max()
        else:
            parts[column] = grouped[column].min()
    result = pd.DataFrame(parts).reset_index()
    for column in values:  # keep each column's kind (Int64 stays Int64)
        result[column] = result[column].astype(frame[column].dtype)
    result = result.sort_values(ROW).set_index(ROW)[[c for c in frame.columns if c not in detail]]
    return Aggregated(
        table=replace(table, frame=result),
        rows_read=len(frame),
        rows_kept=len(result),
        detail_column=", ".join(detail),
    )
