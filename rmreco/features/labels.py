"""Default status and the credit-risk training panel: point-in-time features and 12-month labels.

- In default at month t: a default, write-off or insolvency event in the last ``cure_months``
  months (t included), or any such event before t and days past due of 90 or more within the
  last ``cure_months`` months, or a write-off or insolvency at any time before. Clients in default
  at t are not scored and not used as training rows at t.
- Label at t: a ``default`` event (the event types are configurable) in months t+1 .. t+horizon.
  A snapshot is labelled only when the data reaches t+horizon (``label_complete``). A client whose
  history ends before t+horizon without a default counts as not defaulted: the bank saw no default.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd
import polars as pl

from rmreco.domain.contract import EventType
from rmreco.features.builder import (
    DEFAULT_FINANCIALS_LAG_MONTHS,
    DEFAULT_TYPE_EVENTS,
    ID,
    MONTH,
    FeatureInputs,
    build_features,
    month_from_index,
    month_index,
)

_MI = "_mi"

DEFAULT_CURE_MONTHS = 3
LABEL = "default_12m"


def default_status(
    inputs: FeatureInputs, *, cure_months: int = DEFAULT_CURE_MONTHS
) -> pd.DataFrame:
    """Whether each client is in default at each month of its history.

    Returns ``client_id``, ``month`` (datetime64) and ``in_default`` (bool), one row per
    account-month row of the input.
    """
    am = inputs.account_months
    dpd = (
        pd.to_numeric(am["dpd_max"], errors="coerce").fillna(0).to_numpy()
        if "dpd_max" in am
        else np.zeros(len(am))
    )
    rows = pl.from_pandas(
        pd.DataFrame(
            {
                ID: am[ID].astype(str).to_numpy(),
                _MI: month_index(am[MONTH]),
                "_dpd90": (dpd >= 90).astype(np.int8),
            }
        )
    ).sort([ID, _MI])
    window = f"{cure_months}i"
    rows = rows.with_columns(
        pl.col("_dpd90").rolling_max_by(_MI, window_size=window).over(ID).alias("_dpd_recent")
    )

    events = inputs.credit_events
    if events is None or events.empty:
        status = rows.with_columns(pl.lit(False).alias("in_default"))
    else:
        kinds = events["event_type"].astype(str)
        ev = pl.from_pandas(
            pd.DataFrame(
                {
                    ID: events[ID].astype(str).to_numpy(),
                    _MI: month_index(events[MONTH]),
                    "_default": kinds.isin([str(e) for e in DEFAULT_TYPE_EVENTS]).to_numpy(),
                    "_terminal": kinds.isin([EventType.WRITE_OFF, EventType.INSOLVENCY]).to_numpy(),
                }
            )
        )
        last_default = (
            ev.filter(pl.col("_default"))
            .select(ID, pl.col(_MI).alias("_last_ev"))
            .unique()
            .sort("_last_ev")
        )
        first_terminal = (
            ev.filter(pl.col("_terminal")).group_by(ID).agg(pl.col(_MI).min().alias("_terminal_mi"))
        )
        status = (
            rows.sort(_MI)
            .join_asof(
                last_default,
                left_on=_MI,
                right_on="_last_ev",
                by=ID,
                strategy="backward",
                check_sortedness=False,  # both sides are sorted on the key
            )
            .join(first_terminal, on=ID, how="left")
            .with_columns(
                (
                    ((pl.col(_MI) - pl.col("_last_ev")) < cure_months).fill_null(False)
                    | (pl.col("_last_ev").is_not_null() & (pl.col("_dpd_recent") > 0))
                    | (pl.col(_MI) >= pl.col("_terminal_mi")).fill_null(False)
                ).alias("in_default")
            )
        )
    out = status.select(ID, month_from_index(pl.col(_MI)).alias(MONTH), "in_default").to_pandas()
    out[MONTH] = pd.to_datetime(out[MONTH])
    return out


def default_labels(
    inputs: FeatureInputs,
    snapshots: pd.DataFrame,
    *,
    horizon_months: int = 12,
    label_events: Sequence[str] = (EventType.DEFAULT,),
) -> pd.Series:
    """1 where the client has a ``label_events`` event in months t+1 .. t+horizon, else 0.

    ``snapshots`` holds ``client_id`` and ``month``; the result is aligned with its index.
    """
    events = inputs.credit_events
    result = pd.Series(0, index=snapshots.index, dtype=np.int8)
    if events is None or events.empty:
        return result
    mask = events["event_type"].astype(str).isin([str(e) for e in label_events])
    ev = pd.DataFrame(
        {
            ID: events.loc[mask, ID].astype(str).to_numpy(),
            "_ev": month_index(events.loc[mask, MONTH]),
        }
    )
    snap = pd.DataFrame(
        {
            ID: snapshots[ID].astype(str).to_numpy(),
            "_mi": month_index(snapshots[MONTH]),
            "_row": np.arange(len(snapshots)),
        }
    )
    # the first qualifying event after t: merge_asof forward on t + 1
    snap["_from"] = snap["_mi"] + 1
    nxt = pd.merge_asof(
        snap.sort_values("_from"),
        ev.sort_values("_ev"),
        left_on="_from",
        right_on="_ev",
        by=ID,
        direction="forward",
    )
    hit = (nxt["_ev"] - nxt["_mi"]).le(horizon_months).fillna(False).to_numpy()
    labels = np.zeros(len(snapshots), dtype=np.int8)
    labels[nxt["_row"].to_numpy()] = hit.astype(np.int8)
    return pd.Series(labels, index=snapshots.index, dtype=np.int8)


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
    ``segment``, ``default_12m`` (the label, 0/1) and ``label_complete`` (the data covers
    t+1 .. t+horizon, so the label is final).
    """
    features = build_features(inputs, months=months, financials_lag_months=financials_lag_months)
    status = default_status(inputs, cure_months=cure_months)
    panel = features[features["observed"]].merge(status, on=[ID, MONTH], how="left")
    panel = panel[~panel["in_default"].fillna(False).astype(bool)].drop(columns=["in_default"])
    panel = panel.reset_index(drop=True)
    panel[LABEL] = default_labels(
        inputs, panel, horizon_months=horizon_months, label_events=label_events
    )
    data_end = int(month_index(inputs.account_months[MONTH]).max())
    panel["label_complete"] = (month_index(panel[MONTH]) + horizon_months) <= data_end
    return panel
