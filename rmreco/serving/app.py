"""This module owns the FastAPI application factory: settings in, app out. The lifespan opens
the database and loads the models once; the routers come from :mod:`rmreco.serving.routes`.
Nothing in the service imports this module back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI

from rmreco import __version__
from rmreco.config import Settings
from rmreco.db import repository as repo
from rmreco.db.engine import ServiceLimits, create_engine_for, session_factory, transaction
from rmreco.features.config import SnapshotParams
from rmreco.features.snapshots import stored_params
from rmreco.modeling.policy import load_policy
from rmreco.serving.api_docs import add_api_docs
from rmreco.serving.errors import install_error_handlers
from rmreco.serving.idempotency import FORGET_EVERY_SECONDS, forget_expired
from rmreco.serving.limits import install_limits
from rmreco.serving.model_store import ModelStore
from rmreco.serving.routes import ROUTERS
from rmreco.serving.routes.health import complete_owed_refresh
from rmreco.serving.runtime import Runtime, served_kinds
from rmreco.serving.web import forget_ended, install_workspace

log = logging.getLogger(__name__)

#: How often the service follows the champion aliases unless told otherwise (seconds).
DEFAULT_POLL_SECONDS = 30.0


def create_app(
    settings: Settings,
    *,
    tracking_uri: str | None = None,
    policy_path: Path | None = None,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
) -> FastAPI:
    """The service. Nothing connects until the app starts (lifespan).

    Args:
        settings: environment and secrets (database, home, tracking URI, models folder).
        tracking_uri: the MLflow registry to follow; default the settings'.
        policy_path: the credit policy; default ``settings.policy_path`` (the models folder).
        poll_seconds: how often to follow the champion aliases.
    """
    policy = load_policy(policy_path or settings.policy_path)
    kinds = served_kinds(settings.resolved_models_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # an unreachable registry should be noticed in seconds, not after minutes of retries
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        engine = create_engine_for(
            settings.resolved_database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            limits=ServiceLimits(
                pool_size=settings.db_pool_size,
                pool_timeout_seconds=settings.db_pool_timeout_seconds,
                lock_timeout_ms=settings.db_lock_timeout_ms,
                statement_timeout_ms=settings.db_statement_timeout_ms,
            ),
        )
        # the threads that run database work are at least as many as the connections
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(limiter.total_tokens, settings.db_pool_size + 8)
        factory = session_factory(engine)

        # Read-only: the store reads while a request may hold SQLite's write lock (an admin's
        # reload waits for the store inside its own transaction), so these reads must not ask
        # for it.
        def check_rows() -> list[dict[str, Any]]:
            with transaction(factory, read_only=True) as session:
                return repo.sample_features(session)

        def snapshot_params() -> list[SnapshotParams | None]:
            with transaction(factory, read_only=True) as session:
                return stored_params(repo.snapshot_params(session))

        store = ModelStore(
            tracking_uri=tracking_uri or settings.resolved_tracking_uri,
            cache_dir=settings.home / "served-models",
            kinds=kinds,
            check_rows=check_rows,
            snapshot_params=snapshot_params,
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
        # a load whose feature refresh was cut short (a kill between the two) is completed in
        # the background; /readyz says not ready until it is
        repair = asyncio.create_task(complete_owed_refresh(app, settings, poll_seconds))
        forgetting = asyncio.create_task(forget_expired(factory, FORGET_EVERY_SECONDS))
        signed_out = asyncio.create_task(forget_ended(factory, FORGET_EVERY_SECONDS))
        try:
            yield
        finally:
            for task in (follower, repair, forgetting, signed_out):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            engine.dispose()

    app = FastAPI(
        title="rmreco",
        version=__version__,
        description="Credit decisions and financing options for business RMs, cross-sell lists "
        "for corporate RMs, feedback and KPIs. Authenticate with `Authorization: Bearer <key>` "
        "(keys from `rmreco users create`).",
        lifespan=lifespan,
        # FastAPI's own pages load Swagger UI and ReDoc from a CDN: add_api_docs serves them
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    # before routing and authentication: a body or a caller over the limits costs no work
    install_limits(app, settings)
    for router in ROUTERS:
        app.include_router(router)
    install_workspace(app)
    add_api_docs(app)
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
