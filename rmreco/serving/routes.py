"""The routes: health, models, financing options for BRMs, feedback and KPIs.

Every recommendation served is written to ``recommendations`` with who asked, the client, the
model versions, the policy version, the exact feature values the model saw, the request and the
output, and committed before the answer leaves.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Body, Query

from rmreco.db import repository as repo
from rmreco.db.schema import new_uuid
from rmreco.features.cross_sell import PRODUCT
from rmreco.features.snapshots import candidate_records, json_ready
from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.decisioning import ClientFacts, Product, Request, decide, financing_options
from rmreco.modeling.master_scale import DEFAULT_GRADE
from rmreco.modeling.propensity import PropensityModel, rank_offers
from rmreco.serving.app import (
    CREDIT_MODEL,
    CROSS_SELL_MODEL,
    ApiError,
    PrincipalDep,
    RuntimeDep,
    SessionDep,
    commit,
    database_ok,
    not_found,
    require,
    unavailable,
)
from rmreco.serving.schemas import (
    CrossSellPage,
    ErrorResponse,
    FeedbackAnswer,
    FeedbackRequest,
    FinancingAnswer,
    FinancingRequest,
    KpiAnswer,
    ModelsAnswer,
    ProductKpi,
    ReadyAnswer,
    ServedModelInfo,
)

router = APIRouter()
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 422, 503)
}
FINAL_OUTCOMES = {"accepted", "declined", "not_interested"}


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz", tags=["health"], response_model=ReadyAnswer, responses={503: {"model": ReadyAnswer}}
)
async def readyz(runtime: RuntimeDep) -> Any:
    """Models loaded and database reachable; says which versions and whether the registry
    answers."""
    store = runtime.store
    db_ok = await asyncio.to_thread(database_ok, runtime.factory)
    answer = ReadyAnswer(
        ready=db_ok and store.is_ready(),
        database="ok" if db_ok else "unreachable",
        registry="unreachable" if store.registry_error else "ok",
        models=store.versions(),
        errors={
            **store.last_errors,
            **({"registry": store.registry_error} if store.registry_error else {}),
        },
    )
    if not answer.ready:
        from fastapi.responses import JSONResponse

        return JSONResponse(answer.model_dump(), status_code=503, headers={"Retry-After": "5"})
    return answer


@router.get("/v1/models", tags=["models"], response_model=ModelsAnswer, responses=ERRORS)
async def models(runtime: RuntimeDep, _: PrincipalDep) -> ModelsAnswer:
    """The model versions in use and their headline test metrics."""
    headline = ("oot_auc", "oot_gini", "oot_brier", "oracle_oot_auc", "oot_map_at_5")
    return ModelsAnswer(
        models=[
            ServedModelInfo(
                name=s.name,
                version=s.version,
                source=s.source,
                metrics={k: v for k, v in s.metrics.items() if k in headline},
            )
            for s in runtime.store.current.values()
        ],
        registry="unreachable" if runtime.store.registry_error else "ok",
        errors=dict(runtime.store.last_errors),
    )


@router.post(
    "/v1/admin/models/reload", tags=["models"], response_model=ModelsAnswer, responses=ERRORS
)
async def reload_models(
    runtime: RuntimeDep, _: Annotated[object, require("admin")]
) -> ModelsAnswer:
    """Follow the champion aliases now instead of at the next poll."""
    await asyncio.to_thread(runtime.store.refresh)
    return await models(runtime, _)  # type: ignore[arg-type]


def _credit(runtime: RuntimeDep) -> tuple[CreditRiskModel, str]:
    served = runtime.store.current.get(CREDIT_MODEL)
    if served is None:
        raise unavailable("the credit model is not loaded yet")
    return served.model, served.version


@router.post(
    "/v1/clients/{client_id}/financing-options",
    tags=["financing"],
    response_model=FinancingAnswer,
    responses=ERRORS,
)
async def financing(
    client_id: str,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: Annotated[Any, require("brm", "crm")],
    body: Annotated[FinancingRequest | None, Body()] = None,
) -> FinancingAnswer:
    """PD, grade, policy decision and the ranked financing options of one client."""
    request = body or FinancingRequest()
    client = repo.client_with_features(session, client_id)
    if client is None or not principal.sees_rm(client.rm_id):
        raise not_found("no such client in your portfolio")
    if client.features is None or client.month is None:
        raise ApiError(
            409,
            "not_scored",
            "the client's history has no feature snapshot yet; "
            "run `rmreco features refresh` after loading data",
        )
    model, version = _credit(runtime)
    X = model.encoder.transform_records([client.features])
    result = model.predict_matrix(X)
    pd_12m = float(result.pd_12m[0])
    grade = str(result.grade[0])
    if client.in_default:
        pd_12m, grade = 1.0, DEFAULT_GRADE
    reasons = [r.to_dict() for r in result.reasons[0]]
    held = repo.held_products(session, [client_id]).get(client_id, set())
    facts = ClientFacts.from_features(
        client.features,
        segment=client.segment,
        declared_turnover=client.turnover,
        in_default=client.in_default,
        held_products=frozenset(held),
    )
    policy = runtime.policy
    decision = decide(grade, facts, policy)
    products = [
        Product.from_catalog(row, policy.catalog_defaults)
        for row in runtime.catalog(session)
        if row.get("kind") == "financing"
    ]
    options = (
        []
        if decision.outcome == "decline"
        else financing_options(
            facts,
            pd_12m,
            grade,
            products,
            policy,
            request=Request(
                amount=request.amount, tenor_months=request.tenor_months, purpose=request.purpose
            ),
        )
    )
    adverse = (
        [] if decision.outcome != "decline" else [*decision.reasons, *(r["text"] for r in reasons)]
    )
    versions = {CREDIT_MODEL: version}
    currency = runtime.currency(session)
    decision_id = new_uuid()
    shared = {
        "user_id": principal.user_id,
        "client_id": client_id,
        "kind": "financing",
        "model_versions": versions,
        "policy_version": policy.version,
    }
    option_rows = []
    answers = []
    for rank, option in enumerate(options, start=1):
        rec_id = new_uuid()
        data = option.to_dict()
        option_rows.append(
            {
                **shared,
                "id": rec_id,
                "decision_id": decision_id,
                "product_code": option.product_code,
                "rank": rank,
                "output": {**data, "pd_12m": pd_12m, "grade": grade, "decision_id": decision_id},
            }
        )
        answers.append({"recommendation_id": rec_id, "rank": rank, **data})
    summary = {
        "pd_12m": pd_12m,
        "grade": grade,
        "decision": decision.outcome,
        "decision_reasons": list(decision.reasons),
        "adverse_action_reasons": adverse,
        "reasons": reasons,
        "options": [a["recommendation_id"] for a in answers],
        "currency": currency,
    }
    repo.add_recommendations(
        session,
        [
            {
                **shared,
                "id": decision_id,
                "features": client.features,
                "request": request.model_dump(),
                "output": summary,
            },
            *option_rows,
        ],
    )
    commit(session)
    return FinancingAnswer(
        client_id=client_id,
        as_of=client.month,
        pd_12m=pd_12m,
        grade=grade,
        decision=decision.outcome,
        decision_reasons=list(decision.reasons),
        adverse_action_reasons=adverse,
        reasons=reasons,
        options=answers,
        decision_id=decision_id,
        model_versions=versions,
        policy_version=policy.version,
        currency=currency,
    )


@router.post(
    "/v1/recommendations/{recommendation_id}/feedback",
    tags=["feedback"],
    response_model=FeedbackAnswer,
    status_code=201,
    responses=ERRORS,
)
async def feedback(
    recommendation_id: str,
    body: FeedbackRequest,
    session: SessionDep,
    principal: Annotated[Any, require("brm", "crm")],
) -> FeedbackAnswer:
    """Record what came of a recommendation: offered, accepted, declined or not interested."""
    record = repo.recommendation(session, recommendation_id)
    if record is None or not principal.sees_rm(record.rm_id):
        raise not_found("no such recommendation in your portfolio")
    if record.product_code is None:
        raise ApiError(
            409,
            "not_an_offer",
            "feedback goes to an offered product, not to the decision record",
            field="recommendation_id",
        )
    earlier = repo.feedback_outcomes(session, recommendation_id)
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
        recommendation_id=recommendation_id,
        client_id=record.client_id,
        product_code=record.product_code,
        user_id=principal.user_id,
        outcome=body.outcome,
        reason=body.reason,
        amount=amount,
    )
    commit(session)
    return FeedbackAnswer(
        feedback_id=feedback_id, recommendation_id=recommendation_id, outcome=body.outcome
    )


@router.get("/v1/rms/{rm_id}/kpis", tags=["kpis"], response_model=KpiAnswer, responses=ERRORS)
async def kpis(
    rm_id: str,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: Annotated[Any, require("brm", "crm")],
    start: Annotated[
        date | None, Query(alias="from", description="First day (default: 90 days ago).")
    ] = None,
    end: Annotated[date | None, Query(alias="to", description="Last day (default: today).")] = None,
) -> KpiAnswer:
    """Pipeline conversion (accepted / offered), acceptance by product and new business."""
    if not principal.sees_rm(rm_id) or not repo.rm_exists(session, rm_id):
        raise not_found("no such relationship manager")
    today = datetime.now(UTC).date()
    end_day = end or today
    start_day = start or end_day - timedelta(days=90)
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


# --- cross-sell -------------------------------------------------------------------------------

COOL_OFF_DAYS = 90
MAX_PAGE = 200


@dataclass
class ScoredOffers:
    """Offers of some clients scored and ranked by expected value (best first), before any
    filter; ``frame`` holds the rows the model saw (``ranked["row"]`` indexes it) and
    ``reasons`` the explanations computed so far, by frame row."""

    ranked: pd.DataFrame
    frame: pd.DataFrame
    versions: dict[str, str]
    model: PropensityModel | None
    #: segment of each client of the offers
    segments: dict[str, str] = field(default_factory=dict)
    reasons: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


def _models(runtime: RuntimeDep) -> tuple[Any, Any | None, dict[str, str]]:
    """The served cross-sell model, the served credit model (None when not loaded) and the
    versions they name. 503 while the cross-sell model is not loaded."""
    served = runtime.store.current.get(CROSS_SELL_MODEL)
    if served is None:
        raise unavailable("the cross-sell model is not loaded")
    versions = {CROSS_SELL_MODEL: served.version}
    credit = runtime.store.current.get(CREDIT_MODEL)
    if credit is not None:
        versions[CREDIT_MODEL] = credit.version
    return served, credit, versions


def _score(runtime: RuntimeDep, clients: list[repo.ClientView]) -> ScoredOffers:
    """Every offer of ``clients``: held products are not candidates, financing only where the
    credit grade allows it. Reasons are left to :func:`_page`, which explains only the offers it
    returns."""
    served, credit, versions = _models(runtime)
    model: PropensityModel = served.model
    eligible = [c for c in clients if c.features is not None and not c.in_default]
    segment_of = {c.client_id: c.segment for c in clients}
    records: list[dict[str, Any]] = []
    for client in eligible:
        for record in candidate_records(client.features or {}, client.offer_candidates):
            records.append({**record, "client_id": client.client_id, "_segment": client.segment})
    if not records:
        return ScoredOffers(pd.DataFrame(), pd.DataFrame(), versions, model, segment_of)
    frame = pd.DataFrame(records)
    grades = None
    scale = None
    if credit is not None:
        credit_model: CreditRiskModel = credit.model
        by_client = {c.client_id: c.features or {} for c in eligible}
        ids = list(by_client)
        client_grades = dict(
            zip(
                ids,
                credit_model.predict_matrix(
                    credit_model.encoder.transform_records([by_client[i] for i in ids]),
                    with_reasons=False,
                ).grade,
                strict=True,
            )
        )
        segments = set(credit_model.metadata.get("segments", []))
        grades = np.asarray(
            [
                client_grades[c] if s in segments else None
                for c, s in zip(frame["client_id"], frame["_segment"], strict=True)
            ],
            dtype=object,
        )
        scale = credit_model.scale
    ranked = rank_offers(
        model, frame, grades=grades, scale=scale, with_reasons=False, group=("client_id",)
    )
    ranked = ranked.sort_values(
        ["expected_value", "propensity", "client_id", PRODUCT],
        ascending=[False, False, True, True],
        kind="stable",
    )
    return ScoredOffers(ranked.reset_index(drop=True), frame, versions, model, segment_of)


def _portfolio(session: SessionDep, runtime: RuntimeDep, rm_id: str) -> ScoredOffers:
    """The RM's scored portfolio, from the runtime's cache while the portfolio's snapshots and
    the models are those it was scored with: scoring a portfolio and explaining offers cost
    most of a list's time, and both change only with a refresh or a new champion."""
    key = (repo.portfolio_stamp(session, rm_id), tuple(sorted(_models(runtime)[2].items())))
    cached = runtime.portfolios.get(rm_id)
    if cached is not None and cached[0] == key:
        runtime.portfolios.move_to_end(rm_id)
        scored: ScoredOffers = cached[1]
        return scored
    scored = _score(runtime, repo.portfolio_features(session, rm_id))
    runtime.portfolios[rm_id] = (key, scored)
    while len(runtime.portfolios) > runtime.portfolio_cache_size:
        runtime.portfolios.popitem(last=False)
    return scored


