"""This module owns who is signed in to the workspace and how they got there: the sign-in page
on ``/`` (an API key, as the API takes), the session cookie, sign-out, the CSRF token every form
carries, and :data:`ViewerDep`, the signed-in user a page receives (or a redirect to sign in).

The cookie holds a random token whose sha256 the database keeps (:mod:`rmreco.db.web_sessions`);
it is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page sends it)
and ``Secure`` unless the settings say otherwise. Before sign-in, the form's CSRF token is a
second cookie the form must repeat (double submit); after it, the session's own token, which
every form of the session carries and every POST must repeat. A key that is not valid is a 401
page, and counts toward the lockout of the address like any other bad key.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from rmreco.db import web_sessions
from rmreco.domain.names import UserRole
from rmreco.serving.deps import Principal, RuntimeDep, SessionDep, principal_for_key
from rmreco.serving.runtime import commit
from rmreco.serving.web.refusals import FormRefusedError, PageRoute, SignInNeededError
from rmreco.serving.web.render import page

SESSION_COOKIE = "rmreco_session"
SIGNIN_CSRF_COOKIE = "rmreco_signin_csrf"
#: Longest form body the workspace reads (its forms hold a few short fields).
MAX_FORM_BYTES = 16_384


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a page: who (as the API's :class:`Principal`) and the CSRF token
    the page's forms carry."""

    principal: Principal
    csrf_token: str
    token: str

    @property
    def has_portfolio(self) -> bool:
        """RMs have a portfolio; admins look at any RM's."""
        return self.principal.rm_id is not None or self.principal.is_admin


def _viewer(request: Request, session: SessionDep) -> Viewer:
    token = request.cookies.get(SESSION_COOKIE)
    signed = web_sessions.session_user(session, token) if token else None
    if token is None or signed is None:
        then = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInNeededError(then)
    user = signed.user
    principal = Principal(
        user_id=user.id, name=user.name, role=UserRole(user.role), rm_id=user.rm_id
    )
    return Viewer(principal=principal, csrf_token=signed.csrf_token, token=token)


#: The signed-in user of a page; without one, the browser is sent to sign in.
ViewerDep = Annotated[Viewer, Depends(_viewer)]


async def _form(request: Request) -> dict[str, str]:
    """The fields of an urlencoded form (the workspace's forms send no files)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormRefusedError(400, "this address takes a form from the workspace's pages")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise FormRefusedError(400, "the form is larger than the workspace's forms are")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        raise FormRefusedError(400, "the form is not UTF-8 text") from None


#: The fields of the request's form.
FormDep = Annotated[dict[str, str], Depends(_form)]


def check_csrf(expected: str | None, form: dict[str, str]) -> None:
    """Refuse a form whose ``csrf_token`` is not ``expected`` (a page of another site, or an old
    page of an ended sign-in).

    Raises:
        FormRefusedError: 403.
    """
    given = form.get("csrf_token", "")
    if not expected or not secrets.compare_digest(given.encode(), expected.encode()):
        raise FormRefusedError(
            403, "this form has expired or did not come from the workspace; reload the page"
        )


def safe_then(then: str | None) -> str:
    """Where to go after sign-in: a path of this app, never another site."""
    if not then or not then.startswith("/") or then.startswith("//") or "\\" in then:
        return "/portfolio"
    return then


router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/")
def signin_page(request: Request, session: SessionDep, then: str | None = None) -> Response:
    """The sign-in page; a signed-in browser goes on to its portfolio."""
    token = request.cookies.get(SESSION_COOKIE)
    if token and web_sessions.session_user(session, token) is not None:
        return RedirectResponse(safe_then(then), status_code=303)
    return _signin_form(request, then=then)


def _signin_form(
    request: Request, *, then: str | None, error: str | None = None, status: int = 200
) -> Response:
    csrf = request.cookies.get(SIGNIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = page(
        "signin.html", status=status, csrf_token=csrf, then=safe_then(then), error=error
    )
    secure = request.app.state.runtime.settings.web_cookie_secure
    response.set_cookie(
        SIGNIN_CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=secure, max_age=3600
    )
    return response


@router.post("/signin")
def signin(request: Request, session: SessionDep, runtime: RuntimeDep, form: FormDep) -> Response:
    """Sign in with an API key: a new session cookie, then the page asked for."""
    check_csrf(request.cookies.get(SIGNIN_CSRF_COOKIE), form)
    then = form.get("then")
    key = form.get("api_key", "").strip()
    if not key:
        return _signin_form(request, then=then, error="Enter your API key.", status=422)
    principal = principal_for_key(session, f"Bearer {key}")
    if principal is None:
        return _signin_form(
            request,
            then=then,
            error="That key is not valid: it is unknown or was revoked. Ask your administrator "
            "for a key.",
            status=401,
        )
    settings = runtime.settings
    started = web_sessions.start_session(
        session, principal.user_id, timedelta(hours=settings.web_session_hours)
    )
    commit(session)
    response = RedirectResponse(safe_then(then), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        started.token,
        httponly=True,
        samesite="strict",
        secure=settings.web_cookie_secure,
        max_age=int(settings.web_session_hours * 3600),
    )
    response.delete_cookie(SIGNIN_CSRF_COOKIE)
    return response


@router.post("/signout")
def signout(viewer: ViewerDep, session: SessionDep, form: FormDep) -> Response:
    """Sign out: the session ends in the database and its cookie is cleared."""
    check_csrf(viewer.csrf_token, form)
    web_sessions.end_session(session, viewer.token)
    commit(session)
    response = RedirectResponse("/?signed_out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def form_number(text: str | None, field: str) -> float | None:
    """A form's number field: empty is none; thousands separators (commas, spaces,
    underscores) are allowed.

    Raises:
        ValueError: naming ``field``, for text that is not a number.
    """
    cleaned = re.sub(r"[\s,_]", "", text or "")
    if not cleaned:
        return None
    try:
        return float(cleaned)
    except ValueError:
        raise ValueError(f"{field}: '{text}' is not a number") from None


def field_problems(exc: ValidationError) -> str:
    """What is wrong with a form, field by field, in the order pydantic found it."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'the form'}: {e['msg']}" for e in exc.errors()
    )
