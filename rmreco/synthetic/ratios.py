"""This module owns the 40 extra ratio columns (``ratio_01`` .. ``ratio_40``) the synthetic
firms' statements carry when asked (``generate_bank(statement_ratios=True)``), as a bank's wide
statement extract does (public ones carry 60 or more ratios beside, or instead of, the raw
lines).

The columns are of three kinds (:class:`RatioKind`), interleaved as a real extract lists them:

- ``statement``: the usual ratios of credit analysis (margins, returns, leverage, liquidity,
  coverage, turnover days, growth, a Z-score). Most use statement lines the contract's seven
  fields do not carry (interest, depreciation, inventory, receivables, cash, payables, retained
  earnings); those lines are drawn here from the year's values and the firm's health of the
  year, with noise, so the ratio is what an analyst would compute from the full statement.
- ``health``: noisy transforms of the firm's latent health of the year (the mean of its monthly
  health over the financial year, as the statement's own values use), as bureau, rating-agency
  and qualitative scores in such extracts are: strong, weak, monotone or not.
- ``noise``: pure noise, independent of everything else (an extract's columns that say
  nothing about default).

Ratios whose denominator is zero or negative are missing, as in real extracts, and each column
also misses 1 % of its values at random. Values are rounded to four decimals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from rmreco.synthetic.arrays import Array, sigmoid

#: Share of each ratio's values left empty at random.
MISSING_SHARE = 0.01


class RatioKind(StrEnum):
    STATEMENT = "statement"
    HEALTH = "health"
    NOISE = "noise"


@dataclass(frozen=True)
class StatementYear:
    """One financial year's statements of ``k`` firms: the seven contract fields as written,
    the previous year's revenue (NaN without a statement of that year) and the firms' latent
    health of the year, with the lines the ratios need that the contract does not carry."""

    revenue: Array
    ebitda: Array
    assets: Array
    debt: Array
    equity: Array
    current_assets: Array
    current_liabilities: Array
    previous_revenue: Array
    health: Array
    interest: Array
    depreciation: Array
    net_income: Array
    inventory: Array
    receivables: Array
    cash: Array
    payables: Array
    retained_earnings: Array


def statement_year(
    rng: np.random.Generator, values: dict[str, Array], previous_revenue: Array, health: Array
) -> StatementYear:
    """The year's statements of ``values`` (contract field -> one value per firm) with the
    lines beyond the contract drawn from them and from ``health``: riskier firms pay higher
    rates, hold less cash, collect later and stretch their suppliers."""
    k = health.size
    revenue, ebitda, assets = values["revenue"], values["ebitda"], values["total_assets"]
    debt, equity = values["total_debt"], values["equity"]
    current_assets, current_liabilities = values["current_assets"], values["current_liabilities"]
    rate = 0.03 + 0.05 * sigmoid(-1.0 - health + rng.normal(0.0, 0.5, k))
    interest = debt * rate
    depreciation = assets * 0.05 * np.exp(rng.normal(0.0, 0.3, k))
    before_tax = ebitda - depreciation - interest
    net_income = before_tax - 0.25 * np.maximum(before_tax, 0.0)
    # current assets split into inventory, receivables and cash (shares by a softmax)
    shares = np.exp(
        np.column_stack(
            [
                rng.normal(0.0, 0.4, k),
                rng.normal(0.2, 0.4, k) - 0.2 * health,
                rng.normal(-0.3, 0.4, k) + 0.3 * health,
            ]
        )
    )
    shares /= shares.sum(axis=1, keepdims=True)
    payables = current_liabilities * sigmoid(0.3 - 0.3 * health + rng.normal(0.0, 0.4, k))
    retained = equity * sigmoid(0.5 + 0.5 * health + rng.normal(0.0, 0.8, k))
    return StatementYear(
        revenue=revenue,
        ebitda=ebitda,
        assets=assets,
        debt=debt,
        equity=equity,
        current_assets=current_assets,
        current_liabilities=current_liabilities,
        previous_revenue=previous_revenue,
        health=health,
        interest=interest,
        depreciation=depreciation,
        net_income=net_income,
        inventory=current_assets * shares[:, 0],
        receivables=current_assets * shares[:, 1],
        cash=current_assets * shares[:, 2],
        payables=payables,
        retained_earnings=retained,
    )


def _ratio(numerator: Array, denominator: Array) -> Array:
    """numerator / denominator, missing where the denominator is not positive."""
    positive = denominator > 0
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=positive)
    return out


_Formula = Callable[[StatementYear, np.random.Generator], Array]


@dataclass(frozen=True)
class Ratio:
    """One extra column: its name, kind, what it is, and how it is drawn."""

    name: str
    kind: RatioKind
    meaning: str
    formula: _Formula


def _noisy_health(sd: float) -> _Formula:
    return lambda s, rng: s.health + rng.normal(0.0, sd, s.health.size)


def _cost_of_sales(s: StatementYear) -> Array:
    return s.revenue - s.ebitda


def _altman_z(s: StatementYear, rng: np.random.Generator) -> Array:
    """Altman's Z for private firms, with book equity over liabilities."""
    working_capital = s.current_assets - s.current_liabilities
    ebit = s.ebitda - s.depreciation
    liabilities = s.assets - s.equity
    return (
        0.717 * _ratio(working_capital, s.assets)
        + 0.847 * _ratio(s.retained_earnings, s.assets)
        + 3.107 * _ratio(ebit, s.assets)
        + 0.420 * _ratio(s.equity, liabilities)
        + 0.998 * _ratio(s.revenue, s.assets)
    )


