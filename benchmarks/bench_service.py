"""Benchmark: the service's financing-options answer against a bare `mlflow models serve` PD
prediction, both over loopback HTTP, measured in the same run.

    python benchmarks/bench_service.py [--clients 20000] [--requests 2000] [--repeats 3]

Builds a synthetic bank (or takes --data), loads it into a temporary SQLite database, trains and
registers the credit model in a temporary MLflow store, starts ``rmreco serve`` (uvicorn) and
``mlflow models serve`` on the champion, then sends requests at concurrency 1 and 16 from an
asyncio client (keep-alive connections) and prints p50 / p99 latency and throughput per
target: the median over repeats. The client runs on the same 2 cores as the servers, so every
figure includes its cost; both targets pay it alike.

A financing-options answer is the full job: the client's stored features, PD, reasons, the
policy decision, limits and prices of every financing product, and the audit rows committed.
A cross-sell page is 50 offers of a corporate RM's portfolio, ranked, explained and audited: the
first view of each of 14 portfolios is timed once (scoring and explaining it), then the loads
repeat one portfolio's page (scored once, kept until a snapshot or a champion changes).
Targets (issue 5): p50 under 5 ms and p99 under 15 ms at concurrency 1, and at 16 concurrent
clients at least 5x the throughput of the bare `mlflow models serve` prediction.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvloop

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _credit_model_uri() -> str:
    """The SME credit model's champion, by the name its spec registers it under."""
    from rmreco.modeling.spec import load_credit_risk_spec

    name = load_credit_risk_spec(ROOT / "models" / "sme_credit_risk.yaml").name
    return f"models:/{name}@champion"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not come up in {seconds:.0f} s")


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send one HTTP/1.1 request on a kept-alive connection and read the whole answer; returns
    the status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    if length is None:
        raise SystemExit(f"an answer without Content-Length: {head[:200]!r}")
    await reader.readexactly(length)
    return status


def _request(method: str, url: str, body: Any, headers: dict[str, str]) -> bytes:
    """The bytes of one request, built before the clock starts."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    payload = b"" if method == "GET" else json.dumps(body).encode()
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if method != "GET":
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def _load(
    url: str | Callable[[int], str],
    bodies: list[Any],
    headers: dict[str, str] | Callable[[int], dict[str, str]],
    concurrency: int,
    total: int,
    method: str = "POST",
) -> dict[str, Any]:
    """Send ``total`` requests from ``concurrency`` kept-alive connections; request i goes to
    ``url(i)`` (or ``url``) with ``bodies[i % len(bodies)]`` and ``headers(i)`` (or
    ``headers``). The answer's ``statuses`` are those of the answers other than 200.

    The client is a few lines of asyncio over raw sockets with every request built in advance:
    it shares the 2 cores with the servers, and a full HTTP client library (httpx measured about
    0.7 ms of client CPU per request) would weigh on the faster server's figure most."""
    requests = [
        _request(
            method,
            url(i) if callable(url) else url,
            bodies[i % len(bodies)],
            headers(i) if callable(headers) else headers,
        )
        for i in range(total)
    ]
    parts = urlsplit(url(0) if callable(url) else url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latencies: list[float] = []
    refused: list[int] = []
    counter = iter(range(total))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in counter:
                started = time.perf_counter()
                status = await _exchange(reader, writer, requests[i])
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    refused.append(status)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "rps": len(latencies) / wall,
        "errors": len(refused),
        "statuses": sorted(set(refused)),
    }


