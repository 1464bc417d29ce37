"""The point-in-time feature builder: one row per client and snapshot month, months <= t only.

Every client's history is laid on a complete monthly grid from its first to its last observed
month (a missing month is a row of nulls), so a window of w rows is w calendar months. Rolling
statistics skip nulls. Ratios whose denominator is zero or missing are null: LightGBM handles
missing values natively and the scorecard bins them on their own.

Money features are ratios or logs wherever possible, so that a model trained in one currency or on
one bank's size mix carries over to another.

The module also owns the pandas edge (:func:`features_to_pandas`), and computing a pandas frame
block by block of whole clients (:func:`pandas_by_client_blocks`): every feature is a client's
own, so a large book never holds more than its result and one block's work at once.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
from pandas.api.types import union_categoricals

from rmreco.domain.contract import ACCOUNT_MONTHS, EventType, ProductKind
from rmreco.domain.errors import DataContractError, Problem
from rmreco.features.bank_columns import (
    BANK_COLUMN_PREFIXES,
    CATEGORICAL,
    bank_column_values,
    bank_features,
    is_bank_feature,
    polars_schema,
)
from rmreco.features.inputs import ID, MONTH, FeatureInputs
from rmreco.features.observations import SPINE, observed_inputs

#: Months after a financial year's end before its statements are assumed to be known.
DEFAULT_FINANCIALS_LAG_MONTHS = 6
#: Stand-in for "never happened in the history" in recency features (months).
NEVER = 99.0

_MI = "_mi"  # month index: year * 12 + month - 1
_POS = "_pos"  # position of the row in the client's grid, 0 for the first month
_CID = "_cid"  # dense client number: window functions partition on it

DEFAULT_TYPE_EVENTS = (EventType.DEFAULT, EventType.WRITE_OFF, EventType.INSOLVENCY)

CATEGORICAL_FEATURES = ("segment", "sector", "region")

#: Every feature the builder computes, with the sentence an RM reads in a reason code.
FEATURE_DESCRIPTIONS: dict[str, str] = {
    "history_months": "months of account history seen",
    "inflow_1m_log": "incoming payments last month",
    "inflow_3m_log": "incoming payments over 3 months",
    "inflow_12m_log": "incoming payments over 12 months",
    "net_flow_ratio_3m": "net cash flow as a share of inflows over 3 months",
    "net_flow_ratio_12m": "net cash flow as a share of inflows over 12 months",
    "inflow_growth_3m": "growth of inflows, last 3 months against the 3 before",
    "inflow_growth_yoy": "growth of inflows against the same 3 months a year earlier",
    "inflow_growth_12m": "growth of inflows, last 12 months against the 12 before",
    "inflow_trend_6m": "trend of monthly inflows over 6 months",
    "inflow_volatility_12m": "volatility of monthly inflows over 12 months",
    "balance_to_inflow_1m": "account balance against monthly inflows, last month",
    "balance_to_inflow_3m": "account balance against monthly inflows over 3 months",
    "balance_to_inflow_12m": "account balance against monthly inflows over 12 months",
    "balance_min_to_inflow_3m": "lowest balance against monthly inflows over 3 months",
    "balance_volatility_6m": "volatility of the balance over 6 months",
    "balance_volatility_12m": "volatility of the balance over 12 months",
    "balance_trend_6m": "trend of the balance over 6 months",
    "balance_trend_12m": "trend of the balance over 12 months",
    "overdraft_use_1m": "overdraft used against its limit, last month",
    "overdraft_use_3m": "overdraft used against its limit over 3 months",
    "overdraft_use_12m": "overdraft used against its limit over 12 months",
    "overdraft_months_3m": "months in overdraft out of the last 3",
    "overdraft_months_6m": "months in overdraft out of the last 6",
    "overdraft_months_12m": "months in overdraft out of the last 12",
    "overdraft_days_3m": "days in overdraft over 3 months",
    "overdraft_days_12m": "days in overdraft over 12 months",
    "dpd_1m": "days past due on credit, last month",
    "dpd_3m": "most days past due on credit over 3 months",
    "dpd_6m": "most days past due on credit over 6 months",
    "dpd_12m": "most days past due on credit over 12 months",
    "months_since_dpd": "months since the last late payment on credit",
    "months_since_dpd30": "months since the last payment 30+ days late",
    "returned_payments_3m": "returned (bounced) payments over 3 months",
    "returned_payments_12m": "returned (bounced) payments over 12 months",
    "tx_count_3m_log": "number of transactions per month over 3 months",
    "intl_share_3m": "cross-border payments as a share of all payments over 3 months",
    "intl_growth_yoy": "growth of cross-border payments against a year earlier",
    "payroll_share_3m": "salary payments as a share of outflows over 3 months",
    "card_spend_share_3m": "card spending as a share of outflows over 3 months",
    "acquiring_share_3m": "card-acquiring receipts as a share of inflows over 3 months",
    "segment": "client segment",
    "sector": "sector of activity",
    "region": "region",
    "business_age_months": "age of the business",
    "employees_log": "number of employees",
    "turnover_log": "declared annual turnover",
    "inflow_to_turnover": "account inflows against declared turnover",
    "tenure_months": "length of the banking relationship",
    "n_products": "number of products held",
    "n_credit_products": "number of credit facilities held",
    "products_opened_12m": "products opened in the last 12 months",
    "products_closed_12m": "products closed in the last 12 months",
    "prior_default": "an earlier default",
    "months_since_default": "months since the last default",
    "restructured_12m": "a restructuring in the last 12 months",
    "fin_ebitda_margin": "EBITDA margin in the latest accounts",
    "fin_debt_to_assets": "debt against total assets in the latest accounts",
    "fin_debt_to_ebitda": "debt against EBITDA in the latest accounts",
    "fin_equity_ratio": "equity against total assets in the latest accounts",
    "fin_current_ratio": "current assets against current liabilities in the latest accounts",
    "fin_revenue_growth": "revenue growth in the latest accounts",
    "fin_age_months": "age of the latest accounts",
}


def feature_names() -> list[str]:
    """Names of every feature :func:`build_features` returns, in order (besides the bank's own
    columns, :func:`bank_features`)."""
    return list(FEATURE_DESCRIPTIONS)


def month_index(values: pd.Series | Sequence[date]) -> np.ndarray:
    """Months as integers (year * 12 + month - 1): month arithmetic becomes integer arithmetic.

    Raises:
        ValueError: a value is not a date (read as ``pd.to_datetime(errors="raise")`` does).
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    days = _plain_dates(series)
    if days is not None:
        return days.astype("datetime64[M]").astype(np.int64) + _EPOCH_MONTH
    stamps = pd.DatetimeIndex(pd.to_datetime(series, errors="raise"))
    return np.asarray(stamps.year * 12 + stamps.month - 1, dtype=np.int64)


