"""This module owns the figures the workspace pages show, computed by the service's own code:
a portfolio's clients with their PD, grade, products and top suggestion (the cross-sell list's
scoring, cached per portfolio), a page of clients' PD trend, and one client's history (account
months and the PD of each month, by the served credit model with the feature settings it was
trained with, exactly as a snapshot is scored).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from rmreco.db import repository as repo
from rmreco.db import workspace
from rmreco.features.config import snapshot_frame
from rmreco.features.cross_sell import PRODUCT
from rmreco.features.observations import observed_inputs
from rmreco.features.snapshots import read_inputs
from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.master_scale import DEFAULT_GRADE
from rmreco.modeling.offers import CreditView
from rmreco.serving.errors import ApiError
from rmreco.serving.model_store import ServedModel
from rmreco.serving.routes.cross_sell import credit_views, scored_portfolio, shown_offers
from rmreco.serving.runtime import Runtime

#: Months back the portfolio's trend arrow compares the PD with.
TREND_MONTHS = 3
#: A PD this much higher (or lower), relatively, than TREND_MONTHS ago is a rise (or a fall).
TREND_RELATIVE = 0.10
#: Months of history the client view draws.
HISTORY_MONTHS = 36


@dataclass
class PortfolioRow:
    """One client of the portfolio list."""

    client_id: str
    name: str | None
    segment: str
    sector: str | None
    month: date | None
    pd: float | None
    grade: str | None
    decision: str | None
    held: list[str]
    top_product: str | None
    top_expected_value: float | None
    #: "rising", "falling" or "steady" against TREND_MONTHS ago; None until computed or
    #: without a PD then
    trend: str | None = None
    pd_before: float | None = None


@dataclass
class Portfolio:
    rows: list[PortfolioRow]
    #: why the top suggestions are missing (no cross-sell model loaded), if they are
    suggestions_missing: str | None = None
    grades: tuple[str, ...] = ()
    bounds: tuple[float, ...] = ()


def portfolio(session: Session, runtime: Runtime, rm_id: str) -> Portfolio:
    """Every client of ``rm_id`` with its PD, grade and decision (by the credit model of its
    segment, as its cross-sell list grades it), the products it holds and its top suggestion
    (the first offer of the RM's cross-sell list for it)."""
    clients = workspace.portfolio_clients(session, rm_id)
    scored = [c.view for c in clients if c.view.features is not None and not c.view.in_default]
    views: dict[str, CreditView] = credit_views(runtime, scored, {})
    held = repo.held_products(session, [c.view.client_id for c in clients])
    top: dict[str, tuple[str, float | None]] = {}
    missing = None
    try:
        offers = shown_offers(session, runtime, scored_portfolio(session, runtime, rm_id))
    except ApiError as exc:  # no cross-sell model loaded: the list has no suggestions
        offers, missing = pd.DataFrame(), exc.message
    if not offers.empty:
        first = offers.drop_duplicates("client_id", keep="first")
        for client_id, product, value in zip(
            first["client_id"], first[PRODUCT], first["expected_value"], strict=True
        ):
            number = float(value)
            top[str(client_id)] = (str(product), None if math.isnan(number) else number)
    rows = []
    for client in clients:
        view = client.view
        credit = views.get(view.client_id)
        in_default = view.in_default and view.features is not None
        rows.append(
            PortfolioRow(
                client_id=view.client_id,
                name=client.name,
                segment=view.segment,
                sector=client.sector,
                month=view.month,
                pd=1.0 if in_default else (credit.pd if credit else None),
                grade=DEFAULT_GRADE if in_default else (credit.grade if credit else None),
                decision="decline" if in_default else (credit.decision if credit else None),
                held=sorted(held.get(view.client_id, set())),
                top_product=top.get(view.client_id, (None, None))[0],
                top_expected_value=top.get(view.client_id, (None, None))[1],
            )
        )
    grades, bounds = scale_of(runtime)
    return Portfolio(rows=rows, suggestions_missing=missing, grades=grades, bounds=bounds)


def credit_of(runtime: Runtime, client: repo.ClientView) -> CreditView | None:
    """The client's PD, grade and policy decision now, as its portfolio list shows them; None
    without a snapshot or a credit model for its segment."""
    if client.features is None:
        return None
    served = runtime.store.credit_for(client.segment)
    if client.in_default and served is not None and isinstance(served.model, CreditRiskModel):
        return CreditView(
            pd=1.0,
            pd_horizon_months=served.model.horizon_months,
            grade=DEFAULT_GRADE,
            decision="decline",
        )
    return credit_views(runtime, [client], {}).get(client.client_id)


def scale_of(runtime: Runtime) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The master scale of the served credit models (the first one's): grades and bounds."""
    for served in runtime.store.credit_models():
        if isinstance(served.model, CreditRiskModel):
            return served.model.scale.grades, served.model.scale.upper_bounds
    return (), ()


def add_trends(session: Session, runtime: Runtime, rows: list[PortfolioRow]) -> None:
    """Fill the PD ``TREND_MONTHS`` months before each row's snapshot, and the trend, for the
    rows shown (the features of that month are built from the stored history, with the
    settings the client's credit model was trained with)."""
    wanted = [r for r in rows if r.pd is not None and r.month is not None and r.grade != "D"]
    by_model: dict[str, tuple[ServedModel, list[PortfolioRow]]] = {}
    for row in wanted:
        served = runtime.store.credit_for(row.segment)
        if served is not None and isinstance(served.model, CreditRiskModel):
            by_model.setdefault(served.name, (served, []))[1].append(row)
    for served, group in by_model.values():
        model = served.model
        assert isinstance(model, CreditRiskModel)
        before = {r.client_id: _months_back(r.month, TREND_MONTHS) for r in group if r.month}
        frame = _feature_months(session, model, list(before), sorted(set(before.values())))
        if frame.empty:
            continue
        frame = frame[
            [before.get(c) == m for c, m in zip(frame["client_id"], frame["month"], strict=False)]
        ]
        frame = frame[~frame["in_default"].fillna(False).astype(bool)]
        if frame.empty:
            continue
        pds = model.predict(frame, with_reasons=False).pd
        then = dict(zip(frame["client_id"], pds, strict=True))
        for row in group:
            if row.client_id in then and row.pd is not None:
                row.pd_before = float(then[row.client_id])
                row.trend = trend(row.pd_before, row.pd)


def trend(before: float, now: float) -> str:
    """ "rising", "falling" or "steady": ``now`` against ``before`` by TREND_RELATIVE."""
    if now > before * (1 + TREND_RELATIVE):
        return "rising"
    if now < before * (1 - TREND_RELATIVE):
        return "falling"
    return "steady"


@dataclass
class ClientHistory:
    """One client's last HISTORY_MONTHS months: account figures and the PD of each month."""

    months: list[date]
    accounts: pd.DataFrame
    pd: list[float]
    grade: list[str | None]
    horizon_months: int | None
    model: str | None = None
    notes: list[str] = field(default_factory=list)


def client_history(session: Session, runtime: Runtime, client: repo.ClientView) -> ClientHistory:
    """The client's account months and, where its segment has a credit model, the PD of each
    month of history (a month in default is grade D with PD 1, as the service answers)."""
    end = client.month
    since = _months_back(end, HISTORY_MONTHS - 1) if end else None
    accounts = workspace.account_history(session, client.client_id, since)
    months = [_month(m) for m in accounts["month"]]
    pds: list[float] = [math.nan] * len(months)
    grades: list[str | None] = [None] * len(months)
    served = runtime.store.credit_for(client.segment)
    notes: list[str] = []
    if served is None or not isinstance(served.model, CreditRiskModel):
        notes.append(f"no credit model serves the {client.segment} segment: no PD history")
        return ClientHistory(months, accounts, pds, grades, None, notes=notes)
    model = served.model
    if months:
        frame = _feature_months(session, model, [client.client_id], months)
        if not frame.empty:
            frame = frame.sort_values("month")
            in_default = frame["in_default"].fillna(False).astype(bool).to_numpy()
            scored = model.predict(frame, with_reasons=False)
            by_month = {}
            for m, p, g, d in zip(frame["month"], scored.pd, scored.grade, in_default, strict=True):
                by_month[_month(m)] = (1.0, DEFAULT_GRADE) if d else (float(p), str(g))
            for i, m in enumerate(months):
                if m in by_month:
                    pds[i], grades[i] = by_month[m]
    return ClientHistory(
        months, accounts, pds, grades, model.horizon_months, model=served.name, notes=notes
    )


def _feature_months(
    session: Session, model: CreditRiskModel, client_ids: list[str], months: list[date]
) -> pd.DataFrame:
    """The clients' features at ``months``, built from the stored history with the model's own
    snapshot settings (those it was trained with, as the stored snapshots are)."""
    params = model.config.snapshot
    inputs = observed_inputs(read_inputs(session, client_ids), params.financials_lag_months)
    if inputs.account_months.empty:
        return pd.DataFrame()
    frame = snapshot_frame(inputs, params, months=months)
    frame["month"] = [_month(m) for m in frame["month"]]
    return frame


def _month(value: Any) -> date:
    """The first day of the month of ``value`` (a date, datetime or timestamp)."""
    stamp = pd.Timestamp(value)
    return date(stamp.year, stamp.month, 1)


def _months_back(month: date | None, count: int) -> date:
    assert month is not None
    index = month.year * 12 + month.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)


def as_floats(values: pd.Series) -> list[float]:
    """A column as floats for a chart (NaN where missing)."""
    return [float(v) for v in np.asarray(values, dtype="float64")]
