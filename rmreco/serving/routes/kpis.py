"""This module owns an RM's KPIs over a period: pipeline conversion (accepted / offered),
acceptance by product and new business volume, from the feedback recorded."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from rmreco.db import repository as repo
from rmreco.serving.deps import PortfolioRm, RuntimeDep, SessionDep
from rmreco.serving.errors import ERROR_RESPONSES, ApiError
from rmreco.serving.schemas import KpiAnswer, ProductKpi

router = APIRouter(tags=["kpis"], responses=ERROR_RESPONSES)

#: The period when the request names no first day: this many days before the last.
DEFAULT_PERIOD_DAYS = 90


@router.get("/v1/rms/{rm_id}/kpis", response_model=KpiAnswer)
async def kpis(
    rm_id: PortfolioRm,
    runtime: RuntimeDep,
    session: SessionDep,
    start: Annotated[
        date | None, Query(alias="from", description="First day (default: 90 days ago).")
    ] = None,
    end: Annotated[date | None, Query(alias="to", description="Last day (default: today).")] = None,
) -> KpiAnswer:
    """Pipeline conversion (accepted / offered), acceptance by product and new business."""
    today = datetime.now(UTC).date()
    end_day = end or today
    start_day = start or end_day - timedelta(days=DEFAULT_PERIOD_DAYS)
    if start_day > end_day:
        raise ApiError(422, "invalid", "from: must not be after to", field="from")
    lo = datetime.combine(start_day, time.min, tzinfo=UTC)
    hi = datetime.combine(end_day + timedelta(days=1), time.min, tzinfo=UTC)
    facts = repo.rm_feedback(session, rm_id, lo, hi)
    outcomes: dict[str, set[str]] = {}
    products: dict[str, str | None] = {}
    volume = 0.0
    for fact in facts:
        outcomes.setdefault(fact.recommendation_id, set()).add(fact.outcome)
        products[fact.recommendation_id] = fact.product_code
        if fact.outcome == "accepted" and fact.amount:
            volume += fact.amount
    # an accepted or declined offer was offered, whether or not "offered" was reported first
    offered = {r for r, o in outcomes.items() if o & {"offered", "accepted", "declined"}}
    accepted = {r for r, o in outcomes.items() if "accepted" in o}
    declined = {r for r, o in outcomes.items() if "declined" in o}
    offered_by = Counter(products[r] or "" for r in offered)
    accepted_by = Counter(products[r] or "" for r in accepted)
    return KpiAnswer(
        rm_id=rm_id,
        period_start=start_day,
        period_end=end_day,
        recommendations=repo.count_recommendations(session, rm_id, lo, hi),
        offered=len(offered),
        accepted=len(accepted),
        declined=len(declined),
        pipeline_conversion_rate=len(accepted) / len(offered) if offered else None,
        new_business_volume=round(volume, 2),
        by_product=[
            ProductKpi(
                product_code=p,
                offered=n,
                accepted=accepted_by.get(p, 0),
                acceptance_rate=accepted_by.get(p, 0) / n if n else None,
            )
            for p, n in sorted(offered_by.items())
        ],
        currency=runtime.currency(session),
    )
