"""This module owns rewriting a bank's files in conventions real extracts follow, in place and
without changing what they say: month columns dated on the month's last day
(:func:`to_month_ends`) and ``account_months`` as one row per account (:func:`split_accounts`),
whose aggregation by the contract's rules gives back the client-months.

How an account row is made from its client-month, per column (``ACCOUNT_RULES``): balances,
flows and transaction counts are split between the accounts (money floored to the cent on the
smaller accounts, the main current account takes the rest, so that the sum is the client-month's
value up to the floating-point rounding of amounts in cents; counts in whole numbers, exactly);
an overdraft facility, its use, payroll, acquiring and returned payments sit on the main current
account; card spend on the card account; the largest days overdrawn and days past due are kept
on the main account, with smaller values or none on the others. A value missing for the
client-month is missing on every account.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rmreco.data.dates import is_month_column
from rmreco.domain import contract
from rmreco.synthetic.arrays import Array, floats, ints, spawn_rng
from rmreco.synthetic.generator import write_table
from rmreco.synthetic.parameters import STREAM_SHAPES

#: The accounts a client-month is split into, in file order: the main current account, a
#: second current or savings account, and (for some clients) a card account.
ACCOUNT_KINDS = ("CUR", "SAV", "CARD")
#: Share of clients with all three accounts; the others have the first two.
THREE_ACCOUNT_SHARE = 0.4
#: Gamma shapes of the accounts' shares of balances and flows (the main account holds most).
_SHARE_SHAPES = (6.0, 2.0, 0.7)
#: Sub-stream of ``STREAM_SHAPES`` the account split draws from.
_ACCOUNTS_STREAM = 1

Rule = Literal["split_balance", "split_flow", "main", "main_zero", "card", "max_main"]
#: How each account_months column outside the key is spread over a client-month's accounts.
ACCOUNT_RULES: dict[str, Rule] = {
    "balance_avg": "split_balance",
    "balance_min": "split_balance",
    "balance_max": "split_balance",
    "credit_turnover": "split_flow",
    "debit_turnover": "split_flow",
    "n_credit_tx": "split_flow",
    "n_debit_tx": "split_flow",
    "overdraft_limit": "main",
    "overdraft_peak_use": "main",
    "days_in_overdraft": "max_main",
    "dpd_max": "max_main",
    "returned_payments": "main_zero",
    "intl_payments": "split_flow",
    "payroll_outflow": "main",
    "card_spend": "card",
    "acquiring_inflow": "main",
}
_SUM_RULES: frozenset[Rule] = frozenset(
    {"split_balance", "split_flow", "main", "main_zero", "card"}
)


def month_columns(table: contract.Table) -> tuple[str, ...]:
    """The table's month columns (``month``, ``*_month``)."""
    return tuple(c.name for c in table.columns if c.kind == "date" and is_month_column(c.name))


def to_month_ends(folder: Path) -> list[str]:
    """Rewrite every month column of the folder's contract tables (CSV or Parquet) as the
    month's last day; empty cells stay empty. Returns the columns rewritten, as
    ``table.column``."""
    done: list[str] = []
    for table in contract.TABLES:
        columns = month_columns(table)
        for suffix in (".csv", ".parquet"):
            path = folder / f"{table.name}{suffix}"
            if not columns or not path.exists():
                continue
            if suffix == ".csv":
                frame = pd.read_csv(path, dtype=str, keep_default_na=False)
                present = [c for c in columns if c in frame.columns]
                for column in present:
                    filled = frame[column] != ""
                    stamps = pd.to_datetime(frame.loc[filled, column]) + pd.offsets.MonthEnd(0)
                    frame.loc[filled, column] = stamps.dt.strftime("%Y-%m-%d")
                frame.to_csv(path, index=False)
            else:
                data = pq.read_table(path)
                present = [c for c in columns if c in data.column_names]
                for column in present:
                    i = data.column_names.index(column)
                    data = data.set_column(i, column, _month_end(data.column(column)))
                write_parquet(path, table.name, data)
            done.extend(f"{table.name}.{c}" for c in present)
    return done


def _month_end(column: pa.ChunkedArray) -> pa.Array:
    """Dates (or timestamps) as the last day of their month, as Parquet dates."""
    days = pc.cast(column, pa.date32()).combine_chunks()
    valid = days.is_valid().to_numpy(zero_copy_only=False)
    values = days.fill_null(0).to_numpy(zero_copy_only=False).astype("datetime64[D]")
    month_end = (values.astype("datetime64[M]") + 1).astype("datetime64[D]") - 1
    return pa.array(month_end.astype(np.int32), type=pa.date32(), mask=~valid)


def write_parquet(path: Path, name: str, table: pa.Table) -> None:
    """Write table ``name`` (truth files as ``truth/<name>``) as the generator writes it
    (``generator.write_table``), so that a file a rewrite leaves unchanged keeps its bytes."""
    write_table(path, name, table)


