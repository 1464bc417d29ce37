"""The edge middlewares of :mod:`rmreco.serving.limits` as plain ASGI apps, with a fake app
behind them and a clock the tests move: what reaches the app, what is answered in its place,
and what the middlewares remember."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from rmreco.serving.limits import AuthLockout, BodyLimit, KeyRateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeApp:
    """Reads the whole body (as a route with a body does), then answers ``status``."""

    status: int = 200
    calls: int = 0
    bodies: list[int] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        held = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            held += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        self.bodies.append(held)
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    #: body messages the server was asked for
    reads: int


def call(
    app: Any,
    *,
    path: str = "/v1/models",
    headers: Iterable[tuple[str, str]] = (),
    chunks: Iterable[bytes] = (b"",),
    client: str = "10.0.0.1",
) -> Answer:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": (client, 50000),
    }
    pending = list(chunks)
    sent: list[Message] = []
    reads = 0

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        if not pending:
            return {"type": "http.disconnect"}
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Answer(
        status=start["status"],
        headers={k.decode(): v.decode() for k, v in start["headers"]},
        body=json.loads(body),
        reads=reads,
    )


def test_a_declared_body_over_the_bound_is_413_before_a_byte_is_read() -> None:
    app = FakeApp(status=401)
    answer = call(
        BodyLimit(app, max_bytes=1024),
        headers=[("content-length", "300000000")],
        chunks=[b"x" * 1024] * 3,
    )
    assert answer.status == 413
    assert answer.body == {
        "error": {
            "code": "too_large",
            "message": "the request body is larger than 1024 bytes",
            "field": None,
        }
    }
    assert answer.headers["connection"] == "close"
    assert (app.calls, answer.reads) == (0, 0)


def test_a_body_without_length_is_cut_off_once_past_the_bound_and_the_app_holds_no_more() -> None:
    app = FakeApp(status=401)
    answer = call(BodyLimit(app, max_bytes=1024), chunks=[b"x" * 300] * 100)
    assert answer.status == 413
    assert answer.body["error"]["code"] == "too_large"
    assert app.bodies == [900], "the chunk that passed the bound never reached the app"
    assert answer.reads == 4, "nothing was read after the bound was passed"


def test_a_body_within_the_bound_reaches_the_app_whole() -> None:
    app = FakeApp()
    chunked = call(BodyLimit(app, max_bytes=1024), chunks=[b"x" * 512, b"x" * 512])
    declared = call(
        BodyLimit(app, max_bytes=1024), headers=[("content-length", "1024")], chunks=[b"x" * 1024]
    )
    assert (chunked.status, declared.status) == (200, 200)
    assert app.bodies == [1024, 1024]


def test_a_key_past_its_rate_gets_429_with_retry_after_and_other_keys_do_not() -> None:
    clock = Clock()
    app = FakeApp()
    limit = KeyRateLimit(app, per_minute=3, clock=clock)
    key_a = [("authorization", "Bearer rmr_aaaaaaaa_secret")]
    key_b = [("authorization", "Bearer rmr_bbbbbbbb_secret")]

    assert [call(limit, headers=key_a).status for _ in range(3)] == [200, 200, 200]
    refused = call(limit, headers=key_a)
    assert refused.status == 429
    assert refused.body["error"]["code"] == "rate_limited"
    assert refused.headers["retry-after"] == "20", "one request every 60/3 seconds"
    assert app.calls == 3, "a refused request never reaches the app"

    assert call(limit, headers=key_b).status == 200
    assert call(limit).status == 200, "no key: not limited per key (the app says 401)"
    assert call(limit, path="/healthz", headers=key_a).status == 200
    assert call(limit, path="/readyz", headers=key_a).status == 200

    clock.now += 20
    assert call(limit, headers=key_a).status == 200
    assert call(limit, headers=key_a).status == 429


def test_the_rate_table_holds_digests_of_valid_keys_only_and_is_bounded() -> None:
    clock = Clock()
    app = FakeApp()
    limit = KeyRateLimit(app, per_minute=10, max_tracked=50, clock=clock)
    for i in range(200):
        call(limit, headers=[("authorization", f"Bearer rmr_{i:08x}_secret")])
    assert len(limit.buckets) == 50
    assert all(b"secret" not in key and len(key) == 16 for key in limit.buckets)

    valid = set(limit.buckets)
    app.status = 401
    for i in range(100):
        call(limit, headers=[("authorization", f"Bearer guessed-{i}")])
    assert set(limit.buckets) == valid, "keys answered 401 take no place in the table"


def test_an_address_is_locked_out_after_failures_in_a_row_without_calling_the_app() -> None:
    clock = Clock()
    app = FakeApp(status=401)
    lockout = AuthLockout(app, failures=3, seconds=300, clock=clock)

    assert [call(lockout).status for _ in range(3)] == [401, 401, 401]
    app.status = 200  # a valid key now: still refused, and never looked up
    locked = call(lockout)
    assert locked.status == 429
    assert locked.body["error"]["code"] == "locked_out"
    assert locked.headers["retry-after"] == "300"
    assert app.calls == 3

    assert call(lockout, client="10.0.0.2").status == 200, "another address is not locked"
    assert call(lockout, path="/healthz").status == 200, "probes are never locked out"

    clock.now += 299.5
    assert call(lockout).headers["retry-after"] == "1"
    clock.now += 1
    assert call(lockout).status == 200


@pytest.mark.parametrize(
    ("between", "locked"),
    [(200, False), (422, True), (404, True)],
    ids=["success-resets", "refusal-before-auth-does-not", "not-found-does-not"],
)
def test_only_a_success_resets_the_count_of_failures(between: int, locked: bool) -> None:
    app = FakeApp(status=401)
    lockout = AuthLockout(app, failures=3, seconds=300, clock=Clock())
    call(lockout)
    call(lockout)
    app.status = between
    call(lockout)
    app.status = 401
    call(lockout)
    app.status = 200
    assert (call(lockout).status == 429) is locked


def test_the_lockout_table_is_bounded() -> None:
    app = FakeApp(status=401)
    lockout = AuthLockout(app, failures=3, seconds=300, max_tracked=100, clock=Clock())
    for i in range(1000):
        call(lockout, client=f"10.1.{i // 256}.{i % 256}")
    assert len(lockout.strikes) == 100