def _filtered(
    session: SessionDep,
    scored: ScoredOffers,
    *,
    product: str | None = None,
    segment: str | None = None,
    min_score: float | None = None,
) -> pd.DataFrame:
    """The ranked offers a list shows: filters applied, and offers the RM reported declined or
    not wanted in the cool-off window left out."""
    ranked = scored.ranked
    if ranked.empty:
        return ranked
    keep = np.ones(len(ranked), dtype=bool)
    if product is not None:
        keep &= (ranked[PRODUCT] == product).to_numpy()
    if segment is not None:
        keep &= scored.frame["_segment"].to_numpy()[ranked["row"].to_numpy()] == segment
    if min_score is not None:
        keep &= (ranked["propensity"] >= min_score).to_numpy()
    declined = repo.recently_declined(
        session,
        list(pd.unique(ranked["client_id"])),
        datetime.now(UTC) - timedelta(days=COOL_OFF_DAYS),
    )
    if declined:
        pairs = zip(ranked["client_id"], ranked[PRODUCT], strict=True)
        keep &= np.fromiter((pair not in declined for pair in pairs), bool, len(ranked))
    return ranked[keep].reset_index(drop=True)


def _number_or_none(value: Any) -> float | None:
    """A float for JSON: None where the value is unknown (NaN)."""
    number = float(value)
    return None if np.isnan(number) else number