def split_accounts(folder: Path, *, seed: int = 0) -> int:
    """Rewrite the folder's ``account_months.parquet`` as one row per account and month
    (2 or 3 accounts per client, ``account_id`` first), by ``ACCOUNT_RULES``; the contract's
    aggregation gives back the client-months. Returns the number of account rows written.

    Raises:
        FileNotFoundError: the folder has no ``account_months.parquet``.
        ValueError: the file has an ``account_id`` already, or a column without a rule.
    """
    path = folder / f"{contract.ACCOUNT_MONTHS.name}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: split_accounts rewrites a Parquet bank")
    table = pq.read_table(path)
    split = split_account_rows(table, spawn_rng(seed, STREAM_SHAPES, _ACCOUNTS_STREAM))
    write_parquet(path, contract.ACCOUNT_MONTHS.name, split)
    return split.num_rows


def split_account_rows(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """``account_months`` rows (one per client and month) as one row per account and month.

    Raises:
        ValueError: the table has an ``account_id`` already, or a column without a rule.
    """
    _check_rules()
    detail = contract.ACCOUNT_MONTHS.detail_columns[0].name
    if detail in table.column_names:
        raise ValueError(f"account_months has an {detail} column already: nothing to split")
    unknown = [
        c for c in table.column_names if c not in contract.ACCOUNT_MONTHS.key + tuple(ACCOUNT_RULES)
    ]
    if unknown:
        raise ValueError(f"account_months columns without an account rule: {unknown}")
    n = table.num_rows
    clients = table.column("client_id").to_numpy(zero_copy_only=False).astype(str)
    _, client_index = np.unique(clients, return_inverse=True)
    three = rng.random(int(client_index.max()) + 1 if n else 0) < THREE_ACCOUNT_SHARE
    n_accounts = np.where(three[client_index], 3, 2)
    row = np.repeat(np.arange(n), n_accounts)
    starts = np.repeat(np.cumsum(n_accounts) - n_accounts, n_accounts)
    slot = np.arange(row.size) - starts
    has_card = n_accounts == 3
    shares = {
        rule: _shares(rng, n, has_card) for rule in ("split_balance", "split_flow", "max_main")
    }

    columns: dict[str, pa.Array] = {
        contract.ACCOUNT_MONTHS.detail_columns[0].name: pc.binary_join_element_wise(
            pa.array(ACCOUNT_KINDS).take(pa.array(slot)),
            table.column("client_id").combine_chunks().cast(pa.string()).take(pa.array(row)),
            "-",
        ),
    }
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if name in contract.ACCOUNT_MONTHS.key:
            columns[name] = column.take(pa.array(row))
            continue
        is_count = pa.types.is_integer(column.type)
        values = column.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls as NaN
        parts = _parts(ACCOUNT_RULES[name], values, shares, has_card, is_count)
        out = parts[row, slot]
        missing = np.isnan(out)
        columns[name] = (
            ints(np.where(missing, 0, out), missing) if is_count else floats(out, missing)
        )
    return pa.table(columns)


def _check_rules() -> None:
    """Every account column has a rule that fits the contract's aggregation of it."""
    for column, how, _ in contract.ACCOUNT_MONTHS.aggregation:
        rule = ACCOUNT_RULES.get(column)
        if rule is None or (how == "sum") != (rule in _SUM_RULES):
            raise ValueError(
                f"account_months.{column} is aggregated by {how!r} in the contract but its "
                f"account rule is {rule!r}: extend ACCOUNT_RULES"
            )


def _shares(rng: np.random.Generator, n: int, has_card: Array) -> Array:
    """Each client-month's shares of its accounts (n x 3, rows summing to 1; the card
    account's share is 0 where the client has none)."""
    draws = np.column_stack([rng.gamma(shape, 1.0, n) for shape in _SHARE_SHAPES])
    draws[:, 2] = np.where(has_card, draws[:, 2], 0.0)
    shares: Array = draws / draws.sum(axis=1, keepdims=True)
    return shares


def _parts(
    rule: Rule, values: Array, shares: dict[str, Array], has_card: Array, is_count: bool
) -> Array:
    """The accounts' values (n x 3) of one column by its rule; NaN where an account does not
    report it. A value missing for the client-month is missing on every account."""
    n = values.size
    known = ~np.isnan(values)
    parts = np.full((n, 3), np.nan)
    if rule in ("split_balance", "split_flow"):
        share = shares[rule]
        scale = 1.0 if is_count else 100.0
        others = np.floor(values[:, None] * share[:, 1:] * scale) / scale
        others[:, 1] = np.where(has_card, others[:, 1], np.nan)
        parts[:, 1:] = others
        rest = values - np.nansum(others, axis=1)
        parts[:, 0] = rest if is_count else np.round(rest, 2)  # a money value is in cents
    elif rule == "main":
        parts[:, 0] = values
    elif rule == "main_zero":
        parts[:, 0] = values
        parts[:, 1] = np.where(known, 0.0, np.nan)
        parts[:, 2] = np.where(known & has_card, 0.0, np.nan)
    elif rule == "card":
        parts[:, 2] = np.where(has_card, values, np.nan)
        parts[:, 0] = np.where(has_card, np.nan, values)
    else:  # max_main: the largest on the main account, smaller whole values on the second
        parts[:, 0] = values
        parts[:, 1] = np.floor(values * shares[rule][:, 1])
    parts[~known] = np.nan
    return parts
