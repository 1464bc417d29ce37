"""This module owns the workspace's cross-sell list: an RM's ranked cross-sell list (filtered by
product and segment, in pages) with a form per outcome on each offer, and its CSV export. The
KPI pages are :mod:`rmreco.serving.web.kpi_pages`.

Each is the API's own code on the API's rights: the list is scored, filtered, explained and
audited by :mod:`rmreco.serving.routes.cross_sell` (every row shown is an audit row with its
recommendation id), an outcome is recorded by
:func:`rmreco.serving.routes.feedback.record_feedback` (the code of
``POST /v1/recommendations/{id}/feedback``), and the KPIs are counted by :mod:`rmreco.db.kpis`.
After a form the browser goes back to the list it came from (303) with a message read from the
database, never from the address: a link cannot make the page say what did not happen.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Query
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from rmreco.db import repository as repo
from rmreco.db import workspace
from rmreco.domain.contract import Segment
from rmreco.serving.deps import RuntimeDep, SessionDep
from rmreco.serving.errors import ApiError
from rmreco.serving.routes.cross_sell import offers_page, scored_portfolio, shown_offers
from rmreco.serving.routes.feedback import record_feedback
from rmreco.serving.runtime import Runtime, commit
from rmreco.serving.schemas import CrossSellPage, FeedbackRequest
from rmreco.serving.web import views
from rmreco.serving.web.refusals import PageRoute, error_page, no_portfolio
from rmreco.serving.web.render import PAGE_HEADERS, grade_on_scale, money, page, percent
from rmreco.serving.web.signin import (
    FormDep,
    Viewer,
    ViewerDep,
    check_csrf,
    field_problems,
    form_number,
)

PAGE_SIZE = 25
#: The most offers one CSV file holds: each is explained and audited as a page's row is.
MAX_CSV_ROWS = 5_000
#: Why a client declined, as an RM picks it (a reason in the RM's own words is taken too).
DECLINE_REASONS: tuple[str, ...] = (
    "price or rate",
    "has it with another bank",
    "no need now",
    "terms or conditions",
    "ask again later",
)
#: Outcomes in words, as the page and its messages say them.
OUTCOME_WORDS = {
    "offered": "offered",
    "accepted": "accepted",
    "declined": "declined",
    "not_interested": "not interested",
}
#: The query fields of a list address that a form carries back to it.
LIST_FIELDS = ("rm", "product", "segment", "page")
#: Text that a spreadsheet would read as a formula when a cell starts with it.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _list_owner(
    viewer: Viewer, session: Session, rm: str | None
) -> tuple[str | None, list[workspace.Manager]]:
    """The RM whose list the page shows: the viewer's own, or for an admin the one asked for
    (default the first corporate or personal RM, whose tool the list is); with the list an
    admin picks from. An RM's ``rm`` is ignored: the page never says whether another exists."""
    if not viewer.principal.is_admin:
        return viewer.principal.rm_id, []
    managers = workspace.managers(session)
    if rm is not None and rm not in {m.rm_id for m in managers}:
        raise ApiError(404, "not_found", f"there is no relationship manager '{rm}'")
    default = next(
        (m.rm_id for m in managers if m.role in ("crm", "prm")),
        managers[0].rm_id if managers else None,
    )
    return rm or default, managers


def _products(session: Session, runtime: Runtime) -> dict[str, dict[str, Any]]:
    """The catalog by product code."""
    return {str(p["product_code"]): p for p in runtime.catalog(session)}


def _bad_product(viewer: Viewer, product: str, products: dict[str, Any]) -> Response:
    return error_page(
        viewer,
        422,
        "That address is not valid",
        f"product must be one of {', '.join(sorted(products))}; '{product}' is not a product "
        "of the catalog",
    )


@dataclass
class _Listed:
    """A page (or the whole) of an RM's filtered cross-sell list, as the API answers it."""

    answer: CrossSellPage
    #: client names by id (None where the bank gives none)
    names: dict[str, str | None]
    page_number: int
    pages: int


