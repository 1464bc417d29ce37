"""This module owns default status and the credit-risk training panel: point-in-time features
and 12-month labels.

- In default at month t: a default, write-off or insolvency event in the last ``cure_months``
  months (t included), or any such event before t and days past due of 90 or more within the
  last ``cure_months`` months, or a write-off or insolvency at any time before. Clients in default
  at t are not scored and not used as training rows at t.
- Label at t: a ``default`` event (the event types are configurable) in months t+1 .. t+horizon.
  A snapshot is labelled only when the data's outcome coverage reaches t+horizon
  (``label_complete``). The outcome coverage (:func:`outcome_end`) is the later of the last
  account month and the last credit-event month: an extract may be an observation window (a few
  monthly statements), then the outcomes of the months after it, so outcomes may lie after the
  last account month. A client whose history ends before t+horizon without a default counts as
  not defaulted: the bank saw no default.
- Point in time: features at t use months <= t only, whatever the outcome coverage.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from rmreco.domain.contract import EventType
from rmreco.features.builder import (
    DEFAULT_FINANCIALS_LAG_MONTHS,
    DEFAULT_TYPE_EVENTS,
    month_from_index,
    month_index,
    number_clients,
    observed_feature_frame,
    pandas_by_client_blocks,
)
from rmreco.features.inputs import ID, MONTH, FeatureInputs
from rmreco.features.observations import SPINE, observed_inputs

_MI = "_mi"
_CID = "_cid"

DEFAULT_CURE_MONTHS = 3
LABEL = "default_12m"


def client_numbers(inputs: FeatureInputs) -> pl.DataFrame:
    """``_cid`` and ``client_id`` of every client with account rows, numbered by first
    appearance, as the feature builder numbers them."""
    _, uniques = number_clients(inputs.account_months[ID])
    return pl.DataFrame(
        {_CID: np.arange(len(uniques), dtype=np.int32), ID: np.asarray(uniques, dtype=object)},
        schema={_CID: pl.Int32, ID: pl.String},
    )


def _events(inputs: FeatureInputs, ids: pl.DataFrame) -> pl.DataFrame | None:
    events = inputs.credit_events
    if events is None or events.empty:
        return None
    return (
        pl.DataFrame(
            {
                ID: events[ID].astype(str).to_numpy(),
                "_ev": month_index(events[MONTH]),
                "_type": events["event_type"].astype(str).to_numpy(),
            },
            schema={ID: pl.String, "_ev": pl.Int64, "_type": pl.String},
        )
        .join(ids, on=ID, how="inner")
        .drop(ID)
    )


#: Not given: computed from the inputs (a sentinel, since None means "no events").
_UNSET: Any = object()


def _status(
    inputs: FeatureInputs, cure_months: int, events: pl.DataFrame | None = _UNSET
) -> pl.DataFrame:
    """``_cid``, ``_mi``, ``in_default`` for every account-month row (clients numbered as
    :func:`client_numbers` numbers them), sorted by client, then month. ``events``: the
    inputs' :func:`_events`, when the caller has them."""
    am = inputs.account_months
    dpd = (
        pd.to_numeric(am["dpd_max"], errors="coerce").fillna(0).to_numpy()
        if "dpd_max" in am
        else np.zeros(len(am))
    )
    codes, _ = number_clients(am[ID])
    rows = (
        pl.DataFrame(
            {_CID: codes, _MI: month_index(am[MONTH]), "_dpd90": (dpd >= 90).astype(np.int8)},
            schema={_CID: pl.Int32, _MI: pl.Int64, "_dpd90": pl.Int8},
        )
        .filter(pl.col(_CID) >= 0)  # a missing id is no client
        .sort([_CID, _MI])
    )
    rows = rows.with_columns(
        pl.col("_dpd90")
        .rolling_max_by(_MI, window_size=f"{cure_months}i")
        .over(_CID)
        .alias("_dpd_recent")
    )
    if events is _UNSET:
        events = _events(inputs, client_numbers(inputs))
    if events is None:
        return rows.select(_CID, _MI, pl.lit(False).alias("in_default"))
    defaults = [str(e) for e in DEFAULT_TYPE_EVENTS]
    terminal = [str(EventType.WRITE_OFF), str(EventType.INSOLVENCY)]
    last_default = (
        events.filter(pl.col("_type").is_in(defaults))
        .select(_CID, pl.col("_ev").alias("_last_ev"))
        .unique()
        .sort("_last_ev")
    )
    first_terminal = (
        events.filter(pl.col("_type").is_in(terminal))
        .group_by(_CID)
        .agg(pl.col("_ev").min().alias("_terminal_mi"))
    )
    return (
        rows.join_asof(
            last_default,
            left_on=_MI,
            right_on="_last_ev",
            by=_CID,
            strategy="backward",
            # an asof join by client needs each client's rows sorted on the key, as they are
            check_sortedness=False,
        )
        .join(first_terminal, on=_CID, how="left", maintain_order="left")
        .select(
            _CID,
            _MI,
            (
                ((pl.col(_MI) - pl.col("_last_ev")) < cure_months).fill_null(False)
                | (pl.col("_last_ev").is_not_null() & (pl.col("_dpd_recent") > 0))
                | (pl.col(_MI) >= pl.col("_terminal_mi")).fill_null(False)
            ).alias("in_default"),
        )
    )


