"""This module owns the workspace's pages after sign-in: the portfolio list (search, sort,
filter, pages) and the client view (history charts, PD and grade over time, products, feedback,
next best products). Each page is on the API's rights: an RM sees their own portfolio, an admin
any RM's (chosen on the page), and a client of another portfolio is the same "not found" page
as a client that does not exist.

A page that cannot be shown is a page too, never a JSON body or a stack trace:
:class:`PageRoute` turns a refusal into a page with its status that says what went wrong.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import ValidationError
from starlette.responses import Response

from rmreco.db import repository as repo
from rmreco.db import workspace
from rmreco.domain.contract import Segment
from rmreco.domain.names import RM_ROLES
from rmreco.serving.deps import RuntimeDep, SessionDep
from rmreco.serving.errors import ApiError
from rmreco.serving.routes.cross_sell import offers_page, score_offers, shown_offers
from rmreco.serving.routes.financing import answer_financing
from rmreco.serving.runtime import Runtime, commit
from rmreco.serving.schemas import FinancingRequest
from rmreco.serving.web import views
from rmreco.serving.web.charts import Series, line_chart
from rmreco.serving.web.refusals import PageRoute, error_page, no_portfolio
from rmreco.serving.web.render import grade_on_scale, money, page, percent
from rmreco.serving.web.signin import (
    FormDep,
    Viewer,
    ViewerDep,
    check_csrf,
    field_problems,
    form_number,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 25
SORTS = {
    "name": "name",
    "pd": "PD, highest first",
    "grade": "grade, worst first",
    "segment": "segment",
    "suggestion": "value of the top suggestion",
}


router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _rm_of(viewer: Viewer, session: Any, rm: str | None) -> tuple[str | None, list[Any]]:
    """The RM whose portfolio the page shows: the viewer's own, or for an admin the one asked
    for (default the first); with the list an admin picks from."""
    if not viewer.principal.is_admin:
        return viewer.principal.rm_id, []
    managers = workspace.managers(session)
    ids = [m.rm_id for m in managers]
    if rm is not None and rm not in ids:
        raise ApiError(404, "not_found", f"there is no relationship manager '{rm}'")
    return (rm or (ids[0] if ids else None)), managers


@router.get("/portfolio")
def portfolio_page(
    viewer: ViewerDep,
    session: SessionDep,
    runtime: RuntimeDep,
    q: Annotated[str, Query(max_length=100, description="Name or id")] = "",
    segment: Annotated[Segment | Literal[""], Query()] = "",
    grade: Annotated[str, Query(max_length=8)] = "",
    sort: Literal["name", "pd", "grade", "segment", "suggestion"] = "name",
    page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
    rm: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The RM's clients: name, segment, sector, grade, PD trend, products, top suggestion."""
    if not viewer.has_portfolio:
        return no_portfolio(viewer)
    rm_id, managers = _rm_of(viewer, session, rm)
    currency = runtime.currency(session)
    found = views.portfolio(session, runtime, rm_id) if rm_id else views.Portfolio(rows=[])
    grades = found.grades
    if grade and grades and grade not in grades:
        return error_page(
            viewer,
            422,
            "That address is not valid",
            f"grade must be one of {', '.join(grades)}; '{grade}' is not a grade",
        )
    rows = _search(found.rows, q)
    if segment:
        rows = [r for r in rows if r.segment == segment]
    if grade:
        rows = [r for r in rows if r.grade == grade]
    rows = _sorted(rows, sort, grades)
    pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
    number = min(page_number, pages)
    shown = rows[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    views.add_trends(session, runtime, shown)
    products = {p["product_code"]: p["name"] for p in runtime.catalog(session)}
    return page(
        "portfolio.html",
        viewer=viewer,
        rm_id=rm_id,
        managers=managers,
        rows=shown,
        total=len(rows),
        portfolio_size=len(found.rows),
        page_number=number,
        pages=pages,
        q=q,
        segment=str(segment),
        grade=grade,
        sort=sort,
        sorts=SORTS,
        segments=sorted({r.segment for r in found.rows}),
        grades=list(grades),
        bounds=found.bounds,
        suggestions_missing=found.suggestions_missing,
        currency=currency,
        products=products,
        on_scale=lambda g: grade_on_scale(g, grades),
        money=money,
        percent=percent,
    )


def _search(rows: list[views.PortfolioRow], q: str) -> list[views.PortfolioRow]:
    """Rows whose name contains ``q`` or whose id starts with it (case ignored)."""
    needle = q.strip().casefold()
    if not needle:
        return rows
    return [
        r
        for r in rows
        if needle in (r.name or "").casefold() or r.client_id.casefold().startswith(needle)
    ]


def _sorted(
    rows: list[views.PortfolioRow], sort: str, grades: tuple[str, ...]
) -> list[views.PortfolioRow]:
    order = {g: i for i, g in enumerate(grades)}
    if sort == "pd":
        return sorted(rows, key=lambda r: (r.pd is None, -(r.pd or 0.0), r.client_id))
    if sort == "grade":
        return sorted(
            rows,
            key=lambda r: (r.grade is None, -order.get(r.grade or "", len(order)), r.client_id),
        )
    if sort == "segment":
        return sorted(rows, key=lambda r: (r.segment, (r.name or r.client_id).casefold()))
    if sort == "suggestion":
        return sorted(
            rows,
            key=lambda r: (r.top_expected_value is None, -(r.top_expected_value or 0.0)),
        )
    return sorted(rows, key=lambda r: ((r.name or r.client_id).casefold(), r.client_id))


def seen_client(viewer: Viewer, session: Any, client_id: str) -> repo.ClientView | None:
    """The client, when the viewer sees its portfolio; None otherwise (the same for a client
    that does not exist: the page never tells whether another RM's client exists)."""
    client = repo.client_with_features(session, client_id)
    if client is None or not viewer.principal.sees_rm(client.rm_id):
        return None
    return client


def _not_found(viewer: Viewer) -> Response:
    return error_page(viewer, 404, "Not found", "There is no such client in your portfolio.")


@router.get("/clients/{client_id}")
def client_page(
    client_id: Annotated[str, Path(max_length=64)],
    viewer: ViewerDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    """One client: history charts, PD and grade over time, products held, feedback, the next
    best products and, for a business client, the financing request form."""
    client = seen_client(viewer, session, client_id)
    if client is None:
        return _not_found(viewer)
    currency = runtime.currency(session)
    history = views.client_history(session, runtime, client)
    grades, bounds = views.scale_of(runtime)
    credit = views.credit_of(runtime, client)
    offers, offers_missing = _next_best(session, runtime, viewer, client)
    products = {p["product_code"]: p for p in runtime.catalog(session)}
    charts = _charts(history, currency)
    return page(
        "client.html",
        viewer=viewer,
        client=client,
        credit=credit,
        can_ask_financing=viewer.principal.role in RM_ROLES or viewer.principal.is_admin,
        purposes=sorted(runtime.policy.purposes),
        history=history,
        charts=charts,
        offers=offers,
        offers_missing=offers_missing,
        feedback=workspace.client_feedback(session, client_id),
        held=sorted(repo.held_products(session, [client_id]).get(client_id, set())),
        products=products,
        currency=currency,
        grades=grades,
        bounds=bounds,
        on_scale=lambda g: grade_on_scale(g, grades),
        money=money,
        percent=percent,
    )


def _next_best(
    session: Any, runtime: Runtime, viewer: Viewer, client: repo.ClientView
) -> tuple[list[dict[str, Any]], str | None]:
    """The client's next best products as the API gives them (scored, explained, audited)."""
    if client.features is None:
        return [], "no feature snapshot yet: load data and run `rmreco features refresh`"
    if runtime.store.serving("cross_sell", client.segment) is None:
        return [], f"no cross-sell model serves the {client.segment} segment"
    scored = score_offers(runtime, [client])
    answer = offers_page(
        session,
        viewer.principal,
        scored,
        shown_offers(session, runtime, scored),
        offset=0,
        limit=5,
        rm_id=client.rm_id,
        client_id=client.client_id,
        currency=runtime.currency(session),
    )
    return [item.model_dump() for item in answer.items], None


def _charts(history: views.ClientHistory, currency: str) -> dict[str, tuple[str, str]]:
    """The client view's charts by name: (title, SVG)."""
    accounts, months = history.accounts, history.months

    def amount(v: float) -> str:
        return money(v, currency, compact=True)

    def lines(*names: tuple[str, str]) -> list[Series]:
        return [Series(label, views.as_floats(accounts[column])) for label, column in names]

    horizon = history.horizon_months or 12
    specs: dict[str, tuple[str, list[Series], Callable[[float], str], bool]] = {
        "balances": (
            f"Account balance by month ({currency})",
            lines(
                ("average", "balance_avg"), ("lowest", "balance_min"), ("highest", "balance_max")
            ),
            amount,
            False,
        ),
        "flows": (
            f"Money in and out by month ({currency})",
            lines(("inflows", "credit_turnover"), ("outflows", "debit_turnover")),
            amount,
            True,
        ),
        "overdraft": (
            f"Overdraft limit and peak use by month ({currency})",
            lines(("limit", "overdraft_limit"), ("peak use", "overdraft_peak_use")),
            amount,
            True,
        ),
        "arrears": (
            "Days past due and days in overdraft by month",
            lines(("days past due", "dpd_max"), ("days in overdraft", "days_in_overdraft")),
            lambda v: f"{v:,.0f} d",
            True,
        ),
        "pd": (
            f"Probability of default within {horizon} months, by month",
            [Series("PD", history.pd)],
            lambda v: percent(v, 1),
            True,
        ),
    }
    return {
        name: (
            title,
            line_chart(f"chart-{name}", title, months, drawn, label=label, floor_at_zero=floor),
        )
        for name, (title, drawn, label, floor) in specs.items()
    }


@router.post("/clients/{client_id}/financing")
def financing_page(
    client_id: Annotated[str, Path(max_length=64)],
    viewer: ViewerDep,
    session: SessionDep,
    runtime: RuntimeDep,
    form: FormDep,
) -> Response:
    """A financing request from the client view's form: the decision, its reasons and the
    ranked options, by the API's own answer (audited the same way)."""
    check_csrf(viewer.csrf_token, form)
    client = seen_client(viewer, session, client_id)
    if client is None:
        return _not_found(viewer)
    if viewer.principal.role not in RM_ROLES and not viewer.principal.is_admin:
        return error_page(
            viewer, 403, "Not for your role", "Financing requests are for relationship managers."
        )
    try:
        request = FinancingRequest(
            amount=form_number(form.get("amount"), "amount"),
            tenor_months=_whole(form.get("tenor_months"), "tenor_months"),
            purpose=form.get("purpose") or None,
        )
    except ValidationError as exc:
        return error_page(viewer, 422, "The request is not valid", field_problems(exc))
    except ValueError as exc:
        return error_page(viewer, 422, "The request is not valid", str(exc))
    answer = answer_financing(session, runtime, viewer.principal, client, request)
    commit(session)
    grades, _ = views.scale_of(runtime)
    products = {p["product_code"]: p for p in runtime.catalog(session)}
    return page(
        "financing.html",
        viewer=viewer,
        client=client,
        request=request,
        answer=answer,
        products=products,
        on_scale=lambda g: grade_on_scale(g, grades),
        money=money,
        percent=percent,
    )


def _whole(text: str | None, field: str) -> int | None:
    """A form's whole-number field (empty is none).

    Raises:
        ValueError: naming ``field``, for text that is not a whole number.
    """
    number = form_number(text, field)
    if number is None:
        return None
    if not number.is_integer():
        raise ValueError(f"{field}: '{text}' is not a whole number")
    return int(number)
