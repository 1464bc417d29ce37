"""This module owns when a client is observed: the months the feature and label code lays its
monthly grid on. A client is observed at its account months; a client without any account row
(a statements-only book, an application sample) at each month its annual statements become
known and at its ``as_of_month``. These added months are marked, so that they count neither as
account history nor as months in which an outcome was seen.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from rmreco.features.inputs import ID, MONTH, FeatureInputs

#: ``clients`` column: the month a client's attributes describe (contract, optional)
AS_OF = "as_of_month"
#: Marks the rows :func:`observation_months` adds (no account row behind them).
SPINE = "_spine"


def observation_months(inputs: FeatureInputs, financials_lag_months: int) -> pd.DataFrame:
    """The months each client is observed: its account months; a client with no account row is
    observed at each month its annual statements become known (December of the year plus
    ``financials_lag_months``) and at its ``as_of_month``.

    Returns ``account_months`` itself when every client with statements or an ``as_of_month``
    has account rows; otherwise ``account_months`` with a row per added observation (client and
    month only: every account column null there).
    """
    account_months = inputs.account_months
    with_history = pd.Index(account_months[ID].astype(str).unique())
    added: list[pd.DataFrame] = []
    financials = inputs.financials
    if financials is not None and len(financials):
        ids = financials[ID].astype(str)
        known = _without(ids, with_history)
        if known.any():
            years = pd.to_numeric(financials["year"]).to_numpy(dtype=np.int64)[known]
            added.append(
                pd.DataFrame(
                    {ID: ids.to_numpy()[known], "_mi": years * 12 + 11 + financials_lag_months}
                )
            )
    clients = inputs.clients
    if AS_OF in clients.columns:
        stamps = pd.to_datetime(clients[AS_OF], errors="coerce")
        ids = clients[ID].astype(str)
        known = stamps.notna().to_numpy() & _without(ids, with_history)
        if known.any():
            chosen = pd.DatetimeIndex(stamps[known])
            added.append(
                pd.DataFrame(
                    {
                        ID: ids.to_numpy()[known],
                        "_mi": np.asarray(chosen.year * 12 + chosen.month - 1, dtype=np.int64),
                    }
                )
            )
    if not added:
        return account_months
    spine = pd.concat(added, ignore_index=True).drop_duplicates().sort_values([ID, "_mi"])
    spine[MONTH] = pd.to_datetime(
        pd.DataFrame({"year": spine["_mi"] // 12, "month": spine["_mi"] % 12 + 1, "day": 1})
    )
    spine = spine.drop(columns="_mi")
    spine[SPINE] = True
    if account_months.empty:
        return spine.reset_index(drop=True)
    return pd.concat([account_months, spine], ignore_index=True)


def _without(ids: pd.Series, with_history: pd.Index) -> np.ndarray:
    """True where an id is not among ``with_history`` (unique ids): a hash lookup
    (``Series.isin`` on pyarrow-backed text compared row by row in Python)."""
    return np.asarray(with_history.get_indexer(pd.Index(ids)) < 0)


def observed_inputs(inputs: FeatureInputs, financials_lag_months: int) -> FeatureInputs:
    """``inputs`` whose ``account_months`` hold every observation month
    (:func:`observation_months`): what the feature and label code lays its grid on. Applying it
    twice changes nothing."""
    months = observation_months(inputs, financials_lag_months)
    if months is inputs.account_months:
        return inputs
    return replace(inputs, account_months=months)
