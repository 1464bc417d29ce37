"""This module owns the RM's feedback on an offered product: recording it (offered, accepted,
declined or not interested, with a final outcome that cannot be changed once recorded, and a
repeat of it answered with the earlier report instead of stored twice) and reading it back,
per client and per RM, newest first. :func:`record_feedback` is the one way feedback is
recorded: the API's route and the workspace's cross-sell page both call it."""

from __future__ import annotations

from typing import Annotated, Any, overload

from fastapi import APIRouter, Query, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rmreco.db import kpis
from rmreco.db import repository as repo
from rmreco.serving.deps import (
    PortfolioClient,
    PortfolioRecommendation,
    PortfolioRm,
    Principal,
    RmPrincipalDep,
    SessionDep,
)
from rmreco.serving.errors import ERROR_RESPONSES, ApiError
from rmreco.serving.idempotency import Idempotency, IdempotencyDep
from rmreco.serving.schemas import (
    MAX_OFFSET,
    FeedbackAnswer,
    FeedbackItem,
    FeedbackPage,
    FeedbackRequest,
)

router = APIRouter(tags=["feedback"], responses=ERROR_RESPONSES)

MAX_PAGE = 200


def _default_amount(output: dict[str, Any]) -> float | None:
    """What an acceptance books when the RM gives no amount: the offer's limit (a financing
    option's). A cross-sell row has none: its expected value is a margin, not a booked amount,
    so the amount stays unknown rather than made up."""
    limit = output.get("limit")
    if isinstance(limit, int | float) and not isinstance(limit, bool) and limit > 0:
        return float(limit)
    return None


def _repeat(final: repo.RecordedFeedback, record_id: str, body: FeedbackRequest) -> FeedbackAnswer:
    """The answer to ``body`` on a recommendation whose final outcome is ``final``: the earlier
    report when ``body`` repeats it (the same outcome, and the same amount and reason where it
    gives them).

    Raises:
        ApiError: 409 ``outcome_recorded``, naming the first field that would change, with the
            recorded outcome in ``details``.
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
            details={
                "feedback_id": final.id,
                "outcome": final.outcome,
                "amount": final.amount,
                "reason": final.reason,
            },
        )
    return FeedbackAnswer(
        feedback_id=final.id,
        recommendation_id=record_id,
        outcome=final.outcome,
        amount=final.amount,
        is_repeat=True,
    )


@overload
def record_feedback(
    session: Session,
    principal: Principal,
    record: repo.RecommendationRecord,
    body: FeedbackRequest,
) -> tuple[FeedbackAnswer, int]: ...


@overload
def record_feedback(
    session: Session,
    principal: Principal,
    record: repo.RecommendationRecord,
    body: FeedbackRequest,
    idempotency: Idempotency,
) -> tuple[FeedbackAnswer, int] | Response: ...


def record_feedback(
    session: Session,
    principal: Principal,
    record: repo.RecommendationRecord,
    body: FeedbackRequest,
    idempotency: Idempotency | None = None,
) -> tuple[FeedbackAnswer, int] | Response:
    """Record ``body`` on ``record`` (a recommendation the caller sees) for ``principal``, in
    the session's transaction, uncommitted: the caller commits a 201 (the API stores its
    ``Idempotency-Key`` with it, a page commits as it is).

    Answers (the answer, 201) when a report was added, (the earlier report, 200) when ``body``
    repeats the recorded final outcome (nothing added), or, with ``idempotency``, the stored
    answer of an earlier request with the same key.

    Raises:
        ApiError: 409 ``not_an_offer`` for a decision record; 409 ``outcome_recorded`` when
            ``body`` would change the recorded final outcome; 422 ``idempotency_key_reused``.
    """
    if record.product_code is None:
        raise ApiError(
            409,
            "not_an_offer",
            "feedback goes to an offered product, not to the decision record",
            field="recommendation_id",
        )
    if idempotency is not None and (replayed := idempotency.replay(session)) is not None:
        return replayed
    final = repo.final_feedback(session, record.id)
    if final is not None:
        return _repeat(final, record.id, body), 200
    amount = body.amount
    if body.outcome == "accepted" and amount is None:
        amount = _default_amount(record.output)
    try:
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
    except IntegrityError:
        # another request recorded a final outcome after our read (the unique index on final
        # outcomes refused this one): answer as if we had seen it
        session.rollback()
        if idempotency is not None and (replayed := idempotency.replay(session)) is not None:
            return replayed
        final = repo.final_feedback(session, record.id)
        if final is None:
            raise
        return _repeat(final, record.id, body), 200
    answer = FeedbackAnswer(
        feedback_id=feedback_id, recommendation_id=record.id, outcome=body.outcome, amount=amount
    )
    return answer, 201


@router.post(
    "/v1/recommendations/{recommendation_id}/feedback",
    response_model=FeedbackAnswer,
    status_code=201,
    responses={200: {"model": FeedbackAnswer, "description": "A repeat of the final outcome."}},
)
def feedback(
    record: PortfolioRecommendation,
    principal: RmPrincipalDep,
    body: FeedbackRequest,
    session: SessionDep,
    response: Response,
    idempotency: IdempotencyDep,
) -> Any:
    """Record what came of a recommendation: offered, accepted, declined or not interested.

    A final outcome (accepted, declined, not interested) cannot change: posting another is a
    409 that names the recorded one; posting the same again (a retry, a double click) stores
    nothing and answers 200 with the earlier report, so no KPI counts it twice. The database
    holds at most one final outcome per recommendation, whichever worker records it. With an
    ``Idempotency-Key``, a retry gets the first answer itself."""
    recorded = record_feedback(session, principal, record, body, idempotency)
    if isinstance(recorded, Response):
        return recorded
    answer, status = recorded
    if status != 201:
        response.status_code = status
        return answer
    return idempotency.commit(session, answer, status=201)


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
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Reports to skip.")]


@router.get("/v1/clients/{client_id}/feedback", response_model=FeedbackPage)
def client_feedback(
    client: PortfolioClient, session: SessionDep, limit: Limit = 50, offset: Offset = 0
) -> FeedbackPage:
    """The feedback recorded on a client's recommendations, newest first: who, when, outcome,
    reason, product, amount and the recommendation it answers."""
    history = kpis.feedback_history(session, client_id=client.client_id, limit=limit, offset=offset)
    return _page(
        history, rm_id=client.rm_id, client_id=client.client_id, offset=offset, limit=limit
    )


@router.get("/v1/rms/{rm_id}/feedback", response_model=FeedbackPage)
def rm_feedback(
    rm_id: PortfolioRm, session: SessionDep, limit: Limit = 50, offset: Offset = 0
) -> FeedbackPage:
    """The feedback recorded on the recommendations of an RM's clients, newest first."""
    history = kpis.feedback_history(session, rm_id=rm_id, limit=limit, offset=offset)
    return _page(history, rm_id=rm_id, client_id=None, offset=offset, limit=limit)
