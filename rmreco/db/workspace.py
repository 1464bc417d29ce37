"""This module owns what the workspace pages read from the database beyond the API's own
queries: an RM's whole portfolio (clients without a snapshot too), one client's account history
and feedback, and the relationship managers an admin picks from. Each function takes a session
and never commits; plain values leave it, never ORM objects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from rmreco.db import schema
from rmreco.db.repository import CLIENT_VIEW, ClientView, client_view

_clients = schema.Client.__table__
_snapshots = schema.ClientFeatures.__table__
_months = schema.AccountMonth.__table__
_feedback = schema.Feedback.__table__
_recommendations = schema.Recommendation.__table__
_managers = schema.RelationshipManager.__table__
_users = schema.User.__table__

#: The account-history columns the client view draws, when the bank has them.
HISTORY_COLUMNS: tuple[str, ...] = (
    "balance_avg",
    "balance_min",
    "balance_max",
    "credit_turnover",
    "debit_turnover",
    "overdraft_limit",
    "overdraft_peak_use",
    "days_in_overdraft",
    "dpd_max",
)


@dataclass(frozen=True)
class PortfolioClient:
    """A client of a portfolio as the list shows it, with its snapshot (None without one)."""

    view: ClientView
    name: str | None
    sector: str | None
    region: str | None


@dataclass(frozen=True)
class FeedbackEntry:
    """One report of what came of an offer to a client."""

    product_code: str | None
    outcome: str
    reason: str | None
    amount: float | None
    created_at: datetime
    reported_by: str


@dataclass(frozen=True)
class Manager:
    rm_id: str
    name: str
    role: str


def portfolio_clients(session: Session, rm_id: str) -> list[PortfolioClient]:
    """Every client of ``rm_id``, with its feature snapshot where it has one, by client id."""
    rows = session.execute(
        select(*CLIENT_VIEW.selected_columns, _clients.c.sector, _clients.c.region)
        .outerjoin(_snapshots, _snapshots.c.client_id == _clients.c.client_id)
        .where(_clients.c.rm_id == rm_id)
        .order_by(_clients.c.client_id)
    ).all()
    width = len(CLIENT_VIEW.selected_columns)
    clients = []
    for row in rows:
        view = client_view(row)
        clients.append(
            PortfolioClient(
                view=view, name=view.client_name, sector=row[width], region=row[width + 1]
            )
        )
    return clients


def account_history(session: Session, client_id: str, since: date | None = None) -> pd.DataFrame:
    """The client's account months (from ``since``), one row per month, oldest first; the
    :data:`HISTORY_COLUMNS` (NaN where the bank left a value out)."""
    query = select(_months.c.month, *[_months.c[c] for c in HISTORY_COLUMNS]).where(
        _months.c.client_id == client_id
    )
    if since is not None:
        query = query.where(_months.c.month >= since)
    frame = pd.DataFrame(
        session.execute(query.order_by(_months.c.month)).all(),
        columns=["month", *HISTORY_COLUMNS],
    )
    for column in HISTORY_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def client_feedback(session: Session, client_id: str, limit: int = 50) -> list[FeedbackEntry]:
    """What RMs reported of offers to the client, newest first."""
    rows = session.execute(
        select(
            _feedback.c.product_code,
            _feedback.c.outcome,
            _feedback.c.reason,
            _feedback.c.amount,
            _feedback.c.created_at,
            _users.c.name,
        )
        .join(_users, _users.c.id == _feedback.c.user_id)
        .where(_feedback.c.client_id == client_id)
        .order_by(_feedback.c.created_at.desc(), _feedback.c.id.desc())
        .limit(limit)
    ).all()
    return [
        FeedbackEntry(
            product_code=r[0],
            outcome=r[1],
            reason=r[2],
            amount=None if r[3] is None else float(r[3]),
            created_at=r[4],
            reported_by=r[5],
        )
        for r in rows
    ]


def managers(session: Session) -> list[Manager]:
    """Every relationship manager, by id."""
    rows = session.execute(
        select(_managers.c.rm_id, _managers.c.name, _managers.c.role).order_by(_managers.c.rm_id)
    ).all()
    return [Manager(rm_id=r[0], name=r[1], role=r[2]) for r in rows]


def client_names(session: Session, client_ids: list[str]) -> dict[str, str | None]:
    """The names of the clients ``client_ids`` (None where the bank gave none)."""
    if not client_ids:
        return {}
    rows = session.execute(
        select(_clients.c.client_id, _clients.c.name).where(_clients.c.client_id.in_(client_ids))
    ).all()
    return {str(r[0]): r[1] for r in rows}
