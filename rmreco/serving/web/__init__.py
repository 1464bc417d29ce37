"""This package owns the RM workspace in the browser: server-rendered pages on the same rights,
audit trail and models as the API (sign-in, the portfolio, the client view and its financing
request, the cross-sell list, the KPIs), their templates, stylesheet and charts, every asset
served by the app itself."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker
from starlette.staticfiles import StaticFiles

from rmreco.db.web_sessions import forget_ended_sessions
from rmreco.serving.runtime import forget_in_background
from rmreco.serving.web import kpi_pages, lists, pages, signin

STATIC = Path(__file__).resolve().parent / "static"


def install_workspace(app: FastAPI) -> None:
    """Add the workspace's pages and assets to ``app``."""
    app.include_router(signin.router)
    app.include_router(pages.router)
    app.include_router(lists.router)
    app.include_router(kpi_pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


async def forget_ended(factory: sessionmaker[Session], every_seconds: float) -> None:
    """Forget expired sign-ins now and every ``every_seconds``, off the request path. Never
    raises."""
    await forget_in_background(
        factory, every_seconds, forget_ended_sessions, "expired workspace sign-ins"
    )
