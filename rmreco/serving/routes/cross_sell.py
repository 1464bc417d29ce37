"""This module owns the cross-sell lists: an RM's portfolio ranked by expected value of the next
product to offer, and one client's next best products; with how offers are scored (one pass of
the models over every candidate), how a scored portfolio is kept while its snapshots and the
models are unchanged, how the contact policy keeps offers out (a recent decline, too many
contacts), and how a page is explained and audited. Each client is scored by the cross-sell
model of its segment, and its credit products only where its grade and the credit policy
allow them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from rmreco.db import repository as repo
from rmreco.db.schema import new_uuid
from rmreco.features.cross_sell import PRODUCT
from rmreco.features.snapshots import candidate_records, json_ready
from rmreco.modeling.contact import suppressions
from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.offers import CreditView, credit_aware, credit_view
from rmreco.modeling.propensity import PropensityModel, rank_offers
from rmreco.serving.deps import (
    PortfolioClient,
    PortfolioRm,
    Principal,
    RmPrincipalDep,
    RuntimeDep,
    SessionDep,
)
from rmreco.serving.errors import ERROR_RESPONSES, ApiError, unavailable
from rmreco.serving.model_store import ServedModel, model_provenance, model_versions
from rmreco.serving.runtime import Runtime, commit
from rmreco.serving.schemas import MAX_OFFSET, CrossSellPage

router = APIRouter(tags=["cross-sell"], responses=ERROR_RESPONSES)

MAX_PAGE = 200


@dataclass
class ScoredOffers:
    """Offers of some clients scored and ranked by expected value (best first), before any
    filter; ``frame`` holds the rows the models saw (``ranked["row"]`` indexes it; its
    ``_model`` column names the cross-sell model of each row) and ``reasons`` the explanations
    computed so far, by frame row."""

    ranked: pd.DataFrame
    frame: pd.DataFrame
    versions: dict[str, str]
    models: dict[str, PropensityModel]
    #: segment of each client of the offers
    segments: dict[str, str] = field(default_factory=dict)
    reasons: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    #: provenance of the models of ``versions`` (see ``ServedModel.provenance``), for the audit
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)


def _versions(runtime: Runtime) -> dict[str, str]:
    """The versions of every model a list reads: the cross-sell models and the credit models
    that grade their clients. 503 while no cross-sell model is loaded."""
    cross_sell = runtime.store.of_family("cross_sell")
    if not cross_sell:
        raise unavailable("no cross-sell model is loaded")
    return {s.name: s.version for s in [*cross_sell, *runtime.store.credit_models()]}


def credit_views(
    runtime: Runtime, clients: list[repo.ClientView], used: dict[str, ServedModel]
) -> dict[str, CreditView]:
    """Each client's PD, grade and policy decision, by the credit model of its segment (clients
    of a segment no credit model serves are left out: ungraded). Adds the served credit models
    to ``used``."""
    by_model: dict[str, list[repo.ClientView]] = {}
    models: dict[str, CreditRiskModel] = {}
    for client in clients:
        served = runtime.store.credit_for(client.segment)
        if served is not None and isinstance(served.model, CreditRiskModel):
            by_model.setdefault(served.name, []).append(client)
            models[served.name] = served.model
            used[served.name] = served
    views: dict[str, CreditView] = {}
    for name, group in by_model.items():
        result = models[name].predict_records([c.features or {} for c in group], with_reasons=False)
        for i, client in enumerate(group):
            views[client.client_id] = credit_view(
                features=client.features or {},
                segment=client.segment,
                declared_turnover=client.turnover,
                in_default=client.in_default,
                pd=float(result.pd[i]),
                pd_horizon_months=result.horizon_months,
                grade=str(result.grade[i]),
                policy=runtime.policy,
            )
    return views


def score_offers(runtime: Runtime, clients: list[repo.ClientView]) -> ScoredOffers:
    """Every offer of ``clients``, each scored by the cross-sell model of the client's segment
    (clients of a segment none serves have no offers): held products are not candidates, and
    credit products only where the client's grade and the credit policy allow them (the
    credit-aware view of :func:`rmreco.modeling.offers.credit_aware`). Reasons are left to
    :func:`offers_page`, which explains only the offers it returns."""
    _versions(runtime)  # 503 while no cross-sell model is loaded
    eligible = [c for c in clients if c.features is not None and not c.in_default]
    segment_of = {c.client_id: c.segment for c in clients}
    # the served models that answered, captured as they were used: the audit names these,
    # even if the store swaps a model while the list is scored
    used: dict[str, ServedModel] = {}
    views = credit_views(runtime, eligible, used)
    scale = next(
        (
            s.model.scale
            for s in runtime.store.credit_models()
            if isinstance(s.model, CreditRiskModel)
        ),
        None,
    )
    frames: list[pd.DataFrame] = []
    parts: list[pd.DataFrame] = []
    models: dict[str, PropensityModel] = {}
    start = 0
    for client in eligible:
        served = runtime.store.serving("cross_sell", client.segment)
        if served is not None and isinstance(served.model, PropensityModel):
            models[served.name] = served.model
            used[served.name] = served
    for name, model in sorted(models.items()):
        records: list[dict[str, Any]] = []
        for client in eligible:
            if not model.config.covers_segment(client.segment):
                continue
            for record in candidate_records(client.features or {}, client.offer_candidates):
                records.append(
                    {
                        **record,
                        "client_id": client.client_id,
                        "_segment": client.segment,
                        "_model": name,
                    }
                )
        if not records:
            continue
        frame = pd.DataFrame(records, index=pd.RangeIndex(start, start + len(records)))
        start += len(records)
        grades = np.asarray(
            [views[c].grade if c in views else None for c in frame["client_id"]], dtype=object
        )
        ranked = rank_offers(
            model,
            frame,
            grades=grades if scale is not None else None,
            scale=scale,
            with_reasons=False,
            group=("client_id",),
        )
        frames.append(frame)
        parts.append(credit_aware(ranked, views, model.financing_products))
    # the list names the models that answered for these clients, not every model served
    versions = model_versions(used.values())
    provenance = model_provenance(used.values())
    if not parts:
        return ScoredOffers(
            pd.DataFrame(), pd.DataFrame(), versions, models, segment_of, provenance=provenance
        )
    ranked = pd.concat(parts, ignore_index=True).sort_values(
        ["expected_value", "propensity", "client_id", PRODUCT],
        ascending=[False, False, True, True],
        kind="stable",
    )
    return ScoredOffers(
        ranked.reset_index(drop=True),
        pd.concat(frames),
        versions,
        models,
        segment_of,
        provenance=provenance,
    )


def scored_portfolio(session: Session, runtime: Runtime, rm_id: str) -> ScoredOffers:
    """The RM's scored portfolio, from the runtime's cache while the portfolio's snapshots and
    the models are those it was scored with: scoring a portfolio and explaining offers cost
    most of a list's time, and both change only with a refresh or a new champion."""
    key = (repo.portfolio_stamp(session, rm_id), tuple(sorted(_versions(runtime).items())))
    cached = runtime.portfolios.get(rm_id)
    if cached is not None and cached[0] == key:
        runtime.portfolios.move_to_end(rm_id)
        scored: ScoredOffers = cached[1]
        return scored
    scored = score_offers(runtime, repo.portfolio_features(session, rm_id))
    runtime.portfolios[rm_id] = (key, scored)
    while len(runtime.portfolios) > runtime.portfolio_cache_size:
        runtime.portfolios.popitem(last=False)
    return scored


