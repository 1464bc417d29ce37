"""This module owns how the service says no: :class:`ApiError` (an answer other than 200 with a
stable code), the responses the routes declare for it, and the handlers that turn every error
(ours, request validation, routing, the database, the unexpected) into one JSON body:
``{"error": {"code", "message", "field"}}`` (and ``details`` where a refusal has facts a program
reads)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException

from rmreco.domain.errors import PolicyCurrencyError
from rmreco.serving.schemas import ErrorResponse
from rmreco.serving.security import bearer_key

log = logging.getLogger(__name__)

#: Seconds a client should wait before retrying a 503.
RETRY_AFTER_SECONDS = "5"

#: The error answers a route may give, for its OpenAPI ``responses``: each is the one error body.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (401, "No API key, or one that is not valid (`unauthenticated`)."),
        (403, "The caller's role may not do this (`forbidden`)."),
        (404, "Not found, or not in the caller's portfolio (`not_found`)."),
        (409, "The request conflicts with what is recorded or loaded."),
        (413, "The body is larger than the service reads (`too_large`)."),
        (415, "A body that is not JSON (`unsupported_media_type`)."),
        (422, "The request is not valid (`invalid`; `field` names what)."),
        (429, "Too many requests, or too many invalid keys (`Retry-After` says how long)."),
        (503, "Not available now: models loading, database down (`Retry-After`)."),
    )
}

#: The code of each status that Starlette or FastAPI answer by themselves (routing, body reading).
_FRAMEWORK_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ApiError(Exception):
    """An answer other than 200, with the stable error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}
        #: machine-readable facts of the refusal (e.g. the segments a model serves)
        self.details = details


def not_found(what: str = "not found") -> ApiError:
    """A 404 saying ``what`` was not found."""
    return ApiError(404, "not_found", what)


#: The challenge of a 401 (RFC 6750): the scheme the service takes.
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def key_needed() -> ApiError:
    """The 401 of a request without an API key."""
    return ApiError(
        401,
        "unauthenticated",
        "an API key is needed: Authorization: Bearer <key>",
        headers=CHALLENGE,
    )


def key_not_valid() -> ApiError:
    """The 401 of a key that is unknown, revoked or wrong."""
    return ApiError(
        401,
        "unauthenticated",
        "the API key is not valid",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def unavailable(message: str) -> ApiError:
    """A retryable 503 (with ``Retry-After``)."""
    return ApiError(503, "unavailable", message, headers={"Retry-After": RETRY_AFTER_SECONDS})


def _body(
    code: str, message: str, field: str | None = None, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "field": field}
    if details is not None:
        error["details"] = details
    return {"error": error}


#: The parts of a validation error's location that say where, not which field.
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def _body_not_json(request: Request, exc: RequestValidationError) -> bool:
    """Whether ``exc`` is about a body that was sent but not as JSON: FastAPI hands such a body
    to validation as bytes instead of refusing its media type."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        return False
    # a missing body is a 422 whatever its media type; any other error of the body is the bytes
    return any(
        e.get("loc", ())[:1] == ("body",) and e.get("type") != "missing" for e in exc.errors()
    )


#: Where every operation needs an API key.
_KEYED_PATHS = "/v1/"


def _answer(exc: ApiError) -> JSONResponse:
    return JSONResponse(
        _body(exc.code, exc.message, exc.field, exc.details),
        status_code=exc.status,
        headers=exc.headers,
    )


def _unreadable_body(request: Request, reason: str) -> JSONResponse:
    """The answer to a body that cannot be read as JSON. FastAPI reads the body before the
    dependencies authenticate the caller, so a caller who sent no key to an operation that needs
    one is told 401 here: without a key, the answer is 401 whatever else the request holds."""
    if (
        request.url.path.startswith(_KEYED_PATHS)
        and bearer_key(request.headers.get("authorization")) is None
    ):
        return _answer(key_needed())
    message = f"the body is not valid JSON: {reason}" if reason else "the body is not valid JSON"
    return JSONResponse(_body("invalid", message), status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with the one error body."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _answer(exc)

    @app.exception_handler(PolicyCurrencyError)
    async def policy_currency(_: Request, exc: PolicyCurrencyError) -> JSONResponse:
        # the data and the credit policy disagree: no answer until the policy states amounts
        # in the data's currency (the message names the file and the key to add)
        return JSONResponse(
            _body(
                "policy_currency",
                str(exc),
                details={
                    "currency": exc.currency,
                    "policy_currencies": list(exc.policy_currencies),
                    "policy_file": exc.policy_file,
                    "key": exc.key,
                    "amounts": list(exc.amounts),
                },
            ),
            status_code=409,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            # its location is a character offset, not a field
            return _unreadable_body(request, str((first.get("ctx") or {}).get("error", "")))
        if _body_not_json(request, exc):
            return JSONResponse(
                _body(
                    "unsupported_media_type",
                    "the body must be JSON, sent with Content-Type: application/json",
                ),
                status_code=415,
            )
        loc = [str(p) for p in first.get("loc", ()) if p not in _LOCATIONS]
        field = ".".join(loc) or None
        message = first.get("msg", "invalid request")
        return JSONResponse(
            _body("invalid", f"{field}: {message}" if field else message, field), status_code=422
        )

    # Starlette's own exception, which routing (404, 405) and FastAPI's body reading raise; the
    # handler of FastAPI's subclass alone would leave those answers in Starlette's shape
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI could not read the body (not UTF-8, say): the same refusal as a body
            # that is not valid JSON
            return _unreadable_body(request, "")
        code = _FRAMEWORK_CODES.get(exc.status_code, "error")
        return JSONResponse(
            _body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeoutError)  # no connection freed within the pool timeout
    async def database_down(_: Request, exc: Exception) -> JSONResponse:
        log.error("database error: %s", type(exc).__name__)
        return JSONResponse(
            _body("unavailable", "the database is not available; try again"),
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(_body("internal", "internal error"), status_code=500)
