"""The routes, one module per resource, each with its own router; :data:`ROUTERS` lists them
in the order the app includes them.

Every recommendation served is written to ``recommendations`` with who asked, the client, the
model versions, the policy version, the exact feature values the model saw, the request and the
output, and committed before the answer leaves.
"""

from __future__ import annotations

from fastapi import APIRouter

from rmreco.serving.routes import cross_sell, feedback, financing, health, kpis, models

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    models.router,
    financing.router,
    feedback.router,
    kpis.router,
    cross_sell.router,
)