def _page(
    session: SessionDep,
    principal: Any,
    scored: ScoredOffers,
    ranked: pd.DataFrame,
    *,
    offset: int,
    limit: int,
    rm_id: str | None,
    client_id: str | None,
    currency: str,
) -> CrossSellPage:
    page = ranked.iloc[offset : offset + limit]
    frame, model, versions = scored.frame, scored.model, scored.versions
    rows_seen = page["row"].to_numpy() if len(page) else np.empty(0, dtype=np.int64)
    missing = [int(r) for r in rows_seen if int(r) not in scored.reasons]
    if model is not None and missing:
        explained = model.reasons(model.encoder.transform(frame.loc[missing]))
        for row, reasons_of in zip(missing, explained, strict=True):
            scored.reasons[row] = [r.to_dict() for r in reasons_of]
    records = frame.loc[rows_seen].to_dict(orient="records") if len(page) else []
    rows, items = [], []
    for k, item in enumerate(page.to_dict(orient="records")):
        position = offset + k + 1
        rec_id = new_uuid()
        output = {
            "client_id": item["client_id"],
            PRODUCT: item[PRODUCT],
            "propensity": float(item["propensity"]),
            "expected_value": _number_or_none(item["expected_value"]),
            "rank": position,
            "reasons": scored.reasons.get(int(item["row"]), []),
        }
        seen = {
            str(name): json_ready(v)
            for name, v in records[k].items()
            if not str(name).startswith("_")
        }
        rows.append(
            {
                "id": rec_id,
                "user_id": principal.user_id,
                "client_id": item["client_id"],
                "kind": "cross_sell",
                "product_code": item[PRODUCT],
                "rank": position,
                "model_versions": versions,
                "policy_version": None,
                "features": seen,
                "output": output,
                "request": {
                    "rm_id": rm_id,
                    "client_id": client_id,
                    "offset": offset,
                    "limit": limit,
                },
            }
        )
        items.append(
            {
                **output,
                "recommendation_id": rec_id,
                "segment": scored.segments.get(item["client_id"], ""),
            }
        )
    if rows:
        repo.add_recommendations(session, rows)
    commit(session)
    return CrossSellPage(
        rm_id=rm_id,
        client_id=client_id,
        total=len(ranked),
        offset=offset,
        limit=limit,
        items=items,
        model_versions=versions,
        currency=currency,
    )