def _setup(work: Path, data: Path | None, clients: int) -> tuple[dict[str, str], Path]:
    """Bank, database and both champions under ``work`` (reused when ``work/ready`` says a
    previous run finished them)."""
    env = {
        **os.environ,
        "RMRECO_HOME": str(work / "home"),
        "RMRECO_THREADS": "1",
        # one key sends every request: the per-key limit (checked on each) must not refuse them
        "RMRECO_RATE_LIMIT_PER_MINUTE": str(10**9),
        # `mlflow models serve` starts the uvicorn executable of this environment
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }

    def run(*arguments: str) -> None:
        subprocess.run(
            [str(BIN / "rmreco"), *arguments],
            check=True,
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )

    ready = work / "ready"
    if ready.exists():
        print(f"reusing the set-up in {work}", flush=True)
        return env, Path(ready.read_text().strip())
    if data is None:
        data = work / "bank"
        print(f"generating {clients:,} clients ...", flush=True)
        run(
            "generate",
            "--clients",
            str(clients),
            "--months",
            "36",
            "--seed",
            "3",
            "--out",
            str(data),
        )
    run("db", "upgrade")
    print("loading and refreshing features ...", flush=True)
    run("ingest", str(data))
    print("training the credit and cross-sell models ...", flush=True)
    run("train", "credit-risk", "--data", str(data))
    run("train", "cross-sell", "--data", str(data))
    ready.write_text(str(data))
    return env, data