def shown_offers(
    session: Session,
    runtime: Runtime,
    scored: ScoredOffers,
    *,
    product: str | None = None,
    segment: str | None = None,
    min_score: float | None = None,
) -> pd.DataFrame:
    """The ranked offers a list shows: filters applied, and offers the contact policy keeps
    from their client now (a recent decline, or too many contacts) left out."""
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
    contact, now = runtime.policy.contact, runtime.now()
    events = repo.contact_events(
        session, list(pd.unique(ranked["client_id"])), contact.lookback(now)
    )
    suppressed = suppressions(events, contact, now)
    if suppressed:
        pairs = zip(ranked["client_id"], ranked[PRODUCT], strict=True)
        keep &= np.fromiter((pair not in suppressed for pair in pairs), bool, len(ranked))
    return ranked[keep].reset_index(drop=True)


def _number_or_none(value: Any) -> float | None:
    """A float for JSON: None where the value is unknown (NaN)."""
    number = float(value)
    return None if np.isnan(number) else number


def _int_or_none(value: Any) -> int | None:
    """An int for JSON: None where the value is missing (None, NaN or pandas' NA)."""
    return None if pd.isna(value) else int(value)


def _text_or_none(value: Any) -> str | None:
    """A string for JSON: None where the value is missing (None or NaN)."""
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def offers_page(
    session: Session,
    principal: Principal,
    scored: ScoredOffers,
    ranked: pd.DataFrame,
    *,
    offset: int,
    limit: int,
    rm_id: str | None,
    client_id: str | None,
    currency: str,
) -> CrossSellPage:
    """One page of ``ranked``: its offers explained (only those not explained before), written
    as audit rows and committed."""
    page = ranked.iloc[offset : offset + limit]
    frame, versions = scored.frame, scored.versions
    rows_seen = page["row"].to_numpy() if len(page) else np.empty(0, dtype=np.int64)
    missing = [int(r) for r in rows_seen if int(r) not in scored.reasons]
    if missing:
        todo = frame.loc[missing]
        for name, group in todo.groupby("_model", sort=True):
            model = scored.models[str(name)]
            explained = model.reasons(model.encoder.transform(group), currency=currency)
            for row, reasons_of in zip(group.index, explained, strict=True):
                scored.reasons[int(row)] = [r.to_dict() for r in reasons_of]
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
            "pd": _number_or_none(item["pd"]),
            "pd_horizon_months": _int_or_none(item["pd_horizon_months"]),
            "grade": _text_or_none(item["grade"]),
            "decision": _text_or_none(item["decision"]),
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
                "model_provenance": scored.provenance,
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