def month_start(index: int) -> date:
    """The first day of month ``index`` (year * 12 + month - 1): :func:`month_index`'s inverse."""
    return date(index // 12, index % 12 + 1, 1)


_EPOCH_MONTH = 1970 * 12  # the month index of numpy's datetime64 epoch


def _plain_dates(series: pd.Series) -> np.ndarray | None:
    """``series`` as numpy datetimes when it holds dates only, none missing and none with a time
    zone: datetime64 columns, and the ``datetime.date`` objects a Parquet date column is read
    as (converted by pyarrow, not parsed one by one: ``pd.to_datetime`` took a second per few
    million rows, and every part of the panel reads the months). None otherwise (text, time
    zones, missing values): :func:`month_index` then reads them as before."""
    if isinstance(series.dtype, np.dtype) and series.dtype.kind == "M":
        values = series.to_numpy()
    elif series.dtype == object and len(series):
        try:
            array = pa.array(series.to_numpy(), from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            return None
        if not pa.types.is_date32(array.type) or array.null_count:
            return None
        values = array.to_numpy(zero_copy_only=False)
    else:
        return None
    return None if np.isnat(values).any() else values


def month_from_index(index: pl.Expr) -> pl.Expr:
    """The first day of the month of a month-index expression, as a polars Date."""
    return pl.date((index // 12).cast(pl.Int32), (index % 12 + 1).cast(pl.Int8), 1)


def number_clients(ids: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Each row's client number (``_cid``: clients numbered 0, 1, ... by first appearance, -1
    for a missing id) and the ids so numbered, as text: how the builder and the labels key
    clients. Arrow-backed text is numbered by pyarrow (numbering Python string objects took a
    second per few million rows)."""
    codes, uniques = pd.factorize(ids.astype(str))
    return codes.astype(np.int32), pd.Index(uniques)


def build_features(
    inputs: FeatureInputs,
    *,
    months: Sequence[date] | None = None,
    financials_lag_months: int = DEFAULT_FINANCIALS_LAG_MONTHS,
) -> pd.DataFrame:
    """Features of every client at every month of its history, or at the given snapshot months.

    Args:
        inputs: the tables to read.
        months: snapshot months to return (first of month). Rows after the latest of them are
            dropped before anything is computed, so nothing can read the future. ``None`` returns
            every month of every client's history.
        financials_lag_months: months after a financial year ends before its accounts are used.

    Returns:
        One row per (client_id, month) where the client has history covering the month:
        ``client_id``, ``month`` (datetime64 first of month), ``observed`` (an account row exists
        for that month) and the columns of :func:`feature_names` (numbers as float32).
    """
    inputs = observed_inputs(inputs, financials_lag_months)
    return pandas_by_client_blocks(
        inputs,
        lambda block: observed_feature_frame(
            block, months=months, financials_lag_months=financials_lag_months
        ),
    )


def feature_frame(
    inputs: FeatureInputs,
    *,
    months: Sequence[date] | None = None,
    financials_lag_months: int = DEFAULT_FINANCIALS_LAG_MONTHS,
) -> pl.LazyFrame:
    """:func:`build_features` as a lazy polars plan, before the pandas edge (see there).

    Keeps the internal columns ``_cid`` (dense client number) and ``_mi`` (month index) that
    label construction joins on. Rows are in client-number order, then month.
    """
    return observed_feature_frame(
        observed_inputs(inputs, financials_lag_months),
        months=months,
        financials_lag_months=financials_lag_months,
    )


def observed_feature_frame(
    inputs: FeatureInputs,
    *,
    months: Sequence[date] | None = None,
    financials_lag_months: int = DEFAULT_FINANCIALS_LAG_MONTHS,
) -> pl.LazyFrame:
    """:func:`feature_frame` of ``inputs`` that are
    :func:`~rmreco.features.observations.observed_inputs` already (for ``financials_lag_months``),
    as the blocks of :func:`pandas_by_client_blocks` are: looking again for months to add
    costs a pass over every client id for nothing."""
    last_mi: int | None = None
    wanted: np.ndarray | None = None
    if months is not None:
        wanted = np.unique(month_index(list(months)))
        last_mi = int(wanted.max())

    frame, ids, names = _account_grid(inputs.account_months, last_mi)
    # The other tables join a narrow frame of the grid's keys, not the wide frame of account
    # features (each join copies every column of its left side); the rows, and their order,
    # are the grid's on both sides, so the two are put side by side.
    side = _side_features(frame, inputs, ids, financials_lag_months)
    account = frame.lazy().with_columns(_float32_account_features())
    grid = pl.concat([account, side.lazy()], how="horizontal").with_columns(
        _ratio(pl.col("_inflow_12m"), pl.col("turnover"))
        .cast(pl.Float32)
        .alias("inflow_to_turnover")
    )
    bank = bank_features(inputs.extra_columns)

    if wanted is not None:
        months_wanted = pl.LazyFrame({_MI: wanted}, schema={_MI: pl.Int64})
        grid = grid.join(months_wanted, on=_MI, how="semi", maintain_order="left")
    return grid.select(
        # the id looked up by the client's number (-1, a missing id, reads the null after the
        # last): not computed when a caller does not use it
        pl.lit(names.append(pl.Series([None], dtype=pl.String))).gather(pl.col(_CID)).alias(ID),
        pl.col(_CID),
        pl.col(_MI),
        pl.col("observed"),
        *[
            pl.col(name) if name in CATEGORICAL_FEATURES else pl.col(name).cast(pl.Float32)
            for name in FEATURE_DESCRIPTIONS
        ],
        *[
            pl.col(name) if kind == CATEGORICAL else pl.col(name).cast(pl.Float32)
            for name, kind in bank.items()
        ],
    )


@functools.cache
def _float32_account_features() -> tuple[pl.Expr, ...]:
    """The account features as float32 (what the builder gives) as soon as each is computed:
    the float64 columns of the whole panel are never held at once. ``_inflow_12m`` stays
    float64: ``inflow_to_turnover`` is computed from it. Built once per process (expressions
    are immutable): building them cost about 10 ms, twice per block of clients."""
    return tuple(
        e if e.meta.output_name() == "_inflow_12m" else e.cast(pl.Float32)
        for e in account_feature_expressions()
    )


def _side_features(
    frame: pl.DataFrame, inputs: FeatureInputs, ids: pl.DataFrame, lag_months: int
) -> pl.DataFrame:
    """The features of ``clients``, ``holdings``, ``credit_events`` and ``financials`` on the
    rows of the grid ``frame``, in its order (with ``turnover``, for ``inflow_to_turnover``).

    Raises:
        DataContractError: a client is on more than one row of ``clients``.

    Computed at once, by polars' in-memory engine: the window functions over the joined grid
    ran 2-3 times slower in its streaming engine (polars 2.1, 600,000 rows)."""
    keys = frame.lazy().select(_CID, _MI, "_account")
    extras = inputs.extra_columns
    side = _join_clients(keys, inputs.clients, ids, extras.get("clients", {}))
    side = _join_holdings(side, inputs.holdings, inputs.products, ids)
    side = _join_events(side, inputs.credit_events, ids)
    side = _join_financials(side, inputs.financials, lag_months, ids, extras.get("financials", {}))
    bank = bank_features(extras)
    out = side.select(
        *[
            pl.col(name) if name in CATEGORICAL_FEATURES else pl.col(name).cast(pl.Float32)
            for name in _side_feature_names()
        ],
        *[
            pl.col(name) if kind == CATEGORICAL else pl.col(name).cast(pl.Float32)
            for name, kind in bank.items()
        ],
        pl.col("turnover"),
    ).collect(engine="in-memory")
    if out.height != frame.height:  # only a client on two rows of ``clients`` adds rows
        problem = Problem("clients", "a client_id is on more than one row", column=ID)
        raise DataContractError([problem])
    return out


def _side_feature_names() -> list[str]:
    """The features :func:`_side_features` computes: all but the account features."""
    account = {e.meta.output_name() for e in _float32_account_features()}
    return [n for n in FEATURE_DESCRIPTIONS if n not in account and n != "inflow_to_turnover"]


# --- the pandas edge -------------------------------------------------------------------------

#: Account rows per block of clients at the pandas edge (:func:`pandas_by_client_blocks`):
#: a block's grid, windows and joins are what the build holds besides its result (about
#: 100 MB at 100,000 rows), whatever the size of the book.
BLOCK_ROWS = 100_000


def features_to_pandas(frame: pl.LazyFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """The pandas edge: ``client_id``, ``month``, ``observed``, the features (the bank's own
    columns after the builder's) and ``extra``."""
    edge = _PandasEdge(_edge_columns(frame, extra))
    edge.add(frame.select(edge.columns).collect())
    return edge.frame()


def pandas_by_client_blocks(
    inputs: FeatureInputs,
    plan: Callable[[FeatureInputs], pl.LazyFrame],
    extra: Sequence[str] = (),
) -> pd.DataFrame:
    """``features_to_pandas(plan(inputs), extra)``, computed for blocks of whole clients of
    about :data:`BLOCK_ROWS` account rows each, one after the other: the memory a build holds
    is its result and one block's work, not the whole book's grid and windows at once.

    ``inputs`` must be :func:`~rmreco.features.observations.observed_inputs` already (the
    months a client without account rows is observed at are the whole book's), and ``plan``
    must give each client's rows from that client's own rows of the tables only, in
    client-number order (as :func:`feature_frame` does): the blocks, in order, then give
    the rows of the whole. The clients of a block keep their order (each table's rows are
    taken in their order); their months reach ``plan`` as datetime64, converted once.
    """
    months = inputs.account_months
    codes, names = number_clients(months[ID])
    if len(months) <= BLOCK_ROWS or (codes < 0).any():  # one block (or ids missing: as before)
        return features_to_pandas(plan(inputs), extra)
    month_mi = month_index(months[MONTH])
    counts = np.bincount(codes, minlength=len(names))
    # every result is a subset of the grid: a client's months from its first to its last,
    # and any repeated month (the arrays are sized once; pages never written cost nothing)
    spans = (
        pl.DataFrame({_CID: codes, _MI: month_mi})
        .group_by(_CID)
        .agg((pl.col(_MI).max() - pl.col(_MI).min() + 1).alias("n"))
    )
    capacity = int(spans["n"].sum()) + len(months)
    cut = np.searchsorted(
        np.cumsum(counts), np.arange(BLOCK_ROWS, len(months), BLOCK_ROWS), side="left"
    )
    bounds = [0, *sorted({int(c) + 1 for c in cut if c + 1 < len(names)}), len(names)]
    tables = {
        name: (table, names.get_indexer(pd.Index(table[ID].astype(str))))
        for name, table in (
            ("clients", inputs.clients),
            ("holdings", inputs.holdings),
            ("credit_events", inputs.credit_events),
            ("financials", inputs.financials),
        )
        if table is not None
    }
    edge: _PandasEdge | None = None
    # a block's plan is collected on a thread (polars computes without Python's lock) while
    # this thread converts the block before it to pandas and lays out the block after it
    pending: Future[pl.DataFrame] | None = None
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rmreco-block")
    try:
        for low, high in itertools.pairwise(bounds):
            result = plan(_block_inputs(inputs, months, month_mi, codes, tables, low, high))
            if edge is None:
                edge = _PandasEdge(_edge_columns(result, extra), capacity)
            collecting = pool.submit(result.select(edge.columns).collect)
            if pending is not None:
                edge.add(pending.result())
            pending = collecting
        # at least one block: there are rows
        assert edge is not None
        assert pending is not None
        edge.add(pending.result())
    finally:
        pool.shutdown(cancel_futures=True)
    return edge.frame()


def _block_inputs(
    inputs: FeatureInputs,
    months: pd.DataFrame,
    month_mi: np.ndarray,
    codes: np.ndarray,
    tables: Mapping[str, tuple[pd.DataFrame, np.ndarray]],
    low: int,
    high: int,
) -> FeatureInputs:
    """The inputs of the clients numbered ``low`` .. ``high - 1``: their rows of every table."""
    rows = _block_rows(codes, low, high)
    block = months.iloc[rows] if isinstance(rows, slice) else months.take(rows)
    block = block.assign(**{MONTH: _month_starts(month_mi[rows])})
    parts: dict[str, pd.DataFrame] = {}
    for name, (table, numbers) in tables.items():
        part = _block_rows(numbers, low, high)
        part_rows = table.iloc[part] if isinstance(part, slice) else table.take(part)
        # an empty table is one the bank did not send (null features, not zeros): a block
        # none of whose clients has a holding or an event gets the whole table, of which
        # the builder reads its own clients' rows (neither adds observation months)
        is_whole = part_rows.empty and name in ("holdings", "credit_events")
        parts[name] = table if is_whole else part_rows
    return replace(
        inputs,
        account_months=block,
        clients=parts["clients"],
        holdings=parts.get("holdings"),
        credit_events=parts.get("credit_events"),
        financials=parts.get("financials"),
    )


def _block_rows(numbers: np.ndarray, low: int, high: int) -> slice | np.ndarray:
    """The rows of a table whose client numbers are in ``low`` .. ``high - 1``, in order: a
    slice when the table is sorted by client number (a Parquet file written client by client
    is; slicing copies nothing, while taking arrow text rows concatenated its every chunk)."""
    if len(numbers) < 2 or (np.diff(numbers) >= 0).all():
        start, stop = np.searchsorted(numbers, [low, high], side="left")
        return slice(int(start), int(stop))
    return np.flatnonzero((numbers >= low) & (numbers < high))


def _month_starts(month_mi: np.ndarray) -> np.ndarray:
    """The first day of each month of a month-index array, as datetime64."""
    return (month_mi - _EPOCH_MONTH).astype("datetime64[M]").astype("datetime64[s]")


def _edge_columns(frame: pl.LazyFrame, extra: Sequence[str]) -> dict[str, pl.Expr]:
    """The columns of the pandas edge, by name, as expressions over ``frame``."""
    names = frame.collect_schema().names()
    return {
        ID: pl.col(ID),
        MONTH: month_from_index(pl.col(_MI)),
        "observed": pl.col("observed"),
        **{name: pl.col(name) for name in FEATURE_DESCRIPTIONS},
        **{name: pl.col(name) for name in names if is_bank_feature(name)},
        **{name: pl.col(name) for name in extra},
    }


class _PandasEdge:
    """The pandas frame of the builder's rows, filled one block of rows at a time.

    Float columns are written into arrays allocated once at their final length (a list of
    pieces concatenated at the end would hold them twice), each converted from polars on its
    own: ``DataFrame.to_pandas`` held the polars frame, the arrow table and pandas' 2-D block
    together. The other columns (ids, months, flags) are converted per block as ``to_pandas``
    converts them and concatenated at the end; text features are kept as categories from the
    start (codes, not text), their categories sorted at the end as ``astype("category")``
    sorts them.
    """

    def __init__(self, columns: dict[str, pl.Expr], capacity: int | None = None) -> None:
        self.columns = [expr.alias(name) for name, expr in columns.items()]
        self._names = list(columns)
        self._capacity = capacity
        self._floats: dict[str, np.ndarray] = {}
        self._pieces: dict[str, list[pd.Series]] = {name: [] for name in self._names}
        self._categorical: set[str] = set()
        self._rows = 0

    def add(self, block: pl.DataFrame) -> None:
        """Append ``block``'s rows (a frame of the edge's columns, in order)."""
        for name in block.columns:
            column = block.get_column(name)
            if column.dtype in (pl.Float32, pl.Float64):
                if name not in self._floats:
                    size = block.height if self._capacity is None else self._capacity
                    kind = np.float32 if column.dtype == pl.Float32 else np.float64
                    self._floats[name] = np.empty(size, dtype=kind)
                self._floats[name][self._rows : self._rows + block.height] = column.to_numpy()
                continue
            piece = column.to_pandas()
            is_text = column.dtype == pl.String and is_bank_feature(name)  # the bank's text
            if name in CATEGORICAL_FEATURES or is_text:
                piece = piece.astype("category")
                self._categorical.add(name)
            self._pieces[name].append(piece)
        self._rows += block.height

    def frame(self) -> pd.DataFrame:
        """The pandas frame of the rows added."""
        data: dict[str, Any] = {}
        for name in self._names:
            pieces = self._pieces[name]
            if name in self._floats:
                data[name] = self._floats[name][: self._rows]
            elif name in self._categorical:
                data[name] = pd.Series(union_categoricals(pieces, sort_categories=True))
            else:
                data[name] = pd.concat(pieces, ignore_index=True)
        out = pd.DataFrame(data, copy=False)
        out[MONTH] = pd.to_datetime(out[MONTH])
        return out


# --- account history -------------------------------------------------------------------------

_ACCOUNT_COLUMNS = [c for c in ACCOUNT_MONTHS.column_names if c not in (ID, MONTH)]


def _account_grid(
    account_months: pd.DataFrame, last_mi: int | None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series]:
    """The monthly grid of every client, keyed by a dense integer client number (``_cid``):
    window functions partition on it far faster than on strings. Also returns the id table
    of the clients on the grid (``_cid``, ``client_id``, ``_first``: its first grid month)
    and every client's id by number.

    The rows are the account rows sorted by client and month (not sorted again when they
    come sorted), with a row of nulls for each month missing between two of a client's
    rows: a join of every client-month with the rows, then a sort, cost a few seconds."""
    present = [c for c in _ACCOUNT_COLUMNS if c in account_months.columns]
    codes, uniques = number_clients(account_months[ID])
    names = pl.Series(ID, np.asarray(uniques, dtype=object), dtype=pl.String)
    columns: dict[str, np.ndarray] = {_CID: codes, _MI: month_index(account_months[MONTH])}
    for name in present:
        # positional: the input's index may have holes (filtered frames)
        columns[name] = pd.to_numeric(account_months[name], errors="coerce").to_numpy(dtype=float)
    data = pl.DataFrame(columns, nan_to_null=True)
    for name in _ACCOUNT_COLUMNS:  # optional columns a bank did not send are all-null
        if name not in present:
            data = data.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    spine = (
        account_months[SPINE].fillna(False).to_numpy(dtype=bool)
        if SPINE in account_months.columns
        else np.zeros(len(account_months), dtype=bool)
    )
    data = data.with_columns(
        pl.lit(True).alias("observed"), pl.Series("_account", ~spine, dtype=pl.Boolean)
    )
    if last_mi is not None:
        data = data.filter(pl.col(_MI) <= last_mi)

    client, month = data[_CID].to_numpy(), data[_MI].to_numpy()
    if not _is_sorted(client, month):
        data = data.sort([_CID, _MI], maintain_order=True)
        client, month = data[_CID].to_numpy(), data[_MI].to_numpy()
    # months missing between two rows of a client: rows of nulls, not observed
    missing = np.where(client[1:] == client[:-1], month[1:] - month[:-1] - 1, 0)
    if missing.any():
        before = np.repeat(np.arange(len(missing)), missing)
        step = np.arange(len(before)) - np.repeat(np.cumsum(missing) - missing, missing) + 1
        gaps = pl.DataFrame(
            {_CID: client[before], _MI: month[before] + step},
            schema={_CID: pl.Int32, _MI: pl.Int64},
        )
        data = pl.concat([data, gaps], how="diagonal").sort([_CID, _MI], maintain_order=True)
        client, month = data[_CID].to_numpy(), data[_MI].to_numpy()
    first = np.flatnonzero(np.r_[True, client[1:] != client[:-1]]) if len(client) else client
    position = np.arange(len(client)) - np.repeat(first, np.diff(np.r_[first, len(client)]))
    grid = data.with_columns(
        pl.col("observed").fill_null(False),
        pl.col("_account").fill_null(False),
        pl.Series(_POS, position, dtype=pl.Int64),
    )
    ids = pl.DataFrame(
        {_CID: client[first], ID: names.gather(client[first]), "_first": month[first]},
        schema={_CID: pl.Int32, ID: pl.String, "_first": pl.Int64},
    )
    return grid, ids, names


def _is_sorted(client: np.ndarray, month: np.ndarray) -> bool:
    """Whether rows are sorted by client, then month."""
    step = np.diff(client)
    return bool((step >= 0).all() and (month[1:][step == 0] >= month[:-1][step == 0]).all())


def _mean(column: str | pl.Expr, window: int) -> pl.Expr:
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.rolling_mean(window, min_samples=1).over(_CID)


def _sum(column: str | pl.Expr, window: int) -> pl.Expr:
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.rolling_sum(window, min_samples=1).over(_CID)


def _max(column: str | pl.Expr, window: int) -> pl.Expr:
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.rolling_max(window, min_samples=1).over(_CID)


def _std(column: str | pl.Expr, window: int) -> pl.Expr:
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.rolling_std(window, min_samples=3).over(_CID)


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator > 0).then(numerator / denominator).otherwise(None)


def _lagged(expr: pl.Expr, months: int) -> pl.Expr:
    return expr.shift(months).over(_CID)


def _log(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr >= 0).then((expr + 1.0).log()).otherwise(None)


def _slope(column: str, window: int) -> pl.Expr:
    """Least-squares slope of a column against month position over a trailing window."""
    y = pl.col(column)
    t = pl.when(y.is_not_null()).then(pl.col(_POS).cast(pl.Float64)).otherwise(None)
    mean_t, mean_y = _mean(t, window), _mean(y, window)
    cov = _mean(t * y, window) - mean_t * mean_y
    var = _mean(t * t, window) - mean_t * mean_t
    return pl.when(var > 1e-9).then(cov / var).otherwise(None)


def account_feature_expressions() -> list[pl.Expr]:
    """The rolling account features as polars expressions over a client-sorted monthly grid
    with columns ``client_id``, ``_mi``, ``_pos``, ``observed`` and the account columns."""
    inflow, outflow = pl.col("credit_turnover"), pl.col("debit_turnover")
    in3, in12 = _mean(inflow, 3), _mean(inflow, 12)
    in3_prev = _lagged(_mean(inflow, 3), 3)
    in3_last_year = _lagged(_mean(inflow, 3), 12)
    in12_prev = _lagged(_mean(inflow, 12), 12)
    out3, out12 = _mean(outflow, 3), _mean(outflow, 12)
    limit = pl.col("overdraft_limit")
    od_use = pl.when(limit > 0).then(pl.col("overdraft_peak_use") / limit).otherwise(None)
    in_overdraft = (pl.col("days_in_overdraft") > 0).cast(pl.Float64)
    dpd = pl.col("dpd_max")
    since = pl.col(_MI) - pl.when(dpd > 0).then(pl.col(_MI)).otherwise(None).forward_fill().over(
        _CID
    )
    since30 = pl.col(_MI) - (
        pl.when(dpd >= 30).then(pl.col(_MI)).otherwise(None).forward_fill().over(_CID)
    )
    tx = pl.col("n_credit_tx") + pl.col("n_debit_tx")
    flows3 = _mean(inflow + outflow, 3)
    intl3 = _mean("intl_payments", 3)
    return [
        # months of account history: the months a client is observed by statements or
        # attributes only are not
        (pl.col("_account").cast(pl.Int32).cum_sum().over(_CID))
        .cast(pl.Float64)
        .alias("history_months"),
        _log(inflow).alias("inflow_1m_log"),
        _log(in3 * 3).alias("inflow_3m_log"),
        _log(in12 * 12).alias("inflow_12m_log"),
        _ratio(in3 - out3, in3).alias("net_flow_ratio_3m"),
        _ratio(in12 - out12, in12).alias("net_flow_ratio_12m"),
        (_ratio(in3, in3_prev) - 1.0).alias("inflow_growth_3m"),
        (_ratio(in3, in3_last_year) - 1.0).alias("inflow_growth_yoy"),
        (_ratio(in12, in12_prev) - 1.0).alias("inflow_growth_12m"),
        _ratio(_slope("credit_turnover", 6), _mean(inflow, 6)).alias("inflow_trend_6m"),
        _ratio(_std(inflow, 12), in12).alias("inflow_volatility_12m"),
        _ratio(pl.col("balance_avg"), _mean(inflow, 12)).alias("balance_to_inflow_1m"),
        _ratio(_mean("balance_avg", 3), in12).alias("balance_to_inflow_3m"),
        _ratio(_mean("balance_avg", 12), in12).alias("balance_to_inflow_12m"),
        _ratio(_mean("balance_min", 3), in12).alias("balance_min_to_inflow_3m"),
        _ratio(_std("balance_avg", 6), in12).alias("balance_volatility_6m"),
        _ratio(_std("balance_avg", 12), in12).alias("balance_volatility_12m"),
        _ratio(_slope("balance_avg", 6), in12).alias("balance_trend_6m"),
        _ratio(_slope("balance_avg", 12), in12).alias("balance_trend_12m"),
        od_use.alias("overdraft_use_1m"),
        _mean(od_use, 3).alias("overdraft_use_3m"),
        _mean(od_use, 12).alias("overdraft_use_12m"),
        _sum(in_overdraft, 3).alias("overdraft_months_3m"),
        _sum(in_overdraft, 6).alias("overdraft_months_6m"),
        _sum(in_overdraft, 12).alias("overdraft_months_12m"),
        _sum("days_in_overdraft", 3).alias("overdraft_days_3m"),
        _sum("days_in_overdraft", 12).alias("overdraft_days_12m"),
        dpd.alias("dpd_1m"),
        _max(dpd, 3).alias("dpd_3m"),
        _max(dpd, 6).alias("dpd_6m"),
        _max(dpd, 12).alias("dpd_12m"),
        since.cast(pl.Float64).fill_null(NEVER).alias("months_since_dpd"),
        since30.cast(pl.Float64).fill_null(NEVER).alias("months_since_dpd30"),
        _sum("returned_payments", 3).alias("returned_payments_3m"),
        _sum("returned_payments", 12).alias("returned_payments_12m"),
        _log(_mean(tx, 3)).alias("tx_count_3m_log"),
        _ratio(intl3, flows3).alias("intl_share_3m"),
        (_ratio(intl3, _lagged(intl3, 12)) - 1.0).alias("intl_growth_yoy"),
        _ratio(_mean("payroll_outflow", 3), out3).alias("payroll_share_3m"),
        _ratio(_mean("card_spend", 3), out3).alias("card_spend_share_3m"),
        _ratio(_mean("acquiring_inflow", 3), in3).alias("acquiring_share_3m"),
        # kept for inflow_to_turnover, dropped from the output by the final select
        (in12 * 12).alias("_inflow_12m"),
    ]


# --- clients ---------------------------------------------------------------------------------


def _join_clients(
    grid: pl.LazyFrame,
    clients: pd.DataFrame,
    ids: pl.DataFrame,
    extra_columns: Mapping[str, str],
) -> pl.LazyFrame:
    frame = pd.DataFrame({ID: clients[ID].astype(str).to_numpy()})
    bank = {BANK_COLUMN_PREFIXES["clients"] + c: k for c, k in extra_columns.items()}
    for column, kind in extra_columns.items():
        frame[BANK_COLUMN_PREFIXES["clients"] + column] = bank_column_values(clients, column, kind)
    for name in CATEGORICAL_FEATURES:
        values = clients[name] if name in clients else pd.Series(None, index=clients.index)
        frame[name] = values.astype(object).where(values.notna(), None).to_numpy()
    frame["_founded_mi"] = _optional_month_index(clients, "founded")
    frame["_onboarded_mi"] = _optional_month_index(clients, "onboarded")
    for name in ("employees", "turnover"):
        frame[name] = (
            pd.to_numeric(clients[name], errors="coerce").to_numpy(dtype=float)
            if name in clients
            else np.full(len(clients), np.nan)
        )
    table = (
        pl.from_pandas(
            frame,
            schema_overrides={
                **dict.fromkeys(CATEGORICAL_FEATURES, pl.String),
                "_founded_mi": pl.Float64,
                "_onboarded_mi": pl.Float64,
                "employees": pl.Float64,
                "turnover": pl.Float64,
                **polars_schema(bank),
            },
        )
        .join(ids.select(_CID, ID), on=ID, how="inner")
        .drop(ID)
        .lazy()
    )
    first_mi = (
        pl.when(pl.col("_account")).then(pl.col(_MI)).otherwise(None).min().over(_CID)
    ).cast(pl.Float64)
    start = pl.min_horizontal(pl.col("_onboarded_mi"), first_mi)
    return grid.join(table, on=_CID, how="left", maintain_order="left").with_columns(
        (pl.col(_MI) - pl.col("_founded_mi")).clip(lower_bound=0).alias("business_age_months"),
        _log(pl.col("employees")).alias("employees_log"),
        _log(pl.col("turnover")).alias("turnover_log"),
        (pl.col(_MI) - start).clip(lower_bound=0).alias("_tenure_accounts"),
    )


def _optional_month_index(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    stamps = pd.DatetimeIndex(pd.to_datetime(frame[column], errors="coerce"))
    return np.asarray(stamps.year * 12 + stamps.month - 1, dtype=np.float64)


# --- holdings --------------------------------------------------------------------------------


def _join_holdings(
    grid: pl.LazyFrame,
    holdings: pd.DataFrame | None,
    products: pd.DataFrame | None,
    ids: pl.DataFrame,
) -> pl.LazyFrame:
    if holdings is None or holdings.empty:
        return grid.with_columns(
            pl.col("_tenure_accounts").alias("tenure_months"),
            *[
                pl.lit(None, dtype=pl.Float64).alias(name)
                for name in (
                    "n_products",
                    "n_credit_products",
                    "products_opened_12m",
                    "products_closed_12m",
                )
            ],
        )
    credit_codes: set[str] = set()
    if products is not None and "kind" in products:
        credit_codes = set(
            products.loc[products["kind"] == ProductKind.FINANCING, "product_code"].astype(str)
        )
    end = pd.to_datetime(holdings["end_month"], errors="coerce")
    spells = (
        pl.from_pandas(
            pd.DataFrame(
                {
                    ID: holdings[ID].astype(str).to_numpy(),
                    "_start": month_index(holdings["start_month"]),
                    # a spell ends after its last month; open spells never end
                    "_end": np.where(
                        end.isna(),
                        np.iinfo(np.int64).max // 2,
                        (end.dt.year * 12 + end.dt.month - 1).fillna(0).astype(np.int64) + 1,
                    ),
                    "_credit": holdings["product_code"].astype(str).isin(credit_codes).to_numpy(),
                }
            )
        )
        .join(ids.select(_CID, ID), on=ID, how="inner")
        .drop(ID)
        .lazy()
    )
    first = ids.select(_CID, "_first").lazy()
    spells = spells.join(first, on=_CID, how="inner")
    # Held at month t <=> start <= t < end: +1 at start, -1 at end, cumulated over the grid.
    # Changes before a client's first grid month are folded into that month.
    starts = spells.select(
        _CID,
        pl.max_horizontal("_start", "_first").alias(_MI),
        pl.lit(1).alias("_d"),
        pl.col("_credit").cast(pl.Int32).alias("_dc"),
    )
    ends = spells.filter(pl.col("_end") > pl.col("_first")).select(
        _CID,
        pl.col("_end").alias(_MI),
        pl.lit(-1).alias("_d"),
        (-pl.col("_credit").cast(pl.Int32)).alias("_dc"),
    )
    folded = spells.filter(pl.col("_end") <= pl.col("_first")).select(
        _CID,
        pl.col("_first").alias(_MI),
        pl.lit(-1).alias("_d"),
        (-pl.col("_credit").cast(pl.Int32)).alias("_dc"),
    )
    deltas = (
        pl.concat([starts, ends, folded])
        .group_by([_CID, _MI])
        .agg(pl.col("_d").sum(), pl.col("_dc").sum())
    )
    opened = (
        spells.filter(pl.col("_start") >= pl.col("_first"))
        .group_by([_CID, pl.col("_start").alias(_MI)])
        .agg(pl.len().cast(pl.Int32).alias("_opened"))
    )
    closed = (
        spells.filter(pl.col("_end") > pl.col("_first"))
        .group_by([_CID, pl.col("_end").alias(_MI)])
        .agg(pl.len().cast(pl.Int32).alias("_closed"))
    )
    first_start = spells.group_by(_CID).agg(pl.col("_start").min().alias("_first_holding"))
    grid = (
        # window functions below read rows in grid order: every join keeps it
        grid.join(deltas, on=[_CID, _MI], how="left", maintain_order="left")
        .join(opened, on=[_CID, _MI], how="left", maintain_order="left")
        .join(closed, on=[_CID, _MI], how="left", maintain_order="left")
        .join(first_start, on=_CID, how="left", maintain_order="left")
    )
    return grid.with_columns(
        pl.col("_d").fill_null(0).cum_sum().over(_CID).cast(pl.Float64).alias("n_products"),
        pl.col("_dc").fill_null(0).cum_sum().over(_CID).cast(pl.Float64).alias("n_credit_products"),
        _sum(pl.col("_opened").fill_null(0), 12).cast(pl.Float64).alias("products_opened_12m"),
        # counted at the first month no longer held, so a closure is only known after it
        _sum(pl.col("_closed").fill_null(0), 12).cast(pl.Float64).alias("products_closed_12m"),
        pl.max_horizontal(
            pl.col("_tenure_accounts"),
            (pl.col(_MI) - pl.col("_first_holding")).clip(lower_bound=0).cast(pl.Float64),
        ).alias("tenure_months"),
    )


# --- credit events ---------------------------------------------------------------------------


def _join_events(
    grid: pl.LazyFrame, events: pd.DataFrame | None, ids: pl.DataFrame
) -> pl.LazyFrame:
    if events is None or events.empty:
        return grid.with_columns(
            pl.lit(0.0).alias("prior_default"),
            pl.lit(NEVER).alias("months_since_default"),
            pl.lit(0.0).alias("restructured_12m"),
        )
    kinds = events["event_type"].astype(str)
    frame = (
        pl.from_pandas(
            pd.DataFrame(
                {
                    ID: events[ID].astype(str).to_numpy(),
                    _MI: month_index(events[MONTH]),
                    "_default": kinds.isin([str(e) for e in DEFAULT_TYPE_EVENTS])
                    .to_numpy()
                    .astype(np.int32),
                    "_restructuring": (kinds == EventType.RESTRUCTURING)
                    .to_numpy()
                    .astype(np.int32),
                }
            )
        )
        .join(ids.select(_CID, ID), on=ID, how="inner")
        .drop(ID)
        .lazy()
    )
    first = ids.select(_CID, "_first").lazy()
    # events before a client's first grid month count from that month on
    frame = frame.join(first, on=_CID, how="inner").with_columns(
        pl.max_horizontal(_MI, "_first").alias("_at"), pl.col(_MI).alias("_event_mi")
    )
    per_month = frame.group_by([_CID, pl.col("_at").alias(_MI)]).agg(
        pl.col("_default").sum().alias("_n_default"),
        pl.col("_restructuring").sum().alias("_n_restructuring"),
        pl.when(pl.col("_default") > 0).then(pl.col("_event_mi")).max().alias("_last_default"),
    )
    grid = grid.join(per_month, on=[_CID, _MI], how="left", maintain_order="left")
    last_default = pl.col("_last_default").forward_fill().over(_CID)
    return grid.with_columns(
        (pl.col("_n_default").fill_null(0).cum_sum().over(_CID) > 0)
        .cast(pl.Float64)
        .alias("prior_default"),
        (pl.col(_MI) - last_default)
        .cast(pl.Float64)
        .fill_null(NEVER)
        .alias("months_since_default"),
        (_sum(pl.col("_n_restructuring").fill_null(0), 12) > 0)
        .cast(pl.Float64)
        .alias("restructured_12m"),
    )


# --- financials ------------------------------------------------------------------------------

_FIN_FEATURES = (
    "fin_ebitda_margin",
    "fin_debt_to_assets",
    "fin_debt_to_ebitda",
    "fin_equity_ratio",
    "fin_current_ratio",
    "fin_revenue_growth",
    "fin_age_months",
)


def _join_financials(
    grid: pl.LazyFrame,
    financials: pd.DataFrame | None,
    lag_months: int,
    ids: pl.DataFrame,
    extra_columns: Mapping[str, str],
) -> pl.LazyFrame:
    bank = {BANK_COLUMN_PREFIXES["financials"] + c: k for c, k in extra_columns.items()}
    if financials is None or financials.empty:
        return grid.with_columns(
            [pl.lit(None, dtype=pl.Float64).alias(name) for name in _FIN_FEATURES],
            *[pl.lit(None, dtype=dtype).alias(n) for n, dtype in polars_schema(bank).items()],
        )
    columns = (
        "revenue",
        "ebitda",
        "total_assets",
        "total_debt",
        "equity",
        "current_assets",
        "current_liabilities",
    )
    frame = pd.DataFrame(
        {
            ID: financials[ID].astype(str).to_numpy(),
            "year": pd.to_numeric(financials["year"]).to_numpy(dtype=np.int64),
        }
    )
    for name in columns:
        frame[name] = (
            pd.to_numeric(financials[name], errors="coerce").to_numpy(dtype=float)
            if name in financials
            else math.nan
        )
    for column, kind in extra_columns.items():
        frame[BANK_COLUMN_PREFIXES["financials"] + column] = bank_column_values(
            financials, column, kind
        )
    table = (
        pl.from_pandas(frame, nan_to_null=True, schema_overrides=polars_schema(bank))
        .join(ids.select(_CID, ID), on=ID, how="inner")
        .drop(ID)
        .lazy()
        .sort([_CID, "year"])
        .with_columns(
            # accounts of year Y (ending in December) are known ``lag`` months after December
            (pl.col("year") * 12 + 11 + lag_months).cast(pl.Int64).alias("_known_mi"),
            pl.col("revenue").shift(1).over(_CID).alias("_revenue_prev"),
            pl.col("year").shift(1).over(_CID).alias("_year_prev"),
        )
        .select(
            _CID,
            "_known_mi",
            _ratio(pl.col("ebitda"), pl.col("revenue")).alias("fin_ebitda_margin"),
            _ratio(pl.col("total_debt"), pl.col("total_assets")).alias("fin_debt_to_assets"),
            _ratio(pl.col("total_debt"), pl.col("ebitda")).alias("fin_debt_to_ebitda"),
            _ratio(pl.col("equity"), pl.col("total_assets")).alias("fin_equity_ratio"),
            _ratio(pl.col("current_assets"), pl.col("current_liabilities")).alias(
                "fin_current_ratio"
            ),
            pl.when(pl.col("_year_prev") == pl.col("year") - 1)
            .then(_ratio(pl.col("revenue"), pl.col("_revenue_prev")) - 1.0)
            .otherwise(None)
            .alias("fin_revenue_growth"),
            *[pl.col(name) for name in bank],
        )
        .sort("_known_mi")
    )
    # the grid is sorted by client, then month: sorted on the key within each client, which is
    # all an asof join by client needs (a global sort of the grid would cost two sorts of it)
    joined = grid.join_asof(
        table,
        left_on=_MI,
        right_on="_known_mi",
        by=_CID,
        strategy="backward",
        check_sortedness=False,  # both sides are sorted on the key within each client
    )
    return joined.with_columns(
        (pl.col(_MI) - pl.col("_known_mi") + lag_months).cast(pl.Float64).alias("fin_age_months")
    )
