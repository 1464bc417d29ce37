"""This module owns the cross-sell lists: an RM's portfolio ranked by expected value of the next
product to offer, and one client's next best products; with how offers are scored (one pass of
the models over every candidate), how a scored portfolio is kept while its snapshots and the
models are unchanged, how declines are kept out for a cool-off window, and how a page is
explained and audited."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from rmreco.db import repository as repo
from rmreco.db.schema import new_uuid
from rmreco.features.cross_sell import PRODUCT
from rmreco.features.snapshots import candidate_records, json_ready
from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.propensity import PropensityModel, rank_offers
from rmreco.serving.deps import (
    PortfolioClient,
    PortfolioRm,
    Principal,
    RmPrincipalDep,
    RuntimeDep,
    SessionDep,
)
from rmreco.serving.errors import ERROR_RESPONSES, unavailable
from rmreco.serving.runtime import Runtime, commit
from rmreco.serving.schemas import CrossSellPage

router = APIRouter(tags=["cross-sell"], responses=ERROR_RESPONSES)

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


def _models(runtime: Runtime) -> tuple[PropensityModel, dict[str, str]]:
    """The served cross-sell model and the versions of every model a list reads (the
    cross-sell model and the credit models that grade its clients). 503 while the cross-sell
    model is not loaded."""
    name = runtime.cross_sell_name()
    cross_sell = None if name is None else runtime.model(name, PropensityModel)
    if name is None or cross_sell is None:
        raise unavailable("the cross-sell model is not loaded")
    model, version = cross_sell
    versions = {name: version}
    versions.update({s.name: s.version for s in runtime.store.credit_models()})
    return model, versions


def _grades(runtime: Runtime, clients: list[repo.ClientView]) -> dict[str, str]:
    """Each client's credit grade, by the credit model of its segment (clients of a segment
    no credit model serves are left out: ungraded)."""
    by_model: dict[str, list[repo.ClientView]] = {}
    models: dict[str, CreditRiskModel] = {}
    for client in clients:
        served = runtime.store.credit_for(client.segment)
        if served is not None and isinstance(served.model, CreditRiskModel):
            by_model.setdefault(served.name, []).append(client)
            models[served.name] = served.model
    grades: dict[str, str] = {}
    for name, group in by_model.items():
        result = models[name].predict_records([c.features or {} for c in group], with_reasons=False)
        grades.update(zip([c.client_id for c in group], result.grade.astype(str), strict=True))
    return grades


def _score(runtime: Runtime, clients: list[repo.ClientView]) -> ScoredOffers:
    """Every offer of ``clients``: held products are not candidates, financing only where the
    credit grade (from the credit model of the client's segment) allows it. Reasons are left to
    :func:`_page`, which explains only the offers it returns."""
    model, versions = _models(runtime)
    eligible = [c for c in clients if c.features is not None and not c.in_default]
    segment_of = {c.client_id: c.segment for c in clients}
    records: list[dict[str, Any]] = []
    for client in eligible:
        for record in candidate_records(client.features or {}, client.offer_candidates):
            records.append({**record, "client_id": client.client_id, "_segment": client.segment})
    if not records:
        return ScoredOffers(pd.DataFrame(), pd.DataFrame(), versions, model, segment_of)
    frame = pd.DataFrame(records)
    credit = runtime.store.credit_models()
    grades, scale = None, None
    if credit:
        by_client = _grades(runtime, eligible)
        grades = np.asarray([by_client.get(c) for c in frame["client_id"]], dtype=object)
        # the shipped credit specs share one master scale; the first model's reads the grades
        scale = credit[0].model.scale if isinstance(credit[0].model, CreditRiskModel) else None
    ranked = rank_offers(
        model, frame, grades=grades, scale=scale, with_reasons=False, group=("client_id",)
    )
    ranked = ranked.sort_values(
        ["expected_value", "propensity", "client_id", PRODUCT],
        ascending=[False, False, True, True],
        kind="stable",
    )
    return ScoredOffers(ranked.reset_index(drop=True), frame, versions, model, segment_of)


def _portfolio(session: Session, runtime: Runtime, rm_id: str) -> ScoredOffers:
    """The RM's scored portfolio, from the runtime's cache while the portfolio's snapshots and
    the models are those it was scored with: scoring a portfolio and explaining offers cost
    most of a list's time, and both change only with a refresh or a new champion."""
    key = (repo.portfolio_stamp(session, rm_id), tuple(sorted(_models(runtime)[1].items())))
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
    session: Session,
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


@router.get("/v1/rms/{rm_id}/cross-sell", response_model=CrossSellPage)
async def cross_sell(
    rm_id: PortfolioRm,
    principal: RmPrincipalDep,
    runtime: RuntimeDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    product: Annotated[str | None, Query(description="Only this product.")] = None,
    segment: Annotated[str | None, Query(description="Only clients of this segment.")] = None,
    min_score: Annotated[float | None, Query(ge=0, le=1, description="Lowest propensity.")] = None,
) -> CrossSellPage:
    """The RM's portfolio ranked by expected value of the next product to offer."""
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


@router.get("/v1/clients/{client_id}/recommendations", response_model=CrossSellPage)
async def recommendations(
    client: PortfolioClient,
    principal: RmPrincipalDep,
    runtime: RuntimeDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 5,
) -> CrossSellPage:
    """The next best products for one client of the caller's portfolio."""
    scored = _score(runtime, [client])
    return _page(
        session,
        principal,
        scored,
        _filtered(session, scored),
        offset=0,
        limit=limit,
        rm_id=client.rm_id,
        client_id=client.client_id,
        currency=runtime.currency(session),
    )
