"""This module owns how a workspace page says no: the refusals a page raises (sign-in needed, a
form refused) and :class:`PageRoute`, which turns every refusal into a page with its status that
says what went wrong (or, for sign-in, a redirect to ``/``), never a JSON body or a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.responses import RedirectResponse, Response

from rmreco.serving.errors import ApiError
from rmreco.serving.web.render import page

log = logging.getLogger(__name__)


class SignInNeededError(Exception):
    """The page needs a signed-in user; the handler sends the browser to sign in."""

    def __init__(self, then: str) -> None:
        super().__init__("sign in first")
        self.then = then


class FormRefusedError(Exception):
    """A form that cannot be taken (no or wrong CSRF token, not a form); a 400 or 403 page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_page(viewer: Any, status: int, title: str, message: str) -> Response:
    """A page that says what went wrong, with its status."""
    return page("error.html", status=status, viewer=viewer, title=title, message=message)


class PageRoute(APIRoute):
    """A route whose refusals are pages: sign-in needed is a redirect to ``/``; a refused form,
    a bad query, a refusal of the service (``ApiError``) or a database that does not answer is
    a page with its status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInNeededError as exc:
                return signin_redirect(exc.then)
            except FormRefusedError as exc:
                return error_page(None, exc.status, "The form was not taken", exc.message)
            except RequestValidationError as exc:
                return error_page(None, 422, "That address is not valid", _invalid(exc))
            except ApiError as exc:
                return error_page(None, exc.status, _TITLES.get(exc.status, "Refused"), exc.message)
            except (PoolTimeoutError, SQLAlchemyError) as exc:
                log.error("workspace page failed on the database: %s", type(exc).__name__)
                return error_page(
                    None,
                    503,
                    "Not available just now",
                    "The database did not answer in time. Try again in a few seconds.",
                )

        return handle


_TITLES = {403: "Not for your role", 404: "Not found", 409: "Not possible now", 503: "Not ready"}


def _invalid(exc: RequestValidationError) -> str:
    """The fields of a refused query, in words: which one, and what it takes."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ())[1:]) or "the request"
        parts.append(f"{where}: {error.get('msg', 'not valid')}")
    return "; ".join(parts)


def signin_redirect(then: str) -> RedirectResponse:
    """Where a page that needs a sign-in sends the browser."""
    return RedirectResponse(f"/?then={quote(then, safe='/')}", status_code=303)


def no_portfolio(viewer: Any) -> Response:
    """The page of a signed-in user whose role has no portfolio (a data scientist)."""
    return error_page(
        viewer,
        403,
        "No portfolio",
        "Your role has no portfolio of clients. The API and its documentation are at /docs.",
    )
