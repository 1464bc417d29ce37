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

from fastapi import FastAPI

from rmreco import __version__
from rmreco.config import Settings
from rmreco.db import repository as repo
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.features.config import SnapshotParams
from rmreco.features.snapshots import stored_params
from rmreco.modeling.policy import load_policy
from rmreco.serving.errors import install_error_handlers
from rmreco.serving.model_store import ModelStore
from rmreco.serving.routes import ROUTERS
from rmreco.serving.runtime import Runtime, served_kinds

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    tracking_uri: str | None = None,
    policy_path: Path | None = None,
    poll_seconds: float = 30.0,
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
        engine = create_engine_for(settings.resolved_database_url)
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
    install_error_handlers(app)
    for router in ROUTERS:
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
