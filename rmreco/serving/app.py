"""The FastAPI application factory: settings in, app out; the lifespan opens the database and
loads the models; errors leave as one JSON shape; authorisation is one dependency."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from rmreco import __version__
from rmreco.config import Settings
from rmreco.db import repository as repo
from rmreco.db.engine import create_engine_for, session_factory
from rmreco.modeling.decisioning import CreditPolicy, load_policy
from rmreco.serving.model_store import ModelStore, credit_kind, propensity_kind
from rmreco.serving.security import key_matches, key_prefix

log = logging.getLogger(__name__)

CREDIT_MODEL = "rmreco-sme-credit-risk"
CROSS_SELL_MODEL = "rmreco-cross-sell"
DEFAULT_POLICY = Path("models/credit_policy.yaml")
RETRY_AFTER_SECONDS = "5"


class ApiError(Exception):
    """An answer other than 200, with the stable error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


def not_found(what: str = "not found") -> ApiError:
    return ApiError(404, "not_found", what)


def unavailable(message: str) -> ApiError:
    return ApiError(503, "unavailable", message, headers={"Retry-After": RETRY_AFTER_SECONDS})


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: int
    name: str
    role: str
    rm_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def sees_rm(self, rm_id: str | None) -> bool:
        """Object-level rule: an RM sees only their own portfolio; admins see every one."""
        return self.is_admin or (self.rm_id is not None and self.rm_id == rm_id)


@dataclass
class Runtime:
    settings: Settings
    factory: sessionmaker[Session]
    store: ModelStore
    policy: CreditPolicy
    poll_seconds: float
    catalog_seconds: float = 60.0
    _reference: tuple[float, list[dict[str, Any]], str] | None = None
    #: Scored cross-sell portfolios by RM (least recently used first), each with the key it
    #: is valid for: the portfolio's snapshot stamp and the model versions.
    portfolios: OrderedDict[str, tuple[Any, Any]] = field(default_factory=OrderedDict)
    portfolio_cache_size: int = 256

    def _reference_data(self, session: Session) -> tuple[float, list[dict[str, Any]], str]:
        # read at most once a minute: the catalog and the currency change only with a load
        now = time.monotonic()
        if self._reference is None or now - self._reference[0] > self.catalog_seconds:
            currency = repo.data_currency(session) or self.settings.currency
            self._reference = (now, repo.catalog(session), currency)
        return self._reference

    def catalog(self, session: Session) -> list[dict[str, Any]]:
        """The product catalog."""
        return self._reference_data(session)[1]

    def currency(self, session: Session) -> str:
        """ISO 4217 code of the money in the loaded data (the latest load's, else the
        ``RMRECO_CURRENCY`` setting): every amount the service answers is in it."""
        return self._reference_data(session)[2]


# The dependencies are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its
# thread pool, and a thread hop per dependency cost more than the work itself (and let a key
# lookup in a worker thread hold the SQLite write lock while the route waited for it). Their
# database work is as short as the routes' own, which also run on the event loop.
async def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


async def _session(runtime: RuntimeDep) -> AsyncIterator[Session]:
    session = runtime.factory()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(_session)]


async def _principal(request: Request, session: SessionDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, "unauthenticated", "an API key is needed: Authorization: Bearer <key>")
    prefix = key_prefix(key.strip())
    user = repo.user_by_key_prefix(session, prefix) if prefix else None
    if user is None or user.is_revoked or not key_matches(key.strip(), user.api_key_hash):
        raise ApiError(401, "unauthenticated", "the API key is not valid")
    # the key was checked inside the transaction the route goes on with: a key revoked after
    # this read is refused from the next request on
    return Principal(user_id=user.id, name=user.name, role=user.role, rm_id=user.rm_id)


PrincipalDep = Annotated[Principal, Depends(_principal)]


def require(*roles: str) -> Any:
    """A dependency admitting only the given roles (admins always)."""

    async def check(principal: PrincipalDep) -> Principal:
        if principal.role not in roles and not principal.is_admin:
            raise ApiError(403, "forbidden", f"this needs one of the roles: {', '.join(roles)}")
        return principal

    return Depends(check)


def commit(session: Session) -> None:
    """Commit before the answer leaves; a failure is a retryable 503, never an unrecorded answer."""
    try:
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        log.error("could not record the answer: %s", type(exc).__name__)
        raise unavailable("the answer could not be recorded; try again") from None


def create_app(
    settings: Settings,
    *,
    tracking_uri: str | None = None,
    policy_path: Path | None = None,
    poll_seconds: float = 30.0,
) -> FastAPI:
    """The service. Nothing connects until the app starts (lifespan)."""
    policy = load_policy(policy_path or DEFAULT_POLICY)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # an unreachable registry should be noticed in seconds, not after minutes of retries
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        engine = create_engine_for(settings.resolved_database_url)
        factory = session_factory(engine)

        def check_rows() -> list[dict[str, Any]]:
            with factory() as session:
                return repo.sample_features(session)

        store = ModelStore(
            tracking_uri=tracking_uri or settings.resolved_tracking_uri,
            cache_dir=settings.home / "served-models",
            kinds=[credit_kind(CREDIT_MODEL), propensity_kind(CROSS_SELL_MODEL)],
            check_rows=check_rows,
        )
        app.state.runtime = Runtime(
            settings=settings,
            factory=factory,
            store=store,
            policy=policy,
            poll_seconds=poll_seconds,
        )
        # Start from the last good local copies, then ask the registry in the background: a
        # registry that is slow or down never holds the service's start-up.
        await asyncio.to_thread(store.load_local_copies)
        follower = asyncio.create_task(_follow(store, poll_seconds, first=0.0))
        try:
            yield
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            engine.dispose()

    app = FastAPI(
        title="rmreco",
        version=__version__,
        description="Credit decisions and financing options for business RMs, cross-sell lists "
        "for corporate RMs, feedback and KPIs. Authenticate with `Authorization: Bearer <key>` "
        "(keys from `rmreco users create`).",
        lifespan=lifespan,
    )
    _install_error_handlers(app)
    from rmreco.serving.routes import router

    app.include_router(router)
    return app


async def _follow(store: ModelStore, seconds: float, first: float) -> None:
    """Follow the champion aliases off the request path."""
    delay = first
    while True:
        await asyncio.sleep(delay)
        delay = seconds
        try:
            await asyncio.to_thread(store.refresh)
        except Exception:  # never let the follower die; the store records what went wrong
            log.exception("model refresh failed")


def _install_error_handlers(app: FastAPI) -> None:
    def body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
        return {"error": {"code": code, "message": message, "field": field}}

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            body(exc.code, exc.message, exc.field), status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or None
        message = first.get("msg", "invalid request")
        return JSONResponse(
            body("invalid", f"{field}: {message}" if field else message, field), status_code=422
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return JSONResponse(body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def database_down(_: Request, exc: Exception) -> JSONResponse:
        log.error("database error: %s", type(exc).__name__)
        return JSONResponse(
            body("unavailable", "the database is not available; try again"),
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(body("internal", "internal error"), status_code=500)


def database_ok(factory: sessionmaker[Session]) -> bool:
    try:
        with factory() as session:
            session.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        return False