@router.get("/v1/rms/{rm_id}/cross-sell", response_model=CrossSellPage)
def cross_sell(
    rm_id: PortfolioRm,
    principal: RmPrincipalDep,
    runtime: RuntimeDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    product: Annotated[str | None, Query(description="Only this product.")] = None,
    segment: Annotated[str | None, Query(description="Only clients of this segment.")] = None,
    min_score: Annotated[float | None, Query(ge=0, le=1, description="Lowest propensity.")] = None,
) -> CrossSellPage:
    """The RM's portfolio ranked by expected value of the next product to offer."""
    scored = scored_portfolio(session, runtime, rm_id)
    ranked = shown_offers(
        session, runtime, scored, product=product, segment=segment, min_score=min_score
    )
    return offers_page(
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


@router.get("/v1/clients/{client_id}/recommendations", response_model=CrossSellPage)
def recommendations(
    client: PortfolioClient,
    principal: RmPrincipalDep,
    runtime: RuntimeDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 5,
) -> CrossSellPage:
    """The next best products for one client of the caller's portfolio, by the cross-sell model
    of the client's segment."""
    if runtime.store.serving("cross_sell", client.segment) is None:
        served = runtime.store.segments("cross_sell")
        if served:
            raise ApiError(
                422,
                "segment_not_served",
                f"no cross-sell model serves the client's segment '{client.segment}'; the "
                f"cross-sell models in use serve: {', '.join(served)}",
                field="client_id",
                details={"segment": client.segment, "segments_served": served},
            )
    scored = score_offers(runtime, [client])
    return offers_page(
        session,
        principal,
        scored,
        shown_offers(session, runtime, scored),
        offset=0,
        limit=limit,
        rm_id=client.rm_id,
        client_id=client.client_id,
        currency=runtime.currency(session),
    )
