"""The service's edge over real sockets: a real uvicorn server configured by
:mod:`rmreco.serving.server` (in a thread) on a migrated SQLite database with two users, and
``rmreco serve --workers 2`` as a subprocess. Bodies over the bound are refused before they are
read and before authentication, keys past their rate and addresses that kept presenting bad
keys get 429, connections that do not finish their headers (or idle after a response) are
closed, and several workers serve one database.

Lockout is per client address: the lockout test connects from 127.0.0.2, so that the locked
address is not the one the other tests use.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from served_bank import stop_server

from rmreco.config import Settings
from rmreco.db import repository
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.db.migrate import upgrade
from rmreco.serving import server as server_module
from rmreco.serving.app import create_app
from rmreco.serving.security import issue_key
from rmreco.serving.server import app_from_environment, server_config, service_environment

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

#: timing-bound (or the type check): run alone, not beside other tests (see Makefile)
pytestmark = pytest.mark.serial

MAX_BODY = 1024
RATE = 5
FAILURES = 3
HEADER_TIMEOUT = 1.5
KEEP_ALIVE = 0.5


@dataclass
class Edge:
    url: str
    port: int
    #: name -> API key (role data_scientist: may read /v1/models)
    keys: dict[str, str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _closed_port_url() -> str:
    """A registry nobody listens on: the service's follower fails fast in the background."""
    return f"http://127.0.0.1:{_free_port()}"


def _database_with_users(home: Path, names: list[str]) -> tuple[str, dict[str, str]]:
    url = f"sqlite:///{home / 'rmreco.db'}"
    upgrade(url)
    engine = create_engine_for(url)
    keys = {}
    try:
        with transaction(session_factory(engine)) as session:
            for name in names:
                key = issue_key()
                repository.add_user(
                    session,
                    name=name,
                    role="data_scientist",
                    rm_id=None,
                    key_prefix=key.prefix,
                    key_hash=key.hash,
                )
                keys[name] = key.key
    finally:
        engine.dispose()
    return url, keys


