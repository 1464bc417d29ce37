"""This module owns the served models' resource: which versions are in use with their headline
metrics, and the admin's reload (follow the champion aliases now)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from rmreco.domain.names import UserRole
from rmreco.serving.deps import Principal, PrincipalDep, RuntimeDep, SessionDep, require
from rmreco.serving.errors import ERROR_RESPONSES
from rmreco.serving.idempotency import IdempotencyDep
from rmreco.serving.runtime import Runtime
from rmreco.serving.schemas import ModelsAnswer, ServedModelInfo

router = APIRouter(tags=["models"], responses=ERROR_RESPONSES)

#: The test metrics each model's entry shows.
HEADLINE_METRICS = ("oot_auc", "oot_gini", "oot_brier", "oracle_oot_auc", "oot_map_at_5")


def _models_answer(runtime: Runtime) -> ModelsAnswer:
    store = runtime.store
    return ModelsAnswer(
        models=[
            ServedModelInfo(
                name=s.name,
                version=s.version,
                source=s.source,
                metrics={k: v for k, v in s.metrics.items() if k in HEADLINE_METRICS},
            )
            for s in store.current.values()
        ],
        registry="unreachable" if store.registry_error else "ok",
        errors=dict(store.last_errors),
    )


@router.get("/v1/models", response_model=ModelsAnswer)
def models(runtime: RuntimeDep, _: PrincipalDep) -> ModelsAnswer:
    """The model versions in use and their headline test metrics."""
    return _models_answer(runtime)


@router.post("/v1/admin/models/reload", response_model=ModelsAnswer)
def reload_models(
    runtime: RuntimeDep,
    _: Annotated[Principal, require(UserRole.ADMIN)],
    session: SessionDep,
    idempotency: IdempotencyDep,
) -> Any:
    """Follow the champion aliases now instead of at the next poll. With an
    ``Idempotency-Key``, a retry gets the first answer and does not reload again."""
    if (replayed := idempotency.replay(session)) is not None:
        return replayed
    runtime.store.refresh()
    return idempotency.commit(session, _models_answer(runtime), status=200)