def default_status(
    inputs: FeatureInputs,
    *,
    cure_months: int = DEFAULT_CURE_MONTHS,
    financials_lag_months: int = DEFAULT_FINANCIALS_LAG_MONTHS,
) -> pd.DataFrame:
    """Whether each client is in default at each month of its history.

    Returns ``client_id``, ``month`` (datetime64) and ``in_default`` (bool), one row per
    observation month (:func:`~rmreco.features.builder.observation_months`).
    """
    inputs = observed_inputs(inputs, financials_lag_months)
    ids = client_numbers(inputs)
    status = _status(inputs, cure_months).join(ids, on=_CID, how="left", maintain_order="left")
    # in _status's order: by client, then month
    out = status.select(ID, month_from_index(pl.col(_MI)).alias(MONTH), "in_default").to_pandas()
    out[MONTH] = pd.to_datetime(out[MONTH])
    return out


def default_status_plan(inputs: FeatureInputs, *, cure_months: int) -> pl.LazyFrame:
    """:func:`default_status` keyed as the feature builder keys its rows (``_cid``, ``_mi``,
    ``in_default``), to join a :func:`~rmreco.features.builder.feature_frame` plan of the same
    ``inputs`` (already :func:`~rmreco.features.observations.observed_inputs`) without a pandas
    round trip."""
    return _status(inputs, cure_months).lazy()


def _labels(
    snapshots: pl.LazyFrame,
    events: pl.DataFrame | None,
    horizon_months: int,
    label_events: Sequence[str],
) -> pl.LazyFrame:
    """``snapshots`` (with ``_cid``, ``_mi``, sorted by client, then month, as the builder gives
    them) plus the 0/1 label column, in the same order."""
    if events is None:
        return snapshots.with_columns(pl.lit(0, dtype=pl.Int8).alias(LABEL))
    targets = (
        events.filter(pl.col("_type").is_in([str(e) for e in label_events]))
        .select(_CID, "_ev")
        .unique()
        .sort("_ev")
        .lazy()
    )
    # the first qualifying event after t, then whether it falls within the horizon
    return (
        snapshots.with_columns((pl.col(_MI) + 1).alias("_from"))
        .join_asof(
            targets,
            left_on="_from",
            right_on="_ev",
            by=_CID,
            strategy="forward",
            # an asof join by client needs each client's rows sorted on the key, as the
            # snapshots are (sorting the wide frame by month and back cost two full sorts)
            check_sortedness=False,
        )
        .with_columns(
            ((pl.col("_ev") - pl.col(_MI)) <= horizon_months)
            .fill_null(False)
            .cast(pl.Int8)
            .alias(LABEL)
        )
        .drop("_from", "_ev")
    )