@contextlib.contextmanager
def _serve_in_thread(settings: Settings, app: FastAPI) -> Iterator[int]:
    port = _free_port()
    server = uvicorn.Server(server_config(settings, app, host="127.0.0.1", port=port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _wait_healthy(f"http://127.0.0.1:{port}")
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _wait_healthy(
    url: str, seconds: float = 60, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    home = tmp_path_factory.mktemp("edge") / "home"
    home.mkdir()
    url, keys = _database_with_users(home, ["rate_a", "rate_b", "lockout", "plain"])
    settings = Settings(
        home=home,
        database_url=url,
        tracking_uri=_closed_port_url(),
        max_body_bytes=MAX_BODY,
        rate_limit_per_minute=RATE,
        auth_failures_before_lockout=FAILURES,
        lockout_seconds=60,
        header_timeout_seconds=HEADER_TIMEOUT,
        keep_alive_seconds=KEEP_ALIVE,
    )
    app = create_app(
        settings, policy_path=ROOT / "models" / "credit_policy.yaml", poll_seconds=3600
    )
    with _serve_in_thread(settings, app) as port:
        yield Edge(url=f"http://127.0.0.1:{port}", port=port, keys=keys)


def _raw(edge: Edge) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", edge.port), timeout=5)
    return sock


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One HTTP answer with a Content-Length body, read off a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of the body"
        body += chunk
    return int(status_line.split()[1]), headers, json.loads(body)


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``sock`` (fails if it is still open after ``seconds``)."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        pytest.fail(f"the connection was still open after {seconds} s")
    except ConnectionResetError:
        pass
    return time.monotonic() - start


def test_an_unauthenticated_declared_huge_body_is_413_before_it_is_sent(edge: Edge) -> None:
    with _raw(edge) as sock:
        sock.sendall(
            b"POST /v1/clients/C1/financing-options HTTP/1.1\r\nHost: edge\r\n"
            b"Content-Type: application/json\r\nContent-Length: 300000000\r\n\r\n"
        )
        status, headers, body = _read_answer(sock)
        assert status == 413, body
        assert body["error"]["code"] == "too_large"
        assert headers["connection"] == "close"
        _closed_within(sock, 2)


def test_an_unauthenticated_chunked_body_is_cut_off_with_413_once_past_the_bound(
    edge: Edge,
) -> None:
    with _raw(edge) as sock:
        sock.sendall(
            b"POST /v1/clients/C1/financing-options HTTP/1.1\r\nHost: edge\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"200\r\n" + b" " * 0x200 + b"\r\n"
        for _ in range(MAX_BODY // 0x200 + 1):  # just past the bound, and no final chunk
            sock.sendall(chunk)
        status, _, body = _read_answer(sock)
        assert status == 413, body
        assert body["error"]["code"] == "too_large"
        _closed_within(sock, 2)


def test_a_key_past_its_rate_gets_429_with_retry_after_while_other_keys_and_probes_pass(
    edge: Edge,
) -> None:
    with httpx.Client(base_url=edge.url, timeout=10) as http:
        a = {"Authorization": f"Bearer {edge.keys['rate_a']}"}
        b = {"Authorization": f"Bearer {edge.keys['rate_b']}"}
        assert [http.get("/v1/models", headers=a).status_code for _ in range(RATE)] == [200] * 5
        refused = http.get("/v1/models", headers=a)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert refused.headers["retry-after"].isdigit()
        assert int(refused.headers["retry-after"]) >= 1
        assert http.get("/v1/models", headers=b).status_code == 200
        assert http.get("/healthz", headers=a).status_code == 200
        assert http.get("/readyz", headers=a).status_code in (200, 503)  # not 429


def test_an_address_that_kept_presenting_bad_keys_is_locked_out(edge: Edge) -> None:
    elsewhere = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=edge.url, timeout=10, transport=elsewhere) as http:
        bad = {"Authorization": "Bearer rmr_0badc0de_not-a-key"}
        assert [http.get("/v1/models", headers=bad).status_code for _ in range(FAILURES)] == [
            401
        ] * FAILURES
        good = {"Authorization": f"Bearer {edge.keys['lockout']}"}
        locked = http.get("/v1/models", headers=good)
        assert locked.status_code == 429
        assert locked.json()["error"]["code"] == "locked_out"
        assert 55 <= int(locked.headers["retry-after"]) <= 60
    plain = {"Authorization": f"Bearer {edge.keys['plain']}"}
    assert httpx.get(f"{edge.url}/v1/models", headers=plain).status_code == 200


def test_a_connection_that_never_finishes_its_headers_is_closed(edge: Edge) -> None:
    with _raw(edge) as sock:
        sock.sendall(b"GET /healthz HT")
        assert _closed_within(sock, HEADER_TIMEOUT + 2) >= HEADER_TIMEOUT - 0.2


def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_header_timeout(edge: Edge) -> None:
    with _raw(edge) as sock:
        start = time.monotonic()
        request = b"GET /healthz HTTP/1.1\r\nHost: edge\r\nX-Slow: " + b"a" * 100
        with contextlib.suppress(OSError):
            for byte in request:
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        assert time.monotonic() - start < HEADER_TIMEOUT + 1.5, "the server waited for them all"
        _closed_within(sock, 2)


def test_a_kept_alive_connection_must_send_its_next_headers_in_time(edge: Edge) -> None:
    with _raw(edge) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n")
        assert _read_answer(sock)[0] == 200
        start = time.monotonic()
        with contextlib.suppress(OSError):
            for byte in b"GET /healthz HTTP/1.1\r\nHost: edge\r\nX-Slow: " + b"a" * 100:
                # more often than the keep-alive timeout: only the header deadline stops it
                sock.sendall(bytes([byte]))
                time.sleep(KEEP_ALIVE / 4)
        assert time.monotonic() - start < HEADER_TIMEOUT + 1.5
        _closed_within(sock, 2)


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_seconds(
    edge: Edge,
) -> None:
    with _raw(edge) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n")
        assert _read_answer(sock)[0] == 200
        # well before the header deadline, which would close it too
        assert _closed_within(sock, KEEP_ALIVE + 1.5) < HEADER_TIMEOUT - 0.3


def test_workers_build_the_app_from_the_options_serve_hands_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    built: dict[str, Any] = {}

    def fake_create_app(settings: Settings, **options: Any) -> FastAPI:
        built.update(options, home=settings.home)
        return FastAPI()

    policy = tmp_path / "policy.yaml"
    for name, value in service_environment(
        tracking_uri="http://registry:5000", policy_path=policy, poll_seconds=7.5
    ).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RMRECO_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(server_module, "create_app", fake_create_app)
    app_from_environment()
    assert built == {
        "tracking_uri": "http://registry:5000",
        "policy_path": policy,
        "poll_seconds": 7.5,
        "home": tmp_path / "home",
    }

    for name, value in service_environment(
        tracking_uri=None, policy_path=None, poll_seconds=30.0
    ).items():
        monkeypatch.setenv(name, value)
    app_from_environment()
    assert (built["tracking_uri"], built["policy_path"], built["poll_seconds"]) == (
        None,
        None,
        30.0,
    ), "options left to their defaults"


def _workers_of(parent: int) -> list[int]:
    """The worker processes uvicorn spawned under ``parent`` (not multiprocessing's helper)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def _answers_of_one_worker(
    worker: int, workers: list[int], base: str, key: str
) -> dict[str, httpx.Response]:
    """/healthz, /readyz and /v1/models answered by ``worker`` alone: the other workers are
    stopped meanwhile, so only it can accept the connections. Each stop is short (uvicorn's
    supervisor replaces a worker that misses its health checks for 5 s), and is tried again
    while the worker is still starting."""
    others = [w for w in workers if w != worker]
    deadline = time.monotonic() + 60
    while True:
        for other in others:
            os.kill(other, signal.SIGSTOP)
        try:
            # a fresh connection each: a kept-alive one would stay with the worker that took it
            with httpx.Client(base_url=base, timeout=1, headers={"Connection": "close"}) as http:
                return {
                    "/healthz": http.get("/healthz"),
                    "/readyz": http.get("/readyz"),
                    "/v1/models": http.get(
                        "/v1/models", headers={"Authorization": f"Bearer {key}"}
                    ),
                }
        except httpx.TimeoutException:
            if time.monotonic() > deadline:
                raise
        finally:
            for other in others:
                os.kill(other, signal.SIGCONT)
        time.sleep(0.5)


@pytest.mark.slow  # three Python processes start and import the service
def test_serve_with_two_workers_runs_two_processes_that_each_answer_from_one_database(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    url, keys = _database_with_users(home, ["ds"])
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RMRECO_")},
        "RMRECO_HOME": str(home),
        "RMRECO_DATABASE_URL": url,
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(BIN / "rmreco"), "serve", "--workers", "2", "--port", str(port),
             "--tracking-uri", _closed_port_url(), "--poll-seconds", "3600"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    workers: list[int] = []
    try:
        try:
            _wait_healthy(base, seconds=90, process=server)
            deadline = time.monotonic() + 30
            while len(workers := _workers_of(server.pid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
        except AssertionError:
            pytest.fail(log.read_text())
        assert len(workers) == 2, log.read_text()
        for worker in workers:
            answers = _answers_of_one_worker(worker, workers, base, keys["ds"])
            assert answers["/healthz"].status_code == 200
            assert answers["/readyz"].json()["database"] == "ok", answers["/readyz"].text
            assert answers["/v1/models"].status_code == 200, answers["/v1/models"].text
        assert _workers_of(server.pid) == workers, "no worker was replaced"
    finally:
        stop_server(server)
    assert not [w for w in workers if Path(f"/proc/{w}").exists()], "the workers stopped too"