def _listed(
    viewer: Viewer,
    session: Session,
    runtime: Runtime,
    rm_id: str,
    *,
    product: str,
    segment: str,
    page_number: int,
    size: int,
) -> _Listed:
    """Page ``page_number`` (of ``size`` offers) of the RM's list, filtered: scored, explained
    and written as audit rows by the API's own functions."""
    scored = scored_portfolio(session, runtime, rm_id)
    ranked = shown_offers(
        session, runtime, scored, product=product or None, segment=segment or None
    )
    pages = max(1, math.ceil(len(ranked) / size))
    number = min(page_number, pages)
    answer = offers_page(
        session,
        viewer.principal,
        scored,
        ranked,
        offset=(number - 1) * size,
        limit=size,
        rm_id=rm_id,
        client_id=None,
        currency=runtime.currency(session),
    )
    names = workspace.client_names(session, [str(item.client_id) for item in answer.items])
    return _Listed(answer=answer, names=names, page_number=number, pages=pages)


@router.get("/cross-sell")
def cross_sell_page(
    viewer: ViewerDep,
    session: SessionDep,
    runtime: RuntimeDep,
    product: Annotated[str, Query(max_length=64)] = "",
    segment: Annotated[Segment | Literal[""], Query()] = "",
    page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
    rm: Annotated[str | None, Query(max_length=64)] = None,
    done: Literal["recorded", "repeat", "refused"] | None = None,
    rec: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The RM's cross-sell list: clients and products ranked by expected value, with grade,
    PD, policy decision and reasons, a form per outcome on each offer."""
    if not viewer.has_portfolio:
        return no_portfolio(viewer)
    rm_id, managers = _list_owner(viewer, session, rm)
    products = _products(session, runtime)
    if product and product not in products:
        return _bad_product(viewer, product, products)
    currency = runtime.currency(session)
    message = _message(viewer, session, products, currency, done, rec) if done and rec else None
    listed = (
        _listed(
            viewer,
            session,
            runtime,
            rm_id,
            product=product,
            segment=str(segment),
            page_number=page_number,
            size=PAGE_SIZE,
        )
        if rm_id
        else None
    )
    grades, _ = views.scale_of(runtime)
    query = {"rm": rm_id if managers else None, "product": product, "segment": str(segment)}
    here = {k: v for k, v in query.items() if v}
    number = listed.page_number if listed else 1
    return page(
        "cross_sell.html",
        viewer=viewer,
        rm_id=rm_id,
        managers=managers,
        items=[item.model_dump() for item in listed.answer.items] if listed else [],
        total=listed.answer.total if listed else 0,
        names=listed.names if listed else {},
        page_number=number,
        pages=listed.pages if listed else 1,
        product=product,
        segment=str(segment),
        products=products,
        segments=[str(s) for s in runtime.store.segments("cross_sell")]
        or [str(s) for s in Segment],
        decline_reasons=DECLINE_REASONS,
        message=message,
        back=urlencode({**here, "page": number}),
        page_address=lambda n: "/cross-sell?" + urlencode({**here, "page": n}),
        csv_address="/cross-sell.csv" + (f"?{urlencode(here)}" if here else ""),
        currency=currency,
        on_scale=lambda g: grade_on_scale(g, grades),
        money=money,
        percent=percent,
    )


def _message(
    viewer: Viewer,
    session: Session,
    products: dict[str, dict[str, Any]],
    currency: str,
    done: str,
    rec: str,
) -> tuple[str, str] | None:
    """What the list says after a form: (``status`` or ``alert``, the words), from what the
    database holds for recommendation ``rec``; None for one the viewer does not see."""
    record = repo.recommendation(session, rec)
    if record is None or record.product_code is None or not viewer.principal.sees_rm(record.rm_id):
        return None
    client = repo.client_with_features(session, record.client_id)
    who = (client.client_name if client else None) or record.client_id
    what = str(products.get(record.product_code, {}).get("name") or record.product_code)
    final = repo.final_feedback(session, record.id)
    if done == "refused":
        if final is None:
            return None
        return (
            "alert",
            f"Not recorded: the offer of {what} to {who} is already "
            f"{OUTCOME_WORDS.get(final.outcome, final.outcome)}, and a final outcome cannot "
            "change.",
        )
    outcomes = repo.feedback_outcomes(session, record.id)
    last = final or (outcomes[-1] if outcomes else None)
    if last is None:
        return None
    amount = f" ({money(last.amount, currency)})" if last.amount is not None else ""
    said = "Already recorded" if done == "repeat" else "Recorded"
    outcome = OUTCOME_WORDS.get(last.outcome, last.outcome)
    return "status", f"{said}: {outcome} for {who}, {what}{amount}"


def _back_to(back: str, **extra: str) -> str:
    """The list address a form came from (only the list's own fields), with ``extra``."""
    fields = {k: v for k, v in parse_qsl(back) if k in LIST_FIELDS and v}
    return "/cross-sell?" + urlencode({**fields, **extra})


def _feedback_body(form: dict[str, str]) -> FeedbackRequest | str:
    """The form's outcome as the API's request body, or what is wrong with it (by field)."""
    reason = (form.get("reason_text") or "").strip() or (form.get("reason") or "").strip()
    try:
        amount = form_number(form.get("amount"), "amount")
    except ValueError as exc:
        return f"{exc}: enter a number such as 25000, or leave it empty"
    try:
        return FeedbackRequest.model_validate(
            {"outcome": form.get("outcome", ""), "reason": reason or None, "amount": amount}
        )
    except ValidationError as exc:
        return field_problems(exc)


@router.post("/cross-sell/feedback")
def record_outcome(
    viewer: ViewerDep, session: SessionDep, runtime: RuntimeDep, form: FormDep
) -> Response:
    """Record what came of an offer on the list (through the API's own code), then back to the
    list with what was recorded; a final outcome already recorded is said there, not a crash."""
    check_csrf(viewer.csrf_token, form)
    if not viewer.has_portfolio:
        return no_portfolio(viewer)
    rec_id = form.get("recommendation_id", "")
    record = repo.recommendation(session, rec_id) if 0 < len(rec_id) <= 64 else None
    if record is None or not viewer.principal.sees_rm(record.rm_id):
        return error_page(viewer, 404, "Not found", "There is no such offer in your portfolio.")
    body = _feedback_body(form)
    if isinstance(body, str):
        return error_page(viewer, 422, "The form was not taken", body)
    back = form.get("back", "")
    try:
        _, status = record_feedback(session, viewer.principal, record, body)
    except ApiError as exc:
        if exc.code != "outcome_recorded":
            raise
        return RedirectResponse(_back_to(back, done="refused", rec=record.id), status_code=303)
    if status == 201:
        commit(session)
    done = "recorded" if status == 201 else "repeat"
    return RedirectResponse(_back_to(back, done=done, rec=record.id), status_code=303)


def _cell(value: Any) -> str:
    """A CSV cell: text a spreadsheet would run as a formula gets a leading ``'``."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _number(value: float | None, digits: int) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{digits}f}"


@router.get("/cross-sell.csv")
def cross_sell_csv(
    viewer: ViewerDep,
    session: SessionDep,
    runtime: RuntimeDep,
    product: Annotated[str, Query(max_length=64)] = "",
    segment: Annotated[Segment | Literal[""], Query()] = "",
    rm: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The filtered list as a CSV file (UTF-8 with a byte-order mark, which spreadsheets need
    to read names right), each row audited as a page's row is."""
    if not viewer.has_portfolio:
        return no_portfolio(viewer)
    rm_id, _ = _list_owner(viewer, session, rm)
    products = _products(session, runtime)
    if product and product not in products:
        return _bad_product(viewer, product, products)
    if rm_id is None:
        return error_page(viewer, 404, "Not found", "There is no relationship manager to list.")
    listed = _listed(
        viewer,
        session,
        runtime,
        rm_id,
        product=product,
        segment=str(segment),
        page_number=1,
        size=MAX_CSV_ROWS,
    )
    currency = listed.answer.currency
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        ["rank", "client_id", "client_name", "product_code", "product", "propensity",
         "expected_value", "currency", "grade", "pd", "decision", "reasons"]
    )  # fmt: skip
    for item in listed.answer.items:
        name = products.get(item.product_code, {}).get("name") or item.product_code
        writer.writerow(
            [
                item.rank,
                _cell(item.client_id),
                _cell(listed.names.get(item.client_id) or ""),
                _cell(item.product_code),
                _cell(name),
                _number(item.propensity, 4),
                _number(item.expected_value, 2),
                currency,
                _cell(item.grade),
                _number(item.pd, 4),
                _cell(item.decision),
                _cell("; ".join(r.text for r in item.reasons)),
            ]
        )
    filename = f"cross-sell-{re.sub(r'[^A-Za-z0-9_-]', '_', rm_id)}-{runtime.now():%Y-%m-%d}.csv"
    headers = {
        **PAGE_HEADERS,
        "Content-Disposition": f'attachment; filename="{filename}"',
    }
    return Response(
        ("\ufeff" + out.getvalue()).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers=headers,
    )


# --- KPIs --------------------------------------------------------------------------------------
