"""Benchmark: what the reliability guarantees cost a financing answer, before and after.

    python benchmarks/bench_guarantees.py [--before 6680440] [--clients 5000] [--requests 1500]
                                          [--repeats 5] [--concurrency 16] [--work DIR]

"Before" is the service as of ``--before`` (a git revision: the last commit before issue 13's
guarantees), exported with ``git archive`` and run from this environment with its source first
on ``PYTHONPATH``; "after" is this working tree. Both serve the same bank, the same trained
champions and the same users, each from its own copy of the SQLite database (the before copy
migrated down to the revision its code knows). For every repeat, each server in turn (the order
alternates) is started, waits until its models are loaded, takes a warm-up, then
``--requests`` financing-options requests from ``--concurrency`` kept-alive connections. The
figures are the median over repeats of each run's p50 and p99 latency, throughput and the
server's CPU time per answer (user and system, from /proc: the figure least moved by other work
on a shared machine, where latency at this concurrency swings by tens of ms between runs).

"after + Idempotency-Key" sends a fresh key with every request, so each answer is also stored
for replay: the full cost of a client that uses keys. The after server's rate limit is raised
for the run (one key sends every request); its bucket is still checked on every request.
A run stops when more than 1% of its answers are not 200; fewer are printed with the run (on
SQLite at this concurrency, before and after alike, a request may now and then wait out the lock
timeout). The target (issue 13): the guarantees cost at most 1 ms at the median.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import ROOT, _busiest_brm, _free_port, _load, _new_key, _setup, _wait


def _export(revision: str, target: Path) -> Path:
    """The source tree of ``revision`` under ``target``."""
    archive = target / "src.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, stdout=out)
    source = target / "src"
    with tarfile.open(archive) as tar:
        tar.extractall(source, filter="data")
    return source


def _head_of(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from rmreco.db.migrate import head_revision as h; print(h())"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def _run(
    name: str,
    env: dict[str, str],
    ids: list[str],
    key: str,
    admin_key: str,
    args: argparse.Namespace,
) -> dict[str, float]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "from rmreco.cli import main; main()", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(f"{base}/healthz")
        deadline = time.monotonic() + 180
        # the versions are an admin's to see
        admin = {"Authorization": f"Bearer {admin_key}"}
        while (
            len(httpx.get(f"{base}/readyz", headers=admin, timeout=10).json().get("models") or {})
            < 2
        ):
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: the service did not load its models")
            time.sleep(0.5)
        auth = {"Authorization": f"Bearer {key}"}

        def headers(_: int) -> dict[str, str]:
            # a fresh key per request: every answer is stored for its retries
            return {**auth, "Idempotency-Key": str(uuid.uuid4())}

        sent = headers if name.endswith("Idempotency-Key") else auth
        template = f"{base}/v1/clients/{{}}/financing-options"

        def url(i: int) -> str:
            return template.format(ids[i % len(ids)])

        warm = min(200, args.requests)
        asyncio.run(_load(url, [{}], sent, args.concurrency, warm))
        cpu_before = _cpu_seconds(server.pid)
        figures = asyncio.run(_load(url, [{}], sent, args.concurrency, args.requests))
        figures["cpu_ms"] = (_cpu_seconds(server.pid) - cpu_before) * 1000 / args.requests
        if figures["errors"] > args.requests / 100:
            raise SystemExit(
                f"{name}: {figures['errors']:.0f} answers were not 200 ({figures['statuses']})"
            )
        figures["peak_mb"] = _peak_mb(server.pid)
        return figures
    finally:
        server.terminate()
        server.wait(timeout=30)


def _cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) the process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_mb(pid: int) -> float:
    """The server process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", default="6680440", help="Git revision before the change.")
    parser.add_argument("--clients", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=1_500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--work", type=Path, help="Keep (and reuse) the set-up in this folder.")
    args = parser.parse_args()
    uvloop.install()

    with contextlib.ExitStack() as stack:
        if args.work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            work = args.work.resolve()
            work.mkdir(parents=True, exist_ok=True)
        env, _ = _setup(work, None, args.clients)
        database = work / "home" / "rmreco.db"
        rm_id, rows = _busiest_brm(database)
        ids = [client_id for client_id, _ in rows]
        key = _new_key(env, f"bench-guarantees-{os.getpid()}", "brm", rm_id)
        admin_key = _new_key(env, f"bench-guarantees-admin-{os.getpid()}", "admin")

        before_dir = work / "before"
        shutil.rmtree(before_dir, ignore_errors=True)
        before_dir.mkdir()
        source = _export(args.before, before_dir)
        before_env = {**env, "PYTHONPATH": str(source)}
        before_db = before_dir / "rmreco.db"
        shutil.copy(database, before_db)
        from rmreco.db.migrate import downgrade

        before_url = f"sqlite:///{before_db}"
        downgrade(before_url, _head_of(before_env))
        before_env["RMRECO_DATABASE_URL"] = before_url
        after_env = {**env, "RMRECO_RATE_LIMIT_PER_MINUTE": str(10**9)}
        targets = {
            f"before ({args.before})": before_env,
            "after": after_env,
            "after + Idempotency-Key": after_env,
        }
        runs: dict[str, list[dict[str, float]]] = {t: [] for t in targets}
        order = list(targets)
        for repeat in range(args.repeats):
            for target in order if repeat % 2 == 0 else reversed(order):
                figures = _run(target, targets[target], ids, key, admin_key, args)
                runs[target].append(figures)
                print(
                    f"repeat {repeat + 1}: {target:<28} p50 {figures['p50_ms']:6.2f} ms  "
                    f"p99 {figures['p99_ms']:6.2f} ms  {figures['rps']:6.0f} req/s  "
                    f"CPU {figures['cpu_ms']:5.2f} ms/answer  peak {figures['peak_mb']:5.0f} MB"
                    + (
                        f"  not 200: {figures['errors']} {figures['statuses']}"
                        if figures["errors"]
                        else ""
                    ),
                    flush=True,
                )

    def median(target: str, figure: str) -> float:
        return statistics.median(r[figure] for r in runs[target])

    print(
        f"\nfinancing-options at {args.concurrency} concurrent clients, {args.requests} requests, "
        f"median of {args.repeats} runs ({args.clients:,} clients, SQLite, one worker)"
    )
    print(f"{'':<30}{'p50 ms':>8}{'p99 ms':>9}{'req/s':>8}{'CPU ms/answer':>15}{'peak MB':>9}")
    for target in targets:
        print(
            f"{target:<30}{median(target, 'p50_ms'):8.2f}{median(target, 'p99_ms'):9.2f}"
            f"{median(target, 'rps'):8.0f}{median(target, 'cpu_ms'):15.2f}"
            f"{median(target, 'peak_mb'):9.0f}"
        )
    first = next(iter(targets))
    for target in itertools.islice(targets, 1, None):
        cost = median(target, "p50_ms") - median(first, "p50_ms")
        cpu = median(target, "cpu_ms") - median(first, "cpu_ms")
        print(
            f"cost of the guarantees ({target}): p50 {cost:+.2f} ms (target: at most +1 ms), "
            f"server CPU {cpu:+.2f} ms per answer"
        )


if __name__ == "__main__":
    main()
