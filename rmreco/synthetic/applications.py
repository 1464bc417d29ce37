"""This module owns the client attributes of an application or scorecard-development sample
(the ``attributes_only`` shape of ``rmreco.synthetic.shapes``): one row per client at one
observation month, with the bank's own columns (``ATTRIBUTES``) drawn from the bank's truth and
books at that month, plus noise.

- from the truth (the client's exact pd_12m at the observation month), with noise: a bureau
  score and its band, the collateral asked for (riskier clients are asked for guarantees);
- from the books up to the observation month: the last twelve months' balances, inflows and
  their volatility, worst days past due, months overdrawn, returned payments, products held;
- from the firmographics, with noise: years in business, employees as reported, legal form,
  the amount requested;
- pure noise: the owner's age, the application channel.

Personal clients (when the bank has them) get the same columns; the firm-only ones are empty
and their legal form is ``natural_person``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rmreco.domain.contract import ExtraKind, Segment
from rmreco.synthetic.arrays import Array, logit

#: The bank's own columns of ``clients`` in this sample, in file order, and their kind.
ATTRIBUTES: dict[str, ExtraKind] = {
    "legal_form": "categorical",
    "bureau_score": "numeric",
    "bureau_band": "categorical",
    "years_in_business": "numeric",
    "employees_reported": "numeric",
    "avg_balance_12m": "numeric",
    "avg_inflow_12m": "numeric",
    "inflow_volatility_12m": "numeric",
    "max_dpd_12m": "numeric",
    "overdraft_months_12m": "numeric",
    "returned_payments_12m": "numeric",
    "products_held": "numeric",
    "collateral": "categorical",
    "requested_amount": "numeric",
    "owner_age": "numeric",
    "application_channel": "categorical",
}
#: Share of clients the bureau has no record of (score empty, band ``no_hit``).
NO_HIT_SHARE = 0.04
#: Months of account history the behaviour attributes summarise, up to the observation month.
BEHAVIOUR_MONTHS = 12
_BANDS = ("A", "B", "C", "D", "E")
_BAND_EDGES = (-6.0, -5.0, -4.0, -3.0)  # noisy log-odds of default separating the bands


def application_attributes(
    rng: np.random.Generator,
    clients: pd.DataFrame,
    accounts: pd.DataFrame,
    holdings: pd.DataFrame,
    pd_12m: Array,
    observation: pd.Timestamp,
) -> pd.DataFrame:
    """The ``ATTRIBUTES`` columns of ``clients`` (one row each, in their order).

    Args:
        rng: the stream the noise is drawn from.
        clients: the sample's clients: ``client_id``, ``segment``, ``founded``, ``employees``,
            ``turnover``.
        accounts: their ``account_months`` rows (any months; those of the last
            ``BEHAVIOUR_MONTHS`` up to ``observation`` are used).
        holdings: their ``holdings`` spells (those held at ``observation`` count).
        pd_12m: each client's true 12-month default probability at ``observation``.
        observation: the observation month (its first day).
    """
    n = len(clients)
    ids = clients["client_id"].to_numpy()
    segment = clients["segment"].to_numpy()
    is_person = segment == Segment.PERSONAL.value
    log_odds = logit(np.clip(np.asarray(pd_12m, dtype=np.float64), 1e-6, 1.0 - 1e-6))
    out = pd.DataFrame(index=clients.index)

    out["legal_form"] = _legal_form(rng, segment, clients["turnover"].to_numpy(np.float64))
    score = np.round(650.0 - 28.85 * (log_odds + 4.0) + rng.normal(0.0, 30.0, n))
    no_hit = rng.random(n) < NO_HIT_SHARE
    out["bureau_score"] = np.where(no_hit, np.nan, score)
    band_odds = log_odds + rng.normal(0.0, 0.7, n)
    bands = np.array(_BANDS)[np.searchsorted(np.array(_BAND_EDGES), band_odds)]
    out["bureau_band"] = np.where(no_hit, "no_hit", bands)

    founded = pd.to_datetime(clients["founded"])
    out["years_in_business"] = np.round(
        ((observation - founded).dt.days / 365.25).to_numpy(np.float64), 1
    )
    employees = clients["employees"].to_numpy(np.float64, na_value=np.nan)
    out["employees_reported"] = np.round(employees * np.exp(rng.normal(0.0, 0.25, n)))

    behaviour = _behaviour(accounts, observation).reindex(ids)
    for column in behaviour.columns:
        out[column] = behaviour[column].to_numpy()
    start = pd.to_datetime(holdings["start_month"])
    end = pd.to_datetime(holdings["end_month"])
    held = holdings[(start <= observation) & (end.isna() | (end >= observation))]
    out["products_held"] = held.groupby("client_id").size().reindex(ids, fill_value=0).to_numpy()

    guarantee = 0.15 * np.exp(0.4 * (log_odds + 4.5))
    weights = np.column_stack([np.full(n, 0.45), np.full(n, 0.25), np.full(n, 0.15), guarantee])
    out["collateral"] = _choose(rng, ("none", "real_estate", "receivables", "guarantee"), weights)
    base = np.where(
        is_person,
        12.0 * out["avg_inflow_12m"].to_numpy(np.float64),
        clients["turnover"].to_numpy(np.float64),
    )
    out["requested_amount"] = np.round(base * 0.15 * np.exp(rng.normal(0.0, 0.6, n)), -3)
    out["owner_age"] = np.clip(np.round(rng.normal(48.0, 10.0, n)), 21, 80)
    out["application_channel"] = _choose(
        rng, ("branch", "online", "broker"), np.tile([0.5, 0.35, 0.15], (n, 1))
    )
    firm_only = ("years_in_business", "employees_reported")
    out.loc[is_person, list(firm_only)] = np.nan
    assert list(out.columns) == list(ATTRIBUTES)
    return out


def _legal_form(rng: np.random.Generator, segment: Array, turnover: Array) -> Array:
    """Legal form by segment and size: the larger the firm, the likelier a company."""
    forms = ("sole_trader", "partnership", "ltd", "plc")
    small = turnover < 2e5
    medium = (turnover >= 2e5) & (turnover < 2e6)
    weights = np.where(
        small[:, None],
        [0.6, 0.2, 0.2, 0.0],
        np.where(medium[:, None], [0.2, 0.2, 0.6, 0.0], [0.0, 0.05, 0.8, 0.15]),
    )
    corporate = segment == Segment.CORPORATE.value
    weights[corporate] = [0.0, 0.0, 0.4, 0.6]
    chosen = _choose(rng, forms, weights)
    return np.where(segment == Segment.PERSONAL.value, "natural_person", chosen)


def _choose(rng: np.random.Generator, levels: tuple[str, ...], weights: Array) -> Array:
    """One level per row, with the row's weights (not necessarily summing to 1)."""
    cumulative = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cumulative[:, -1]
    index = (u[:, None] >= cumulative).sum(axis=1)
    return np.array(levels)[np.minimum(index, len(levels) - 1)]


def _behaviour(accounts: pd.DataFrame, observation: pd.Timestamp) -> pd.DataFrame:
    """Per client: the last ``BEHAVIOUR_MONTHS`` account months' summaries up to
    ``observation``."""
    month = pd.to_datetime(accounts["month"])
    first = observation - pd.DateOffset(months=BEHAVIOUR_MONTHS - 1)
    recent = accounts[(month >= first) & (month <= observation)]
    grouped = recent.groupby("client_id")
    overdrawn = (recent["days_in_overdraft"] > 0).groupby(recent["client_id"]).sum()
    inflow_mean = grouped["credit_turnover"].mean()
    inflow_sd = grouped["credit_turnover"].std(ddof=0)
    volatility = (inflow_sd / inflow_mean.where(inflow_mean > 0)).where(grouped.size() >= 3)
    return pd.DataFrame(
        {
            "avg_balance_12m": grouped["balance_avg"].mean().round(2),
            "avg_inflow_12m": inflow_mean.round(2),
            "inflow_volatility_12m": volatility.round(4),
            "max_dpd_12m": grouped["dpd_max"].max(),
            "overdraft_months_12m": overdrawn,
            "returned_payments_12m": grouped["returned_payments"].sum(min_count=1),
        }
    )