def performing_rows(
    frame: pl.LazyFrame,
    inputs: FeatureInputs,
    *,
    cure_months: int = DEFAULT_CURE_MONTHS,
    events: pl.DataFrame | None = _UNSET,
) -> pl.LazyFrame:
    """The rows of a :func:`feature_frame` plan that are scored: an account row exists at t and
    the client is not in default at t (the same rule for every model). ``events``: the
    inputs' :func:`_events`, when the caller has them (they are read once per block)."""
    # the few rows in default (clients numbered as the builder numbers them), left out of the
    # wide frame by an anti join: a left join of the status copied every column, and the
    # filter after it copied them again
    status = _status(inputs, cure_months, events)
    defaulted = status.lazy().filter(pl.col("in_default")).select(_CID, _MI)
    return frame.filter(pl.col("observed")).join(
        defaulted, on=[_CID, _MI], how="anti", maintain_order="left"
    )


def outcome_end(inputs: FeatureInputs) -> int:
    """The last month (as a month index) in which the data can observe an outcome: the later of
    the last account month and the last credit-event month (events dated after the last account
    month are the outcome window of an observation-window extract)."""
    months = inputs.account_months
    if SPINE in months.columns:  # observed by statements or attributes: no outcome seen then
        months = months[~months[SPINE].fillna(False).astype(bool)]
    end = int(month_index(months[MONTH]).max()) if len(months) else -1
    events = inputs.credit_events
    if events is not None and not events.empty and events[MONTH].notna().any():
        end = max(end, int(month_index(events[MONTH].dropna()).max()))
    if inputs.outcome_end is not None:  # the extract date: outcomes are known up to it
        end = max(end, int(month_index([inputs.outcome_end])[0]))
    return end


def adoption_outcome_end(inputs: FeatureInputs) -> int:
    """The last month (as a month index) in which the data can observe an adoption (a holding
    that starts): the later of the last account month, the last holding start month and
    ``inputs.outcome_end`` (the extract month the bank states outcomes are known up to) when
    set. Holdings starting after the last account month are the outcome window of an
    observation-window extract (statements, then the adoptions of the months after them).

    End months do not count: an ``end_month`` after the history may be a planned maturity,
    which observes nothing about the months before it."""
    months = inputs.account_months
    if SPINE in months.columns:  # observed by statements or attributes: no outcome seen then
        months = months[~months[SPINE].fillna(False).astype(bool)]
    end = int(month_index(months[MONTH]).max()) if len(months) else -1
    holdings = inputs.holdings
    if holdings is not None and not holdings.empty and holdings["start_month"].notna().any():
        end = max(end, int(month_index(holdings["start_month"].dropna()).max()))
    if inputs.outcome_end is not None:  # the extract date: outcomes are known up to it
        end = max(end, int(month_index([inputs.outcome_end])[0]))
    return end


def build_credit_panel(
    inputs: FeatureInputs,
    *,
    horizon_months: int = 12,
    label_events: Sequence[str] = (EventType.DEFAULT,),
    months: Sequence[date] | None = None,
    cure_months: int = DEFAULT_CURE_MONTHS,
    financials_lag_months: int = DEFAULT_FINANCIALS_LAG_MONTHS,
) -> pd.DataFrame:
    """Features and labels of performing clients at every snapshot month (or the given ones).

    Rows: clients with an account row at t that are not in default at t. Columns: the features,
    ``default_12m`` (the label, 0/1) and ``label_complete`` (the data's outcome coverage,
    :func:`outcome_end`, covers t+1 .. t+horizon, so the label is final).
    """
    inputs = observed_inputs(inputs, financials_lag_months)
    covered = outcome_end(inputs)  # the whole book's: a block of clients sees its own only

    def labelled(block: FeatureInputs) -> pl.LazyFrame:
        frame = observed_feature_frame(
            block, months=months, financials_lag_months=financials_lag_months
        )
        events = _events(block, client_numbers(block))
        performing = performing_rows(frame, block, cure_months=cure_months, events=events)
        return _labels(performing, events, horizon_months, label_events).with_columns(
            ((pl.col(_MI) + horizon_months) <= covered).alias("label_complete")
        )

    return pandas_by_client_blocks(inputs, labelled, extra=(LABEL, "label_complete"))
