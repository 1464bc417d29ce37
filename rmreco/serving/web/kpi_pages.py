"""This module owns the workspace's KPI page: an RM's KPIs over a chosen period of months with a
chart per month, and, for an admin, every RM side by side; counted by :mod:`rmreco.db.kpis`,
as the API counts them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session
from starlette.responses import Response

from rmreco.db import kpis as kpi_db
from rmreco.serving.deps import RuntimeDep, SessionDep
from rmreco.serving.routes.kpis import EARLIEST_DAY, LATEST_DAY
from rmreco.serving.runtime import Runtime
from rmreco.serving.web.charts import Series, line_chart
from rmreco.serving.web.refusals import PageRoute, error_page, no_portfolio
from rmreco.serving.web.render import money, page, percent
from rmreco.serving.web.signin import ViewerDep

#: Months the KPI page shows when the address names none (the latest, this month included).
DEFAULT_KPI_MONTHS = 12
#: The longest KPI period, in months: the chart counts each month on its own.
MAX_KPI_MONTHS = 60

router = APIRouter(route_class=PageRoute, include_in_schema=False)


class _BadPeriodError(Exception):
    """A KPI period the page cannot take; ``str()`` names the field and says why."""


def _month_of(typed: str, field: str) -> date:
    """The month ``YYYY-MM`` of a month input.

    Raises:
        _BadPeriodError: naming ``field`` when ``typed`` is not such a month.
    """
    found = re.fullmatch(r"(\d{4})-(\d{2})", typed.strip())
    if found is None or not 1 <= int(found.group(2)) <= 12:
        raise _BadPeriodError(
            f"{field}: enter a month as YYYY-MM, such as 2025-01; '{typed}' is not one"
        )
    month = date(int(found.group(1)), int(found.group(2)), 1)
    if not EARLIEST_DAY <= month <= LATEST_DAY:
        raise _BadPeriodError(
            f"{field}: a month from {EARLIEST_DAY:%Y-%m} to {LATEST_DAY:%Y-%m}; '{typed}' is not"
        )
    return month


def _months_between(first: date, last: date) -> list[date]:
    count = (last.year - first.year) * 12 + last.month - first.month + 1
    return [_shift(first, k) for k in range(count)]


def _shift(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def _period_of(runtime: Runtime, start: str, end: str) -> tuple[date, date]:
    """The first and last month the page counts (default: the latest DEFAULT_KPI_MONTHS).

    Raises:
        _BadPeriodError: a month that is not one, ``from`` after ``to``, or too long a period.
    """
    last = _month_of(end, "to") if end else runtime.now().date().replace(day=1)
    first = _month_of(start, "from") if start else _shift(last, 1 - DEFAULT_KPI_MONTHS)
    if first > last:
        raise _BadPeriodError("from: must not be after to")
    if len(_months_between(first, last)) > MAX_KPI_MONTHS:
        raise _BadPeriodError(f"from: a period spans at most {MAX_KPI_MONTHS} months")
    return first, last


def _last_day(month: date) -> date:
    return _shift(month, 1) - timedelta(days=1)


@dataclass(frozen=True)
class _Month:
    """One month's pipeline of the RMs the page shows, for the charts."""

    month: date
    offered: int
    accepted: int
    volume: float
    started: int | None

    @property
    def conversion(self) -> float:
        return self.accepted / self.offered if self.offered else math.nan


def _by_month(session: Session, months: list[date], rm_ids: list[str]) -> list[_Month]:
    """Each month's offers, acceptances, new business and new holdings, each month a period
    of its own (a pair offered in one month and accepted in the next counts in both)."""
    span = kpi_db.data_span(session)
    out = []
    for month in months:
        period = kpi_db.Period(month, _last_day(month))
        flows = kpi_db.pipelines(session, period, rm_ids)
        started = kpi_db.new_holdings(session, period, rm_ids, span)
        total = kpi_db.ProductPipeline("")
        for row in kpi_db.combined(flows.get(rm, []) for rm in rm_ids):
            total = total + row
        counts = [s.started for s in started.values()]
        out.append(
            _Month(
                month,
                total.offered,
                total.accepted,
                total.accepted_amount,
                None if any(c is None for c in counts) else sum(c or 0 for c in counts),
            )
        )
    return out


