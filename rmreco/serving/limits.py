"""This module owns what one request and one caller may cost the service before the app sees
them: three pure ASGI middlewares (no ``BaseHTTPMiddleware``: they neither buffer bodies nor
run the app in another task) installed around the app by :func:`install_limits`.

From the outside in:

- :class:`BodyLimit`: a body longer than ``max_body_bytes`` is a 413 ``too_large``. A declared
  ``Content-Length`` over the bound is answered at once, before the body is read and before
  routing or authentication; a body without one (chunked) is counted as the app reads it and
  cut off as soon as it passes the bound, so the app never holds more than the bound.
- :class:`AuthLockout`: a client address whose requests got ``auth_failures_before_lockout``
  401s in a row is answered 429 ``locked_out`` for ``lockout_seconds`` without calling the app
  (no key lookup in the database).
- :class:`KeyRateLimit`: each API key (told apart by a hash of the ``Authorization`` header;
  the key itself is never kept) has a token bucket of ``rate_limit_per_minute`` requests,
  refilled at that rate; beyond it 429 ``rate_limited``.

Every refusal is the service's one JSON error body with ``Retry-After`` in whole seconds where
waiting helps. The probes (``/healthz``, ``/readyz``) are never locked out or rate-limited.
State lives in memory per worker process and is bounded: the least recently used entries are
dropped past :data:`MAX_TRACKED`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from fastapi import FastAPI

    from rmreco.config import Settings

#: Paths an orchestrator polls: never locked out, never rate-limited.
PROBES = frozenset({"/healthz", "/readyz"})
#: Most keys (rate limit) or client addresses (lockout) one worker remembers.
MAX_TRACKED = 10_000

Clock = Callable[[], float]


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    *,
    retry_after: float | None = None,
    close: bool = False,
) -> None:
    """Answer with the service's one error body ``{"error": {"code", "message", "field"}}``.

    Args:
        retry_after: seconds to wait, sent as ``Retry-After`` rounded up to whole seconds.
        close: ask the server to close the connection after the answer (the rest of a body
            that was not read must not be parsed as the next request, nor be waited for).
    """
    body = json.dumps({"error": {"code": code, "message": message, "field": None}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class BodyLimit:
    """Refuse request bodies longer than ``max_bytes`` with 413 ``too_large``."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                # uvicorn's parser refuses these first; another server might not
                await send_error(send, 400, "invalid", "Content-Length is not a number", close=True)
            elif int(declared) > self.max_bytes:
                await send_error(send, 413, "too_large", self.too_large_message(), close=True)
            else:
                # the server delivers no more than the declared length
                await self.app(scope, receive, send)
            return
        await _CountedBody(self, scope, receive, send).run()

    def too_large_message(self) -> str:
        """What a 413 says."""
        return f"the request body is larger than {self.max_bytes} bytes"


class _CountedBody:
    """One request without a declared length: its body counted as the app reads it."""

    def __init__(self, limit: BodyLimit, scope: Scope, receive: Receive, send: Send) -> None:
        self.limit, self.scope, self._receive, self._send = limit, scope, receive, send
        self.received = 0
        self.started = False
        #: the 413 went out: whatever the app sends or raises afterwards is dropped
        self.refused = False

    async def run(self) -> None:
        try:
            await self.limit.app(self.scope, self.receive, self.send)
        except Exception:
            # the app learnt of the cut-off as a disconnect and may raise on it: the request
            # is answered already
            if not self.refused:
                raise

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit.max_bytes:
                # the chunk that passes the bound is not handed on: the app holds at most
                # the bound, and learns that the client is gone
                self.refused = True
                if not self.started:
                    await send_error(
                        self._send, 413, "too_large", self.limit.too_large_message(), close=True
                    )
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


@dataclass
class _Strikes:
    """401s in a row of one client address, and when its lockout ends."""

    failures: int = 0
    locked_until: float = 0.0


