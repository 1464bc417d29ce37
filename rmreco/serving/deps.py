"""This module owns what the routes receive instead of checking it themselves: the runtime, the
request's session, the authenticated :class:`Principal`, role checks (:func:`require`) and the
portfolio rule, written once: an RM sees the clients, recommendations and KPIs of their own
portfolio, admins see every one, and anything else is a 404 that does not say whether it exists.

``PortfolioClient``, ``PortfolioRm`` and ``PortfolioRecommendation`` load the path's object,
check the caller's role (an RM role; admins always) and portfolio, and hand the route the
loaded value; a route that takes one of them holds no authorisation code.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from rmreco.db import repository as repo
from rmreco.domain.names import RM_ROLES, UserRole
from rmreco.serving.errors import ApiError, key_needed, key_not_valid, not_found
from rmreco.serving.runtime import Runtime
from rmreco.serving.security import bearer_key, key_matches, key_prefix


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: int
    name: str
    role: UserRole
    rm_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == UserRole.ADMIN

    def sees_rm(self, rm_id: str | None) -> bool:
        """Object-level rule: an RM sees only their own portfolio; admins see every one."""
        return self.is_admin or (self.rm_id is not None and self.rm_id == rm_id)


# Database work never runs on the event loop: a dependency or route that touches the database is
# a plain ``def``, which FastAPI runs in its thread pool, so a slow or locked database holds one
# thread, never every request (``/healthz`` answers throughout). Dependencies without database
# work stay ``async def``: a thread hop costs more than they do. FastAPI solves each dependency
# once per request, so the portfolio dependencies share the route's session and principal.
async def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


async def _database_slot(runtime: RuntimeDep) -> AsyncIterator[None]:
    # A request takes one of the worker's connections for its whole life (its transaction), so
    # at most as many requests as connections work at once; the others wait here, on the event
    # loop, and a request that waits too long is a 503 rather than a thread stuck on the pool.
    async with runtime.database_slot():
        yield


def _session(runtime: RuntimeDep, _: Annotated[None, Depends(_database_slot)]) -> Iterator[Session]:
    session = runtime.factory()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(_session)]


def _principal(request: Request, session: SessionDep) -> Principal:
    key = bearer_key(request.headers.get("authorization"))
    if key is None:
        raise key_needed()
    principal = _holder(session, key)
    if principal is None:
        raise key_not_valid()
    # checked against the database on every request: a key revoked after this read is refused
    # from the next request on
    return principal


PrincipalDep = Annotated[Principal, Depends(_principal)]


def _holder(session: Session, key: str) -> Principal | None:
    """Who holds ``key``; None for a key that is unknown, revoked or has the wrong secret."""
    prefix = key_prefix(key)
    user = repo.user_by_key_prefix(session, prefix) if prefix else None
    if user is None or user.is_revoked or not key_matches(key, user.api_key_hash):
        return None
    return Principal(user_id=user.id, name=user.name, role=UserRole(user.role), rm_id=user.rm_id)


def principal_for_key(session: Session, authorization: str | None) -> Principal | None:
    """The caller an ``Authorization: Bearer <key>`` header names, checked as every route checks
    it; None without a header, for another scheme, or for a key that is not valid (unknown,
    revoked, wrong secret). Never raises: for endpoints open to everyone that show more to some
    callers (``/readyz``)."""
    key = bearer_key(authorization)
    return None if key is None else _holder(session, key)


@functools.cache
def _role_check(
    roles: tuple[UserRole, ...],
) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    # one function per set of roles: FastAPI caches a dependency by its function, so the same
    # check asked by a route and by its portfolio dependency runs once
    async def check(principal: PrincipalDep) -> Principal:
        if principal.role not in roles and not principal.is_admin:
            raise ApiError(403, "forbidden", f"this needs one of the roles: {', '.join(roles)}")
        return principal

    return check


def require(*roles: UserRole) -> Any:
    """A dependency admitting only the given roles (admins always), for
    ``Annotated[Principal, require(...)]``.

    Raises:
        ApiError: 401 without a valid key, 403 for any other role.
    """
    return Depends(_role_check(roles))


#: The caller, who must hold an RM role (or be an admin).
RmPrincipalDep = Annotated[Principal, require(*(UserRole(r) for r in RM_ROLES))]


class _Owned(Protocol):
    """Anything in a portfolio: it names the relationship manager it belongs to."""

    @property
    def rm_id(self) -> str | None: ...


_T = TypeVar("_T", bound=_Owned)


def _seen(principal: Principal, found: _T | None, missing: str) -> _T:
    """``found`` when it exists and the caller sees its portfolio; else 404 ``missing``."""
    if found is None or not principal.sees_rm(found.rm_id):
        raise not_found(missing)
    return found


def _portfolio_client(
    principal: RmPrincipalDep, session: SessionDep, client_id: str
) -> repo.ClientView:
    client = repo.client_with_features(session, client_id)
    return _seen(principal, client, "no such client in your portfolio")


#: The path's ``client_id``, loaded with its feature snapshot; 404 unless it is in the caller's
#: portfolio.
PortfolioClient = Annotated[repo.ClientView, Depends(_portfolio_client)]


def _portfolio_rm(principal: RmPrincipalDep, session: SessionDep, rm_id: str) -> str:
    if not principal.sees_rm(rm_id) or not repo.rm_exists(session, rm_id):
        raise not_found("no such relationship manager")
    return rm_id


#: The path's ``rm_id``; 404 unless the caller sees that relationship manager and it exists.
PortfolioRm = Annotated[str, Depends(_portfolio_rm)]


def _portfolio_recommendation(
    principal: RmPrincipalDep, session: SessionDep, recommendation_id: str
) -> repo.RecommendationRecord:
    record = repo.recommendation(session, recommendation_id)
    return _seen(principal, record, "no such recommendation in your portfolio")


#: The path's ``recommendation_id``, loaded; 404 unless its client is in the caller's portfolio.
PortfolioRecommendation = Annotated[repo.RecommendationRecord, Depends(_portfolio_recommendation)]