S, H, N = RatioKind.STATEMENT, RatioKind.HEALTH, RatioKind.NOISE

#: The columns in the order the extract lists them (draws happen in this order).
RATIOS: tuple[Ratio, ...] = (
    Ratio(
        "ratio_01", S, "EBITDA margin: ebitda / revenue", lambda s, _: _ratio(s.ebitda, s.revenue)
    ),
    Ratio("ratio_02", S, "debt to assets", lambda s, _: _ratio(s.debt, s.assets)),
    Ratio("ratio_03", N, "noise: standard normal", lambda s, r: r.standard_normal(s.health.size)),
    Ratio("ratio_04", H, "behaviour score: health + N(0, 0.6)", _noisy_health(0.6)),
    Ratio(
        "ratio_05", S, "current ratio", lambda s, _: _ratio(s.current_assets, s.current_liabilities)
    ),
    Ratio(
        "ratio_06",
        S,
        "net margin: net income / revenue",
        lambda s, _: _ratio(s.net_income, s.revenue),
    ),
    Ratio(
        "ratio_07",
        N,
        "noise: lognormal(0, 1)",
        lambda s, r: np.exp(r.normal(0.0, 1.0, s.health.size)),
    ),
    Ratio(
        "ratio_08",
        S,
        "return on assets: net income / total assets",
        lambda s, _: _ratio(s.net_income, s.assets),
    ),
    Ratio(
        "ratio_09",
        H,
        "probability-like score: sigmoid(0.8 health + N(0, 0.8))",
        lambda s, r: sigmoid(0.8 * s.health + r.normal(0.0, 0.8, s.health.size)),
    ),
    Ratio("ratio_10", S, "debt to equity", lambda s, _: _ratio(s.debt, s.equity)),
    Ratio(
        "ratio_11",
        S,
        "interest coverage: EBIT / interest",
        lambda s, _: _ratio(s.ebitda - s.depreciation, s.interest),
    ),
    Ratio("ratio_12", N, "noise: uniform(0, 1)", lambda s, r: r.random(s.health.size)),
    Ratio(
        "ratio_13",
        S,
        "quick ratio: (current assets - inventory) / current liabilities",
        lambda s, _: _ratio(s.current_assets - s.inventory, s.current_liabilities),
    ),
    Ratio(
        "ratio_14",
        H,
        "management grade 1-10: round(5 - 1.5 health + N(0, 1.2)), 1 best",
        lambda s, r: np.clip(
            np.round(5.0 - 1.5 * s.health + r.normal(0, 1.2, s.health.size)), 1, 10
        ),
    ),
    Ratio("ratio_15", S, "debt to EBITDA", lambda s, _: _ratio(s.debt, s.ebitda)),
    Ratio(
        "ratio_16",
        N,
        "noise: Student t, 3 degrees of freedom",
        lambda s, r: r.standard_t(3.0, s.health.size),
    ),
    Ratio(
        "ratio_17",
        S,
        "cash ratio: cash / current liabilities",
        lambda s, _: _ratio(s.cash, s.current_liabilities),
    ),
    Ratio(
        "ratio_18",
        S,
        "working capital to assets",
        lambda s, _: _ratio(s.current_assets - s.current_liabilities, s.assets),
    ),
    Ratio(
        "ratio_19",
        H,
        "payment delay index: exp(-0.5 health + N(0, 0.7))",
        lambda s, r: np.exp(-0.5 * s.health + r.normal(0.0, 0.7, s.health.size)),
    ),
    Ratio("ratio_20", N, "noise: exponential(1)", lambda s, r: r.exponential(1.0, s.health.size)),
    Ratio(
        "ratio_21",
        S,
        "asset turnover: revenue / total assets",
        lambda s, _: _ratio(s.revenue, s.assets),
    ),
    Ratio(
        "ratio_22",
        S,
        "receivable days: receivables / revenue x 365",
        lambda s, _: 365.0 * _ratio(s.receivables, s.revenue),
    ),
    Ratio("ratio_23", H, "weak score: health + N(0, 2)", _noisy_health(2.0)),
    Ratio(
        "ratio_24",
        S,
        "payable days: payables / cost of sales x 365",
        lambda s, _: 365.0 * _ratio(s.payables, _cost_of_sales(s)),
    ),
    Ratio(
        "ratio_25",
        N,
        "noise: Poisson(3) count",
        lambda s, r: r.poisson(3.0, s.health.size).astype(np.float64),
    ),
    Ratio(
        "ratio_26",
        S,
        "inventory days: inventory / cost of sales x 365",
        lambda s, _: 365.0 * _ratio(s.inventory, _cost_of_sales(s)),
    ),
    Ratio(
        "ratio_27",
        H,
        "bounded score: tanh(health + N(0, 1))",
        lambda s, r: np.tanh(s.health + r.normal(0.0, 1.0, s.health.size)),
    ),
    Ratio(
        "ratio_28",
        S,
        "revenue growth: revenue / previous revenue - 1",
        lambda s, _: _ratio(s.revenue, s.previous_revenue) - 1.0,
    ),
    Ratio("ratio_29", N, "noise: N(100, 15)", lambda s, r: r.normal(100.0, 15.0, s.health.size)),
    Ratio(
        "ratio_30",
        S,
        "return on equity: net income / equity",
        lambda s, _: _ratio(s.net_income, s.equity),
    ),
    Ratio(
        "ratio_31",
        H,
        "inverted score: -health + N(0, 1.2)",
        lambda s, r: -s.health + r.normal(0.0, 1.2, s.health.size),
    ),
    Ratio("ratio_32", S, "Altman Z (private firms)", _altman_z),
    Ratio(
        "ratio_33",
        N,
        "noise: 0/1 flag, one in three",
        lambda s, r: (r.random(s.health.size) < 1.0 / 3.0).astype(np.float64),
    ),
    Ratio("ratio_34", S, "log of total assets", lambda s, _: np.log(np.maximum(s.assets, 1.0))),
    Ratio(
        "ratio_35",
        H,
        "size-mixed score: 0.5 health + 0.3 log assets + N(0, 0.8)",
        lambda s, r: (
            0.5 * s.health
            + 0.3 * np.log(np.maximum(s.assets, 1.0))
            + r.normal(0.0, 0.8, s.health.size)
        ),
    ),
    Ratio(
        "ratio_36",
        N,
        "noise: lognormal(2, 0.5)",
        lambda s, r: np.exp(r.normal(2.0, 0.5, s.health.size)),
    ),
    Ratio(
        "ratio_37",
        S,
        "equity ratio: equity / total assets",
        lambda s, _: _ratio(s.equity, s.assets),
    ),
    Ratio("ratio_38", H, "very weak score: health + N(0, 3)", _noisy_health(3.0)),
    Ratio(
        "ratio_39",
        N,
        "noise: cube of uniform(-1, 1)",
        lambda s, r: r.uniform(-1.0, 1.0, s.health.size) ** 3,
    ),
    Ratio(
        "ratio_40",
        H,
        "supplier late payments: Poisson(exp(0.5 - 0.8 health)) count",
        lambda s, r: r.poisson(np.exp(0.5 - 0.8 * s.health)).astype(np.float64),
    ),
)

RATIO_COLUMNS: tuple[str, ...] = tuple(r.name for r in RATIOS)
RATIO_KINDS: dict[str, RatioKind] = {r.name: r.kind for r in RATIOS}


def statement_ratios(rng: np.random.Generator, year: StatementYear) -> dict[str, Array]:
    """The extra ratio columns of ``year``'s statements, by name in :data:`RATIOS` order."""
    out: dict[str, Array] = {}
    k = year.health.size
    for ratio in RATIOS:
        values = np.asarray(ratio.formula(year, rng), dtype=np.float64)
        values = np.where(rng.random(k) < MISSING_SHARE, np.nan, values)
        out[ratio.name] = np.round(values, 4)
    return out
