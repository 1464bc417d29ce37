"""This module owns the BRM's financing answer for one client over HTTP: which credit model
answers (the one of the client's segment), and the audit rows (the decision row holds the
inputs once; each option points at it; every row names the models that answered with their
training run, artifact digest and where they were served from). The decision itself is
:func:`rmreco.modeling.decisioning.decide_financing`, which batch scoring calls too."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Body
from sqlalchemy.orm import Session

from rmreco.db import repository as repo
from rmreco.db.repository import ClientView
from rmreco.db.schema import new_uuid
from rmreco.features.cross_sell import PRODUCT
from rmreco.features.snapshots import candidate_variants
from rmreco.modeling.contact import Suppression, suppressions
from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.decisioning import (
    FinancingDecision,
    Request,
    decide_financing,
    purpose_products,
)
from rmreco.modeling.propensity import PropensityModel
from rmreco.serving.deps import (
    PortfolioClient,
    Principal,
    RmPrincipalDep,
    RuntimeDep,
    SessionDep,
)
from rmreco.serving.errors import ERROR_RESPONSES, ApiError, unavailable
from rmreco.serving.idempotency import IdempotencyDep
from rmreco.serving.model_store import ServedModel, model_provenance, model_versions
from rmreco.serving.runtime import Runtime
from rmreco.serving.schemas import FinancingAnswer, FinancingRequest

router = APIRouter(tags=["financing"], responses=ERROR_RESPONSES)


def _credit(runtime: Runtime, segment: str) -> tuple[ServedModel, CreditRiskModel]:
    """The credit-risk model that serves ``segment``: as served (name, version, provenance)
    and as the model that scores.

    Raises:
        ApiError: 503 while no credit model is loaded; 422 ``segment_not_served`` when loaded
            ones serve other segments (the body names the client's segment and those served).
    """
    served = runtime.store.credit_for(segment)
    if served is not None and isinstance(served.model, CreditRiskModel):
        return served, served.model
    segments = runtime.store.credit_segments()
    if not segments:
        raise unavailable("the credit model is not loaded yet")
    raise ApiError(
        422,
        "segment_not_served",
        f"no credit model serves the client's segment '{segment}'; the credit models in use "
        f"serve: {', '.join(segments)}",
        field="client_id",
        details={"segment": segment, "segments_served": segments},
    )


@router.post("/v1/clients/{client_id}/financing-options", response_model=FinancingAnswer)
def financing(
    client: PortfolioClient,
    principal: RmPrincipalDep,
    runtime: RuntimeDep,
    session: SessionDep,
    idempotency: IdempotencyDep,
    body: Annotated[FinancingRequest | None, Body()] = None,
) -> Any:
    """PD, grade, policy decision and the ranked financing options of one client, from the
    credit-risk model of the client's segment. With an ``Idempotency-Key``, a retry gets the
    first answer and records no second decision."""
    if (replayed := idempotency.replay(session)) is not None:
        return replayed
    answer = answer_financing(session, runtime, principal, client, body or FinancingRequest())
    return idempotency.commit(session, answer, status=200)


def answer_financing(
    session: Session,
    runtime: Runtime,
    principal: Principal,
    client: repo.ClientView,
    request: FinancingRequest,
) -> FinancingAnswer:
    """The financing answer for ``client`` and its audit rows, added to ``session`` (the caller
    commits): the API's route and the workspace's form both answer with this.

    Raises:
        ApiError: 409 ``not_scored`` without a feature snapshot; 422 for a purpose the policy
            does not know or a segment no credit model serves; 409 ``policy_currency``.
    """
    client_id = client.client_id
    if client.features is None or client.month is None:
        raise ApiError(
            409,
            "not_scored",
            "the client's history has no feature snapshot yet; "
            "run `rmreco features refresh` after loading data",
        )
    credit, model = _credit(runtime, client.segment)
    currency = runtime.currency(session)  # named after the amounts in the reasons
    # the policy's amounts in the data's currency (PolicyCurrencyError, a 409: none stated)
    policy = runtime.policy.in_currency(currency)
    scored = model.predict_records([client.features], currency=currency)
    # the served models this answer reads, captured once: the audit names these, even if the
    # store swaps a model while the answer is computed
    used = [credit]
    propensities = _propensities(runtime, client, used)
    versions = model_versions(used)
    try:
        purpose_products(policy, request.purpose)
    except ValueError as exc:
        raise ApiError(422, "invalid", f"purpose: {exc}", field="purpose") from None
    answer = decide_financing(
        features=client.features,
        segment=client.segment,
        declared_turnover=client.turnover,
        in_default=client.in_default,
        held_products=frozenset(repo.held_products(session, [client_id]).get(client_id, set())),
        pd=float(scored.pd[0]),
        pd_horizon_months=scored.horizon_months,
        grade=str(scored.grade[0]),
        reasons=[r.to_dict() for r in scored.reasons[0]],
        catalog=runtime.catalog(session),
        policy=policy,
        propensities=propensities,
        request=Request(
            amount=request.amount, tenor_months=request.tenor_months, purpose=request.purpose
        ),
        suppressed=_suppressed(session, runtime, client_id),
    )
    decision_id = new_uuid()
    rows, options = _audit_rows(
        answer,
        decision_id=decision_id,
        shared={
            "user_id": principal.user_id,
            "client_id": client_id,
            "kind": "financing",
            "model_versions": versions,
            "model_provenance": model_provenance(used),
            "policy_version": policy.version,
        },
        features=client.features,
        request=request.model_dump(),
        currency=currency,
        in_default=client.in_default,
    )
    repo.add_recommendations(session, rows)
    financing_answer = FinancingAnswer(
        client_id=client_id,
        as_of=client.month,
        pd=answer.pd,
        pd_horizon_months=answer.pd_horizon_months,
        grade=answer.grade,
        decision=answer.decision.outcome,
        **_reasons(answer),
        options=options,
        decision_id=decision_id,
        model_versions=versions,
        policy_version=policy.version,
        currency=currency,
    )
    return financing_answer


def _suppressed(session: Session, runtime: Runtime, client_id: str) -> dict[str, Suppression]:
    """The products the contact policy keeps from the client now, by product code."""
    contact, now = runtime.policy.contact, runtime.now()
    events = repo.contact_events(session, [client_id], contact.lookback(now))
    return {product: s for (_, product), s in suppressions(events, contact, now).items()}


def _propensities(
    runtime: Runtime, client: ClientView, used: list[ServedModel]
) -> dict[str, float] | None:
    """The client's take-up propensity of each product the cross-sell model scores for it (its
    stored offer candidates: eligible products it does not hold), the same figures as its
    cross-sell list; None while no cross-sell model serves the client's segment. Adds the
    served model to ``used``."""
    served = runtime.store.serving("cross_sell", client.segment)
    if served is None or not isinstance(served.model, PropensityModel):
        return None
    model = served.model
    used.append(served)
    base, variants = candidate_variants(client.features or {}, client.offer_candidates)
    if not variants:
        return {}
    # the client's features are encoded once for all its candidate products (the list scores
    # the same rows through FeatureEncoder.transform_records: a property test holds them equal)
    propensity = model.predict_propensity(model.encoder.transform_variants(base, variants))
    return {
        str(variant[PRODUCT]): float(p)
        for variant, p in zip(variants, propensity, strict=True)
        if not math.isnan(p)
    }


def _audit_rows(
    answer: FinancingDecision,
    *,
    decision_id: str,
    shared: dict[str, Any],
    features: dict[str, Any],
    request: dict[str, Any],
    currency: str,
    in_default: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The audit rows of an answer (the decision row, holding the inputs once, then one row per
    option pointing at it) and the options as the answer lists them. The decision row's output
    also records the client's default status (``in_default``), the one input beside the
    features that the PD, grade and reasons read: a client in default is graded D with a PD of
    1 and the default as its reason whatever the model says."""
    option_rows, options = [], []
    for rank, option in enumerate(answer.options, start=1):
        rec_id = new_uuid()
        data = option.to_dict()
        option_rows.append(
            {
                **shared,
                "id": rec_id,
                "decision_id": decision_id,
                "product_code": option.product_code,
                "rank": rank,
                "output": {
                    **data,
                    "pd": answer.pd,
                    "pd_horizon_months": answer.pd_horizon_months,
                    "grade": answer.grade,
                    "decision_id": decision_id,
                },
            }
        )
        options.append({"recommendation_id": rec_id, "rank": rank, **data})
    summary = {
        "pd": answer.pd,
        "pd_horizon_months": answer.pd_horizon_months,
        "grade": answer.grade,
        "decision": answer.decision.outcome,
        **_reasons(answer),
        "options": [o["recommendation_id"] for o in options],
        "currency": currency,
        "in_default": in_default,
    }
    decision_row = {
        **shared,
        "id": decision_id,
        "features": features,
        "request": request,
        "output": summary,
    }
    return [decision_row, *option_rows], options


def _reasons(answer: FinancingDecision) -> dict[str, list[dict[str, Any]]]:
    """The answer's reasons as the API and the audit row state them, each with its code: the
    policy's (``decision_reasons``), the adverse-action reasons of a decline, and the model's."""
    return {
        "decision_reasons": [r.to_dict() for r in answer.decision.policy_reasons],
        "adverse_action_reasons": [r.to_dict() for r in answer.adverse_action_reasons],
        "reasons": list(answer.reasons),
    }
