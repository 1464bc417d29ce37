"""This module owns the probes: ``/healthz`` (the process is up) and ``/readyz`` (models loaded
and database reachable)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from rmreco.serving.deps import RuntimeDep
from rmreco.serving.errors import RETRY_AFTER_SECONDS
from rmreco.serving.runtime import database_ok
from rmreco.serving.schemas import ReadyAnswer

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyAnswer, responses={503: {"model": ReadyAnswer}})
async def readyz(runtime: RuntimeDep) -> ReadyAnswer | JSONResponse:
    """Models loaded and database reachable; says which versions and whether the registry
    answers."""
    store = runtime.store
    db_ok = await asyncio.to_thread(database_ok, runtime.factory)
    answer = ReadyAnswer(
        ready=db_ok and store.is_ready(),
        database="ok" if db_ok else "unreachable",
        registry="unreachable" if store.registry_error else "ok",
        models=store.versions(),
        errors={
            **store.last_errors,
            **({"registry": store.registry_error} if store.registry_error else {}),
        },
    )
    if not answer.ready:
        return JSONResponse(
            answer.model_dump(), status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS}
        )
    return answer
