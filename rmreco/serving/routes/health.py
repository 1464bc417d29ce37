"""This module owns the probes, ``/healthz`` (the process is up) and ``/readyz`` (models loaded,
database reachable, feature snapshots of the latest load), and the service's completion of a
feature refresh a load left owed (:func:`complete_owed_refresh`, started by the app's lifespan).

``/readyz`` is open to every caller, since load balancers call it without a key; what it tells
everyone is whether the service is ready and why not in one word per part. The versions served
and the error texts (which may name the registry's host or a path) are for a caller with a valid
admin or data_scientist key only; any other caller, including one with a key that is not valid,
gets the public answer (a load balancer configured with a revoked key keeps working).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from rmreco.config import Settings
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.domain.names import UserRole
from rmreco.features.config import shared_snapshot_params
from rmreco.features.snapshots import SnapshotState, refresh_if_owed, snapshot_state
from rmreco.serving.deps import Principal, RuntimeDep, principal_for_key
from rmreco.serving.errors import RETRY_AFTER_SECONDS
from rmreco.serving.model_store import ModelStore
from rmreco.serving.schemas import ReadyAnswer

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

#: The roles shown the details of ``/readyz`` (versions and error texts).
DETAIL_ROLES: frozenset[UserRole] = frozenset({UserRole.ADMIN, UserRole.DATA_SCIENTIST})
#: The error key under which ``/readyz`` explains an owed or failed feature refresh.
FEATURE_REFRESH = "feature_refresh"


@dataclass
class RefreshRepair:
    """The service's completion of an owed feature refresh, as ``/readyz`` reports it."""

    #: why the last attempt failed (None: none failed, or the last one succeeded)
    error: str | None = None


@dataclass(frozen=True)
class _Look:
    """What ``/readyz`` read from the database."""

    database_ok: bool
    state: SnapshotState | None = None
    #: why the snapshots' state could not be read while the database answers
    state_error: str | None = None
    caller: Principal | None = None


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyAnswer, responses={503: {"model": ReadyAnswer}})
async def readyz(request: Request, runtime: RuntimeDep) -> ReadyAnswer | JSONResponse:
    """Ready: a credit model served, the database reachable and the feature snapshots of the
    latest load. Models and errors only for an admin or data_scientist key."""
    store = runtime.store
    look = await asyncio.to_thread(_look, runtime.factory, request.headers.get("authorization"))
    owed = None if look.state is None else look.state.owed
    answer = ReadyAnswer(
        ready=look.database_ok and store.is_ready() and owed is False,
        database="ok" if look.database_ok else "unreachable",
        registry="unreachable" if store.registry_error else "ok",
        refresh_owed=owed,
    )
    if look.caller is not None and look.caller.role in DETAIL_ROLES:
        answer.models = store.versions()
        answer.errors = {
            **store.last_errors,
            **({"registry": store.registry_error} if store.registry_error else {}),
            **_refresh_errors(look, getattr(request.app.state, "feature_refresh", None)),
        }
    if not answer.ready:
        return JSONResponse(
            answer.model_dump(), status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS}
        )
    return answer


def _look(factory: sessionmaker[Session], authorization: str | None) -> _Look:
    """Read the snapshots' state and the caller, each in a short read-only transaction (it never
    waits for SQLite's write lock, which a refresh holds for its whole run)."""
    try:
        with transaction(factory, read_only=True) as session:
            state = snapshot_state(session)
    except SQLAlchemyError as exc:
        try:  # the database answers, but not about the snapshots (a schema not migrated?)
            with transaction(factory, read_only=True) as session:
                session.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return _Look(database_ok=False)
        return _Look(database_ok=True, state_error=f"{type(exc).__name__}: {exc}")
    caller = None
    if authorization:
        try:
            with transaction(factory, read_only=True) as session:
                caller = principal_for_key(session, authorization)
        except SQLAlchemyError:
            caller = None  # the public answer: it says the database is fine, which it was
    return _Look(database_ok=True, state=state, caller=caller)


def _refresh_errors(look: _Look, repair: RefreshRepair | None) -> dict[str, str]:
    if look.state_error is not None:
        return {FEATURE_REFRESH: f"the feature snapshots' state cannot be read: {look.state_error}"}
    if look.state is None or not look.state.owed:
        return {}
    said = (
        f"a feature refresh is owed: {look.state.describe()}; the service completes it in the "
        "background, as does `rmreco features refresh`"
    )
    if repair is not None and repair.error is not None:
        said += f"; the service's last attempt failed: {repair.error}"
    return {FEATURE_REFRESH: said}


async def complete_owed_refresh(app: FastAPI, settings: Settings, retry_seconds: float) -> None:
    """Complete a feature refresh a load left owed (a process killed between a load and its
    refresh), off the event loop, trying again every ``retry_seconds`` until it succeeds. The
    refresh uses the builder settings of the stored snapshots, else those of the served models
    (their defaults without any). Never raises; ``app.state.feature_refresh`` (a
    :class:`RefreshRepair`) says how the last attempt went."""
    repair = RefreshRepair()
    app.state.feature_refresh = repair
    while True:
        try:
            written = await asyncio.to_thread(_refresh_if_owed, settings, app.state.runtime.store)
        except Exception as exc:  # the database or the models' settings: say it, try again
            repair.error = f"{type(exc).__name__}: {exc}"
            log.exception("the owed feature refresh failed; trying again in %.0f s", retry_seconds)
            await asyncio.sleep(retry_seconds)
            continue
        repair.error = None
        if written is not None:
            log.warning("completed the feature refresh a load left owed: %d clients", written)
        return


def _refresh_if_owed(settings: Settings, store: ModelStore) -> int | None:
    # an engine of its own: without the service's statement timeout (a refresh of a large book
    # runs longer than any request may), and with no request waiting for its connections
    engine = create_engine_for(
        settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous
    )
    try:
        factory = session_factory(engine)
        with transaction(factory, read_only=True) as session:
            if not snapshot_state(session).owed:  # the usual start: nothing to lock for
                return None
        fallback = shared_snapshot_params(
            {name: served.model.config for name, served in store.current.items()}
        )
        with transaction(factory) as session:
            return refresh_if_owed(session, fallback)
    finally:
        engine.dispose()