class AuthLockout:
    """Lock out a client address after ``failures`` answers of 401 in a row."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        failures: int,
        seconds: float,
        max_tracked: int = MAX_TRACKED,
        clock: Clock = time.monotonic,
    ) -> None:
        self.app = app
        self.failures, self.seconds = failures, seconds
        self.max_tracked = max_tracked
        self.clock = clock
        self.strikes: OrderedDict[str, _Strikes] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or not client or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        address = str(client[0])
        strikes = self.strikes.get(address)
        if strikes is not None and strikes.locked_until:
            wait = strikes.locked_until - self.clock()
            if wait > 0:
                await send_error(
                    send,
                    429,
                    "locked_out",
                    "too many invalid API keys from this address; try again later",
                    retry_after=wait,
                )
                return
            # the lockout is over: a fresh count
            del self.strikes[address]

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._record(address, message["status"])
            await send(message)

        await self.app(scope, receive, watch)

    def _record(self, address: str, status: int) -> None:
        if status == 401:
            strikes = self.strikes.get(address)
            if strikes is None:
                strikes = self.strikes[address] = _Strikes()
                if len(self.strikes) > self.max_tracked:
                    self.strikes.popitem(last=False)
            else:
                self.strikes.move_to_end(address)
            strikes.failures += 1
            if strikes.failures >= self.failures:
                strikes.locked_until = self.clock() + self.seconds
        elif status < 400:
            # only an answer that passed authentication resets the count: a 422 or a 404 may
            # come before the key is checked, and must not let a guesser start again
            self.strikes.pop(address, None)


@dataclass
class _Bucket:
    tokens: float
    at: float


class KeyRateLimit:
    """At most ``per_minute`` requests per minute for each API key (a token bucket)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        per_minute: int,
        max_tracked: int = MAX_TRACKED,
        clock: Clock = time.monotonic,
    ) -> None:
        self.app = app
        self.capacity = float(per_minute)
        self.per_second = per_minute / 60.0
        self.max_tracked = max_tracked
        self.clock = clock
        self.buckets: OrderedDict[bytes, _Bucket] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        header = _header(scope, b"authorization")
        if not header:
            # no key: the app answers 401, and the lockout counts it
            await self.app(scope, receive, send)
            return
        # a digest, never the key: the table may be dumped with the process
        key = hashlib.blake2b(header, digest_size=16).digest()
        bucket = self.buckets.get(key)
        if bucket is not None:
            self.buckets.move_to_end(key)
            wait = self._take(bucket)
            if wait > 0:
                await send_error(
                    send,
                    429,
                    "rate_limited",
                    f"more than {int(self.capacity)} requests a minute with this API key",
                    retry_after=wait,
                )
                return

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] == 401:
                    # not a key of ours: forgotten, so that guessed keys cannot crowd the valid
                    # ones out of the table (the lockout deals with the guesser)
                    self.buckets.pop(key, None)
                elif bucket is None:
                    self._charge_new(key)
            await send(message)

        await self.app(scope, receive, watch)

    def _charge_new(self, key: bytes) -> None:
        """Charge the first request of a key once the app accepted it (a key's first request
        always has a full bucket: it is let through, and only a key that is not refused with
        401 takes a place in the table)."""
        bucket = self.buckets.get(key)
        if bucket is None:
            self.buckets[key] = _Bucket(tokens=self.capacity - 1.0, at=self.clock())
            if len(self.buckets) > self.max_tracked:
                self.buckets.popitem(last=False)
        else:  # concurrent first requests: the others were charged already
            self._take(bucket)

    def _take(self, bucket: _Bucket) -> float:
        """Take a token from ``bucket``: 0 when there was one, else the seconds to wait."""
        now = self.clock()
        elapsed = max(0.0, now - bucket.at)
        bucket.tokens = min(self.capacity, bucket.tokens + elapsed * self.per_second)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.per_second


def install_limits(app: FastAPI, settings: Settings) -> None:
    """Put the limits of ``settings`` around ``app``: the body limit outermost, then the lockout,
    then the rate limit; all three before routing and authentication."""
    # Starlette puts the middleware added last outermost
    app.add_middleware(KeyRateLimit, per_minute=settings.rate_limit_per_minute)
    app.add_middleware(
        AuthLockout,
        failures=settings.auth_failures_before_lockout,
        seconds=settings.lockout_seconds,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
