"""This module owns the workspace's sign-ins in the database: starting one, finding whose a
browser's token is, ending one, and forgetting those that ended. Each function takes a session
and never commits (the request owns the transaction); plain values leave it, never ORM objects.

The browser's token is random (256 bits) and only its sha256 is stored, so reading the table
signs no one in. A sign-in lasts until it expires, the user signs out, or the user's key is
revoked: :func:`session_user` reads the user with the sign-in, on every page.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from rmreco.db import schema
from rmreco.db.repository import UserRecord

_sessions = schema.WebSession.__table__
_users = schema.User.__table__


@dataclass(frozen=True)
class SignIn:
    """A new sign-in: the token for the browser's cookie and its forms' CSRF token."""

    token: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class SignedIn:
    """Whose a valid token is, and the CSRF token its forms must carry."""

    user: UserRecord
    csrf_token: str


def token_sha256(token: str) -> str:
    """The stored form of a browser's token."""
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user_id: int, lasts: timedelta) -> SignIn:
    """Sign ``user_id`` in for ``lasts``: a new random token and CSRF token."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session.execute(
        insert(schema.WebSession).values(
            token_sha256=token_sha256(token),
            user_id=user_id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + lasts,
        )
    )
    return SignIn(token=token, csrf_token=csrf, expires_at=now + lasts)


def session_user(session: Session, token: str) -> SignedIn | None:
    """The user a browser's token signs in, with its CSRF token; None for a token that is
    unknown, expired or whose user's key is revoked."""
    row = session.execute(
        select(
            _users.c.id,
            _users.c.name,
            _users.c.role,
            _users.c.rm_id,
            _users.c.api_key_hash,
            _users.c.revoked_at,
            _sessions.c.csrf_token,
            _sessions.c.expires_at,
        )
        .join(_users, _users.c.id == _sessions.c.user_id)
        .where(_sessions.c.token_sha256 == token_sha256(token))
    ).first()
    if row is None or row.revoked_at is not None or _is_past(row.expires_at):
        return None
    user = UserRecord(
        id=row.id,
        name=row.name,
        role=row.role,
        rm_id=row.rm_id,
        api_key_hash=row.api_key_hash,
        is_revoked=False,
    )
    return SignedIn(user=user, csrf_token=row.csrf_token)


def end_session(session: Session, token: str) -> None:
    """Sign a browser out: its token signs no one in from now on."""
    session.execute(
        delete(schema.WebSession).where(schema.WebSession.token_sha256 == token_sha256(token))
    )


def forget_ended_sessions(session: Session, now: datetime | None = None) -> int:
    """Delete the sign-ins that expired; how many."""
    result = session.execute(
        delete(schema.WebSession).where(schema.WebSession.expires_at < (now or datetime.now(UTC)))
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _is_past(when: datetime) -> bool:
    # SQLite gives timestamps back without their zone; they are UTC
    return (when if when.tzinfo else when.replace(tzinfo=UTC)) <= datetime.now(UTC)
