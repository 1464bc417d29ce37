"""This module owns the RM's feedback on an offered product: recording it (offered, accepted,
declined or not interested, with a final outcome that cannot be changed once recorded, and a
repeat of it answered with the earlier report instead of stored twice) and reading it back,
per client and per RM, newest first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from rmreco.db import kpis
from rmreco.db import repository as repo
from rmreco.serving.deps import (
    PortfolioClient,
    PortfolioRecommendation,
    PortfolioRm,
    RmPrincipalDep,
    SessionDep,
)
from rmreco.serving.errors import ERROR_RESPONSES, ApiError
from rmreco.serving.runtime import commit
from rmreco.serving.schemas import FeedbackAnswer, FeedbackItem, FeedbackPage, FeedbackRequest

router = APIRouter(tags=["feedback"], responses=ERROR_RESPONSES)

#: Outcomes that close a recommendation: a later report must repeat them.
FINAL_OUTCOMES = frozenset(kpis.FINAL_OUTCOMES)
MAX_PAGE = 200


def _default_amount(output: dict[str, Any]) -> float | None:
    """What an acceptance books when the RM gives no amount: the offer's limit (a financing
    option's). A cross-sell row has none: its expected value is a margin, not a booked amount,
    so the amount stays unknown rather than made up."""
    limit = output.get("limit")
    if isinstance(limit, int | float) and not isinstance(limit, bool) and limit > 0:
        return float(limit)
    return None


def _check_repeat(final: repo.RecordedFeedback, body: FeedbackRequest) -> None:
    """Refuse ``body`` unless it repeats the recorded final outcome: the same outcome, and the
    same amount and reason where it gives them.

    Raises:
        ApiError: 409 ``outcome_recorded``, naming the first field that would change.
    """
    changed = [
        name
        for name, asked, kept in (
            ("outcome", body.outcome, final.outcome),
            ("amount", body.amount, final.amount),
            ("reason", body.reason, final.reason),
        )
        if asked is not None and asked != kept
    ]
    if changed:
        which = "" if changed[0] == "outcome" else f" with another {changed[0]}"
        raise ApiError(
            409,
            "outcome_recorded",
            f"this recommendation is already '{final.outcome}'{which}; a final outcome cannot "
            "change",
            field=changed[0],
        )


@router.post(
    "/v1/recommendations/{recommendation_id}/feedback",
    response_model=FeedbackAnswer,
    status_code=201,
    responses={200: {"model": FeedbackAnswer, "description": "A repeat of the final outcome."}},
)
async def feedback(
    record: PortfolioRecommendation,
    principal: RmPrincipalDep,
    body: FeedbackRequest,
    session: SessionDep,
    response: Response,
) -> FeedbackAnswer:
    """Record what came of a recommendation: offered, accepted, declined or not interested.

    A final outcome (accepted, declined, not interested) cannot change: posting another is a
    409; posting the same again (a retry, a double click) stores nothing and answers 200 with
    the earlier report, so no KPI counts it twice."""
    if record.product_code is None:
        raise ApiError(
            409,
            "not_an_offer",
            "feedback goes to an offered product, not to the decision record",
            field="recommendation_id",
        )
    earlier = repo.feedback_outcomes(session, record.id)
    final = next((f for f in reversed(earlier) if f.outcome in FINAL_OUTCOMES), None)
    if final is not None:
        _check_repeat(final, body)
        response.status_code = 200
        return FeedbackAnswer(
            feedback_id=final.id,
            recommendation_id=record.id,
            outcome=final.outcome,
            amount=final.amount,
            is_repeat=True,
        )
    amount = body.amount
    if body.outcome == "accepted" and amount is None:
        amount = _default_amount(record.output)
    feedback_id = repo.add_feedback(
        session,
        recommendation_id=record.id,
        client_id=record.client_id,
        product_code=record.product_code,
        user_id=principal.user_id,
        outcome=body.outcome,
        reason=body.reason,
        amount=amount,
    )
    commit(session)
    return FeedbackAnswer(
        feedback_id=feedback_id, recommendation_id=record.id, outcome=body.outcome, amount=amount
    )


def _page(
    history: kpis.FeedbackHistory,
    *,
    rm_id: str | None,
    client_id: str | None,
    offset: int,
    limit: int,
) -> FeedbackPage:
    return FeedbackPage(
        rm_id=rm_id,
        client_id=client_id,
        total=history.total,
        offset=offset,
        limit=limit,
        items=[
            FeedbackItem(
                feedback_id=e.feedback_id,
                recommendation_id=e.recommendation_id,
                kind=e.kind,
                client_id=e.client_id,
                product_code=e.product_code,
                outcome=e.outcome,
                reason=e.reason,
                amount=e.amount,
                created_at=e.created_at,
                user=e.user_name,
            )
            for e in history.entries
        ],
    )


Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Reports per page.")]
Offset = Annotated[int, Query(ge=0, description="Reports to skip.")]


@router.get("/v1/clients/{client_id}/feedback", response_model=FeedbackPage)
async def client_feedback(
    client: PortfolioClient, session: SessionDep, limit: Limit = 50, offset: Offset = 0
) -> FeedbackPage:
    """The feedback recorded on a client's recommendations, newest first: who, when, outcome,
    reason, product, amount and the recommendation it answers."""
    history = kpis.feedback_history(session, client_id=client.client_id, limit=limit, offset=offset)
    return _page(
        history, rm_id=client.rm_id, client_id=client.client_id, offset=offset, limit=limit
    )


@router.get("/v1/rms/{rm_id}/feedback", response_model=FeedbackPage)
async def rm_feedback(
    rm_id: PortfolioRm, session: SessionDep, limit: Limit = 50, offset: Offset = 0
) -> FeedbackPage:
    """The feedback recorded on the recommendations of an RM's clients, newest first."""
    history = kpis.feedback_history(session, rm_id=rm_id, limit=limit, offset=offset)
    return _page(history, rm_id=rm_id, client_id=None, offset=offset, limit=limit)