def _busiest_brm(database: Path) -> tuple[str, list[tuple[str, Any]]]:
    """The business RM with the most SME clients not in default, and those clients with their
    stored features (client id, features), from the service's SQLite database."""
    import sqlite3

    db = sqlite3.connect(database)
    try:
        rm_id = db.execute(
            "SELECT c.rm_id FROM clients c JOIN client_features f USING (client_id) "
            "WHERE c.segment = 'sme' AND NOT f.in_default GROUP BY c.rm_id "
            "ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()[0]
        rows = db.execute(
            "SELECT c.client_id, f.features FROM clients c JOIN client_features f "
            "USING (client_id) WHERE c.rm_id = ? AND NOT f.in_default",
            (rm_id,),
        ).fetchall()
    finally:
        db.close()
    return str(rm_id), rows


def _new_key(env: dict[str, str], name: str, role: str, rm_id: str | None = None) -> str:
    """A fresh API key from `rmreco users create` (the last line it prints)."""
    command = [str(BIN / "rmreco"), "users", "create", "--name", name, "--role", role]
    if rm_id is not None:
        command += ["--rm-id", rm_id]
    done = subprocess.run(command, check=True, env=env, cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--work",
        type=Path,
        help="Keep the bank, database and models in this folder and reuse them when it already "
        "holds a finished set-up (default: a temporary folder).",
    )
    args = parser.parse_args()

    import sqlite3

    with contextlib.ExitStack() as stack:
        if args.work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            work = args.work.resolve()
            work.mkdir(parents=True, exist_ok=True)
        env, _ = _setup(work, args.data, args.clients)
        rm_id, rows = _busiest_brm(work / "home" / "rmreco.db")
        key = _new_key(env, f"bench-brm-{os.getpid()}", "brm", rm_id)

        db = sqlite3.connect(work / "home" / "rmreco.db")
        corporate_rms = [
            row[0]
            for row in db.execute(
                "SELECT rm_id FROM clients WHERE segment = 'corporate' GROUP BY rm_id "
                "ORDER BY count(*) DESC LIMIT 15"
            )
        ]
        crm_id = corporate_rms[0]
        db.close()
        admin_key = _new_key(env, f"bench-admin-{os.getpid()}", "admin")
        crm_key = _new_key(env, f"bench-crm-{os.getpid()}", "crm", crm_id)
        port, mport = _free_port(), _free_port()
        service = subprocess.Popen(
            [str(BIN / "rmreco"), "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        mlflow_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'home' / 'mlflow.db'}"}
        bare = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                _credit_model_uri(),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(mport),
                "-w",
                "1",
            ],
            env=mlflow_env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base, mbase = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mport}"
            _wait(f"{base}/healthz")
            deadline = time.monotonic() + 120
            admin = {"Authorization": f"Bearer {admin_key}"}  # /readyz names models to an admin
            while len(httpx.get(f"{base}/readyz", headers=admin).json().get("models") or {}) < 2:
                if time.monotonic() > deadline:
                    raise SystemExit("the service did not load its models")
                time.sleep(0.5)
            _wait(f"{mbase}/ping")
            features = [json.loads(f) if isinstance(f, str) else f for _, f in rows]
            signature = _signature_columns(mlflow_env, work)
            bare_bodies = [
                {"dataframe_records": [{c: f.get(c) for c in signature}]} for f in features[:200]
            ]
            ids = [cid for cid, _ in rows]
            template = f"{base}/v1/clients/{{}}/financing-options"
            # name: (url or url of request k, bodies, headers, requests, method)
            targets: dict[str, tuple[Any, list[Any], dict[str, str], int, str]] = {
                "financing-options": (
                    lambda k: template.format(ids[k % len(ids)]),
                    [{}],
                    {"Authorization": f"Bearer {key}"},
                    args.requests,
                    "POST",
                ),
                "cross-sell page of 50": (
                    f"{base}/v1/rms/{crm_id}/cross-sell?limit=50",
                    [{}],
                    {"Authorization": f"Bearer {crm_key}"},
                    max(50, args.requests // 5),
                    "GET",
                ),
                "mlflow models serve": (
                    f"{mbase}/invocations",
                    bare_bodies,
                    {},
                    args.requests,
                    "POST",
                ),
            }
            # A first view of a portfolio scores and explains it; later views of the same
            # portfolio (the loads below) reuse that until a snapshot or a champion changes.
            first_views = []
            for rm in corporate_rms[1:]:
                started = time.perf_counter()
                response = httpx.get(
                    f"{base}/v1/rms/{rm}/cross-sell?limit=50",
                    headers={"Authorization": f"Bearer {admin_key}"},
                    timeout=60,
                )
                first_views.append(1000 * (time.perf_counter() - started))
                response.raise_for_status()
            first_view_ms = statistics.median(first_views)
            print(
                f"cross-sell page of 50, first view of a portfolio: median {first_view_ms:.1f} ms "
                f"over {len(first_views)} portfolios",
                flush=True,
            )
            results: dict[tuple[str, int], list[dict[str, float]]] = {}
            for repeat in range(args.repeats):
                for name, (url, bodies, headers, count, method) in targets.items():
                    for concurrency in (1, 16):
                        stats = uvloop.run(
                            _load(url, bodies, headers, concurrency, count, method=method)
                        )
                        results.setdefault((name, concurrency), []).append(stats)
                        print(
                            f"run {repeat + 1} {name:>20} c={concurrency:<2} "
                            f"p50 {stats['p50_ms']:7.2f} ms  p99 {stats['p99_ms']:7.2f} ms  "
                            f"{stats['rps']:8.1f} req/s  errors {int(stats['errors'])}",
                            flush=True,
                        )
        finally:
            service.terminate()
            bare.terminate()
            service.wait(timeout=30)
            bare.wait(timeout=30)
    print()
    print(
        f"{'median of ' + str(args.repeats):>24} {'c':>3} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>9}"
    )
    summary = {}
    for (name, concurrency), runs in results.items():
        p50 = statistics.median(r["p50_ms"] for r in runs)
        p99 = statistics.median(r["p99_ms"] for r in runs)
        rps = statistics.median(r["rps"] for r in runs)
        summary[(name, concurrency)] = (p50, p99, rps)
        print(f"{name:>24} {concurrency:>3} {p50:8.2f} {p99:8.2f} {rps:9.1f}")
    fo1, fo16 = summary[("financing-options", 1)], summary[("financing-options", 16)]
    bare16 = summary[("mlflow models serve", 16)]
    print(
        f"\nfinancing-options at c=1: p50 {fo1[0]:.2f} ms (target < 5), p99 {fo1[1]:.2f} ms "
        f"(target < 15)"
    )
    print(
        f"throughput at c=16: {fo16[2] / bare16[2]:.1f}x the bare mlflow prediction (target >= 5x)"
    )
    print(
        f"cross-sell page of 50: first view of a portfolio {first_view_ms:.1f} ms (median), "
        f"repeat views p50 {summary[('cross-sell page of 50', 1)][0]:.1f} ms at c=1"
    )


def _signature_columns(env: dict[str, str], work: Path) -> list[str]:
    code = (
        "import mlflow, json; m = mlflow.models.get_model_info("
        f"{_credit_model_uri()!r}); "
        "print(json.dumps([c['name'] for c in m.signature.inputs.to_dict()]))"
    )
    out = (
        subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            cwd=work,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return list(json.loads(out))


if __name__ == "__main__":
    main()
