"""This module owns the KPIs the service answers over a period: an RM's own (pipeline of
recommendations, offers and outcomes by product, new business from accepted amounts and from
new holdings in the data, retention of the client base), and every RM's side by side with
their total for an admin. The counting rules live in :mod:`rmreco.db.kpis`; these routes
resolve the period, ask for the figures and shape the answer."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from rmreco.db import kpis as kpi_db
from rmreco.serving.deps import PortfolioRm, Principal, RuntimeDep, SessionDep, require
from rmreco.serving.errors import ERROR_RESPONSES, ApiError, not_found
from rmreco.serving.schemas import (
    IsoDate,
    KpiAnswer,
    KpiFigures,
    NewHoldingsKpi,
    ProductHoldingsKpi,
    ProductKpi,
    RetentionKpi,
    RmKpiRow,
    TeamKpiAnswer,
)

router = APIRouter(tags=["kpis"], responses=ERROR_RESPONSES)

#: The period when the request names no first day: this many days before the last.
DEFAULT_PERIOD_DAYS = 90

#: The days a KPI period may span: any business the service records lies within them, and the
#: day after the last one is still a date (``to=9999-12-31`` was a 500).
EARLIEST_DAY, LATEST_DAY = date(1900, 1, 1), date(2999, 12, 31)
FirstDay = Annotated[
    IsoDate | None,
    Query(
        alias="from",
        ge=EARLIEST_DAY,
        le=LATEST_DAY,
        description="First day (default: 90 days before the last).",
    ),
]
LastDay = Annotated[
    IsoDate | None,
    Query(
        alias="to", ge=EARLIEST_DAY, le=LATEST_DAY, description="Last day (default: today, UTC)."
    ),
]
#: Admins only (``require`` with no role admits admins alone).
AdminDep = Annotated[Principal, require()]


def _period(start: date | None, end: date | None) -> kpi_db.Period:
    """The period asked for, both days included.

    Raises:
        ApiError: 422 when ``from`` is after ``to``.
    """
    last = end or datetime.now(UTC).date()
    first = start or last - timedelta(days=DEFAULT_PERIOD_DAYS)
    if first > last:
        raise ApiError(422, "invalid", "from: must not be after to", field="from")
    return kpi_db.Period(first, last)


def _figures(kpis: kpi_db.RmKpis) -> KpiFigures:
    total = kpis.total
    kept = kpis.retention
    started = kpis.new_holdings
    return KpiFigures(
        recommendations=total.recommended,
        offered=total.offered,
        accepted=total.accepted,
        declined=total.declined,
        not_interested=total.not_interested,
        pipeline_conversion_rate=_rate(total.accepted, total.offered),
        new_business_volume=round(total.accepted_amount, 2),
        accepted_without_amount=total.accepted_without_amount,
        new_holdings=NewHoldingsKpi(
            months_from=started.first_month,
            months_to=started.last_month,
            started=started.started,
            by_product=[
                ProductHoldingsKpi(
                    product_code=p.product_code,
                    started=p.started,
                    with_amount=p.with_amount,
                    amount=round(p.amount, 2),
                )
                for p in started.by_product
            ],
            note=started.note,
        ),
        retention=RetentionKpi(
            start_month=kept.start_month,
            end_month=kept.end_month,
            clients_at_start=kept.clients_at_start,
            retained=kept.retained,
            retention_rate=kept.rate,
            note=kept.note,
        ),
        by_product=[
            ProductKpi(
                product_code=p.product_code,
                recommended=p.recommended,
                offered=p.offered,
                accepted=p.accepted,
                declined=p.declined,
                not_interested=p.not_interested,
                acceptance_rate=_rate(p.accepted, p.offered),
                new_business_volume=round(p.accepted_amount, 2),
            )
            for p in kpis.pipeline
        ],
    )


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@router.get("/v1/rms/{rm_id}/kpis", response_model=KpiAnswer)
def kpis(
    rm_id: PortfolioRm,
    runtime: RuntimeDep,
    session: SessionDep,
    start: FirstDay = None,
    end: LastDay = None,
) -> KpiAnswer:
    """An RM's KPIs: recommendations, offers and outcomes by product (each client and product
    once), pipeline conversion, new business from accepted amounts and from new holdings, and
    retention of the client base."""
    period = _period(start, end)
    found = kpi_db.rm_kpis(session, period, [rm_id])[rm_id]
    return KpiAnswer(
        rm_id=rm_id,
        period_start=period.first_day,
        period_end=period.last_day,
        currency=runtime.currency(session),
        **_figures(found).model_dump(),
    )


@router.get("/v1/kpis", response_model=TeamKpiAnswer)
def team_kpis(
    _admin: AdminDep,
    runtime: RuntimeDep,
    session: SessionDep,
    start: FirstDay = None,
    end: LastDay = None,
    team: Annotated[str | None, Query(description="Only this team's RMs.")] = None,
) -> TeamKpiAnswer:
    """Every RM's KPIs (or a team's) side by side, with their total: conversion per RM and per
    product. Admins only."""
    period = _period(start, end)
    rms = kpi_db.relationship_managers(session, team)
    if team is not None and not rms:
        raise not_found("no such team")
    found = kpi_db.rm_kpis(session, period, [rm.rm_id for rm in rms])
    rows = [
        RmKpiRow(
            rm_id=rm.rm_id,
            name=rm.name,
            role=rm.role,
            team=rm.team,
            **_figures(found[rm.rm_id]).model_dump(),
        )
        for rm in rms
    ]
    return TeamKpiAnswer(
        team=team,
        period_start=period.first_day,
        period_end=period.last_day,
        total=_figures(kpi_db.team_total(period, list(found.values()))),
        rms=rows,
        currency=runtime.currency(session),
    )
