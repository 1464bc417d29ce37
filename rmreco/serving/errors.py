"""This module owns how the service says no: :class:`ApiError` (an answer other than 200 with a
stable code), the responses the routes declare for it, and the handlers that turn every error
(ours, request validation, routing, the database, the unexpected) into one JSON body:
``{"error": {"code", "message", "field"}}`` (and ``details`` where a refusal has facts a program
reads)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError

from rmreco.domain.errors import PolicyCurrencyError
from rmreco.serving.schemas import ErrorResponse

log = logging.getLogger(__name__)

#: Seconds a client should wait before retrying a 503.
RETRY_AFTER_SECONDS = "5"

#: The error answers a route may give, for its OpenAPI ``responses``.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 422, 503)
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


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with the one error body."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            _body(exc.code, exc.message, exc.field, exc.details),
            status_code=exc.status,
            headers=exc.headers,
        )

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
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or None
        message = first.get("msg", "invalid request")
        return JSONResponse(
            _body("invalid", f"{field}: {message}" if field else message, field), status_code=422
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return JSONResponse(_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
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