def _kpi_charts(months: list[_Month], currency: str) -> dict[str, tuple[str, str]]:
    """The KPI page's charts by name: (title, SVG)."""
    when = [m.month for m in months]

    # the axis of a month with few offers has ticks between whole numbers: say them as they
    # are rather than round two ticks to one label
    def count(v: float) -> str:
        return f"{v:,.0f}" if v == round(v) else f"{v:,.2f}".rstrip("0")

    def amount(v: float) -> str:
        if v == round(v) or abs(v) >= 10:
            return money(v, currency, compact=True)
        return f"{currency} {v:,.2f}"

    specs: dict[str, tuple[str, list[Series], Any]] = {
        "pipeline": (
            "Offers and acceptances by month",
            [
                Series("offered", [float(m.offered) for m in months]),
                Series("accepted", [float(m.accepted) for m in months]),
                Series(
                    "new holdings",
                    [math.nan if m.started is None else float(m.started) for m in months],
                ),
            ],
            count,
        ),
        "conversion": (
            "Conversion (offered to accepted) by month",
            [Series("conversion", [m.conversion for m in months])],
            lambda v: percent(v, 0),
        ),
        "volume": (
            f"New business volume by month ({currency})",
            [Series("accepted amounts", [m.volume for m in months])],
            amount,
        ),
    }
    return {
        name: (title, line_chart(f"chart-{name}", title, when, drawn, label=label))
        for name, (title, drawn, label) in specs.items()
    }


@router.get("/kpis")
def kpis_page(
    viewer: ViewerDep,
    session: SessionDep,
    runtime: RuntimeDep,
    start: Annotated[str, Query(alias="from", max_length=16)] = "",
    end: Annotated[str, Query(alias="to", max_length=16)] = "",
    rm: Annotated[str, Query(max_length=64)] = "",
    team: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The KPIs over a period of months: the RM's own (an admin's: one RM's or every RM's
    together, with every RM side by side), by product, with a chart per month."""
    if not viewer.has_portfolio:
        return no_portfolio(viewer)
    try:
        first, last = _period_of(runtime, start, end)
    except _BadPeriodError as exc:
        return error_page(viewer, 422, "That period is not valid", str(exc))
    period = kpi_db.Period(first, _last_day(last))
    is_admin = viewer.principal.is_admin
    everyone = kpi_db.relationship_managers(session) if is_admin else []
    teams = sorted({m.team for m in everyone if m.team})
    if team and team not in teams:
        return error_page(
            viewer,
            422,
            "That address is not valid",
            f"team must be one of {', '.join(teams) or 'no team'}; '{team}' is not a team",
        )
    if rm and is_admin and rm not in {m.rm_id for m in everyone}:
        return error_page(
            viewer, 422, "That address is not valid", f"rm: there is no relationship manager '{rm}'"
        )
    shown = [m for m in everyone if not team or m.team == team]
    if not is_admin:
        scope = [viewer.principal.rm_id or ""]
    else:
        scope = [rm] if rm else [m.rm_id for m in shown]
    found = kpi_db.rm_kpis(session, period, scope)
    figures = (
        found[scope[0]] if len(scope) == 1 else kpi_db.team_total(period, list(found.values()))
    )
    team_rows: list[tuple[kpi_db.RmInfo, kpi_db.RmKpis]] = []
    team_total = None
    if is_admin:
        side = found if not rm else kpi_db.rm_kpis(session, period, [m.rm_id for m in shown])
        team_rows = [(m, side[m.rm_id]) for m in shown]
        team_total = kpi_db.team_total(period, list(side.values()))
    currency = runtime.currency(session)
    months = _by_month(session, _months_between(first, last), scope)
    return page(
        "kpis.html",
        viewer=viewer,
        first=first,
        last=last,
        period=period,
        is_admin=is_admin,
        rm=rm,
        team=team,
        teams=teams,
        managers=everyone,
        scope_rm=scope[0] if len(scope) == 1 else None,
        figures=figures,
        total=figures.total,
        team_rows=team_rows,
        team_total=team_total,
        months=months,
        charts=_kpi_charts(months, currency),
        products={p["product_code"]: p for p in runtime.catalog(session)},
        currency=currency,
        rate=lambda part, whole: part / whole if whole else None,
        money=money,
        percent=percent,
    )
