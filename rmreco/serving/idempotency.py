"""This module owns ``Idempotency-Key`` on the mutating POSTs: a client that did not hear an
answer (a timeout, a dropped connection) sends the request again with the same key and gets the
same answer, while the database records the work once.

The answer is stored with the key in the transaction that records the work, so the key is
remembered if and only if the work is. Two requests with one key that arrive together both do
the work, but only one can store the key: the other's transaction fails on the key's primary key
and is rolled back, and it answers with the winner's stored answer. A key is the caller's own
(keyed by user), is bound to one operation and one request body (another body with the same key
is a 422), and is remembered for :data:`KEY_LIFETIME`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from rmreco.db import repository as repo
from rmreco.serving.deps import PrincipalDep
from rmreco.serving.errors import ApiError
from rmreco.serving.runtime import commit, forget_in_background

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
#: How long a key is remembered: a retry comes within minutes; a day covers a client that
#: retries after an outage.
KEY_LIFETIME = timedelta(hours=24)
#: Answer header telling the client it got the stored answer of an earlier request.
REPLAYED_HEADER = "Idempotent-Replayed"
#: How often the service forgets the answers of expired keys.
FORGET_EVERY_SECONDS = 3600.0


@dataclass
class Idempotency:
    """The request's idempotency key (None without one), its caller, operation and body hash."""

    key: str | None
    user_id: int
    operation: str
    request_sha256: str
    #: Whether :meth:`replay` found the key's answer expired: :meth:`commit` then forgets it
    #: before storing the new one (the only case where a request deletes anything).
    expired_seen: bool = field(default=False, compare=False)

    def replay(self, session: Session) -> JSONResponse | None:
        """The stored answer of an earlier request with this key, or None (no key, or none
        stored yet).

        Raises:
            ApiError: 422 ``idempotency_key_reused`` when the key was used for another
                operation or another body.
        """
        if self.key is None:
            return None
        stored = repo.stored_answer(session, self.user_id, self.key)
        if stored is None:
            return None
        if _expired(stored.created_at):
            self.expired_seen = True
            return None
        if stored.operation != self.operation or stored.request_sha256 != self.request_sha256:
            raise ApiError(
                422,
                "idempotency_key_reused",
                f"this {HEADER} was used for another request; use a new key for a new request",
                field=HEADER,
            )
        return JSONResponse(
            stored.body, status_code=stored.status, headers={REPLAYED_HEADER: "true"}
        )

    def commit(self, session: Session, answer: BaseModel, status: int) -> Response:
        """Store ``answer`` under the key (with a key) and commit the request's transaction;
        the response to send: ``answer``, or the stored answer of a request with the same key
        that committed first (this request's work is then rolled back).

        The answer is serialised once, here, for both the database and the response (the
        route's ``response_model`` still documents it; FastAPI does not validate and
        serialise it again).

        Raises:
            ApiError: 503 when the transaction cannot be committed.
        """
        if self.key is None:
            commit(session)
            return Response(
                answer.model_dump_json(by_alias=True),
                status_code=status,
                media_type="application/json",
            )
        body = answer.model_dump(mode="json", by_alias=True)
        try:
            repo.store_answer(
                session,
                user_id=self.user_id,
                key=self.key,
                operation=self.operation,
                request_sha256=self.request_sha256,
                status=status,
                body=body,
                forget_before=(datetime.now(UTC) - KEY_LIFETIME) if self.expired_seen else None,
            )
            commit(session)
        except IntegrityError:
            session.rollback()
            replayed = self.replay(session)
            if replayed is None:
                raise
            return replayed
        return JSONResponse(body, status_code=status)


def _expired(created_at: datetime) -> bool:
    # SQLite gives timestamps back without their zone; they are UTC
    when = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    return when < datetime.now(UTC) - KEY_LIFETIME


async def _idempotency(
    request: Request,
    principal: PrincipalDep,
    key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            min_length=1,
            max_length=255,
            description="A key of the client's choosing (a UUID): a retry with the same key "
            "gets the first answer and records nothing twice. Remembered for 24 hours.",
        ),
    ] = None,
) -> Idempotency:
    if key is None:  # the common case: nothing to remember, nothing to hash
        return Idempotency(key=None, user_id=principal.user_id, operation="", request_sha256="")
    # FastAPI has read the body already (it parsed it); this is the cached copy
    body = await request.body()
    return Idempotency(
        key=key,
        user_id=principal.user_id,
        operation=f"{request.method} {request.url.path}",
        request_sha256=hashlib.sha256(body).hexdigest(),
    )


#: The request's :class:`Idempotency` (for the mutating POSTs).
IdempotencyDep = Annotated[Idempotency, Depends(_idempotency)]


async def forget_expired(factory: sessionmaker[Session], every_seconds: float) -> None:
    """Forget the answers of keys older than :data:`KEY_LIFETIME`, now and every
    ``every_seconds``, off the request path (one indexed delete; a request never scans for
    them). Never raises."""
    await forget_in_background(
        factory,
        every_seconds,
        lambda session: repo.forget_answers(session, datetime.now(UTC) - KEY_LIFETIME),
        "answers of expired idempotency keys",
    )
