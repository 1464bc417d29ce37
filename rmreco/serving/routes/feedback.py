"""This module owns the RM's feedback on an offered product: offered, accepted, declined or not
interested, with a final outcome that cannot be changed once recorded."""

from __future__ import annotations

from fastapi import APIRouter

from rmreco.db import repository as repo
from rmreco.serving.deps import PortfolioRecommendation, RmPrincipalDep, SessionDep
from rmreco.serving.errors import ERROR_RESPONSES, ApiError
from rmreco.serving.runtime import commit
from rmreco.serving.schemas import FeedbackAnswer, FeedbackRequest

router = APIRouter(tags=["feedback"], responses=ERROR_RESPONSES)

#: Outcomes that close a recommendation: a later report must repeat them.
FINAL_OUTCOMES = {"accepted", "declined", "not_interested"}


@router.post(
    "/v1/recommendations/{recommendation_id}/feedback",
    response_model=FeedbackAnswer,
    status_code=201,
)
async def feedback(
    record: PortfolioRecommendation,
    principal: RmPrincipalDep,
    body: FeedbackRequest,
    session: SessionDep,
) -> FeedbackAnswer:
    """Record what came of a recommendation: offered, accepted, declined or not interested."""
    if record.product_code is None:
        raise ApiError(
            409,
            "not_an_offer",
            "feedback goes to an offered product, not to the decision record",
            field="recommendation_id",
        )
    earlier = repo.feedback_outcomes(session, record.id)
    final = [o for o in earlier if o in FINAL_OUTCOMES]
    if final and body.outcome != final[-1]:
        raise ApiError(
            409,
            "outcome_recorded",
            f"this recommendation is already '{final[-1]}'",
            field="outcome",
        )
    amount = body.amount
    if body.outcome == "accepted" and amount is None:
        amount = float(record.output.get("limit") or record.output.get("expected_value") or 0.0)
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
        feedback_id=feedback_id, recommendation_id=record.id, outcome=body.outcome
    )