@router.get(
    "/v1/rms/{rm_id}/cross-sell",
    tags=["cross-sell"],
    response_model=CrossSellPage,
    responses=ERRORS,
)
async def cross_sell(
    rm_id: str,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: Annotated[Any, require("brm", "crm")],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    product: Annotated[str | None, Query(description="Only this product.")] = None,
    segment: Annotated[str | None, Query(description="Only clients of this segment.")] = None,
    min_score: Annotated[float | None, Query(ge=0, le=1, description="Lowest propensity.")] = None,
) -> CrossSellPage:
    """The RM's portfolio ranked by expected value of the next product to offer."""
    if not principal.sees_rm(rm_id) or not repo.rm_exists(session, rm_id):
        raise not_found("no such relationship manager")
    scored = _portfolio(session, runtime, rm_id)
    ranked = _filtered(session, scored, product=product, segment=segment, min_score=min_score)
    return _page(
        session,
        principal,
        scored,
        ranked,
        offset=offset,
        limit=limit,
        rm_id=rm_id,
        client_id=None,
        currency=runtime.currency(session),
    )


@router.get(
    "/v1/clients/{client_id}/recommendations",
    tags=["cross-sell"],
    response_model=CrossSellPage,
    responses=ERRORS,
)
async def recommendations(
    client_id: str,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: Annotated[Any, require("brm", "crm")],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 5,
) -> CrossSellPage:
    """The next best products for one client of the caller's portfolio."""
    client = repo.client_with_features(session, client_id)
    if client is None or not principal.sees_rm(client.rm_id):
        raise not_found("no such client in your portfolio")
    scored = _score(runtime, [client])
    return _page(
        session,
        principal,
        scored,
        _filtered(session, scored),
        offset=0,
        limit=limit,
        rm_id=client.rm_id,
        client_id=client_id,
        currency=runtime.currency(session),
    )
