"""Benchmark: a bank's load and feature refresh, and the refresh after a load that adds one month,
each beside a plain reference computation measured in the same run.

    python benchmarks/bench_refresh.py [--clients 20000] [--months 36] [--repeats 3] [--db URL]

One synthetic bank of ``months + 1`` months is generated and split in two folders: ``base`` (the
first ``months`` months: every table, holdings and events up to then) and ``next`` (the month
after: ``clients``, that month's account rows, events and the holdings that start in it). Each
repeat, in fresh processes so that each peak memory (ru_maxrss) is its own:

- ``rmreco ingest base``: the command a bank runs, into an empty database: validate, load, and
  refresh the feature snapshots (wall time and peak RSS of the command);
- ``next``: ``ingest_folder`` of the next month into that database, then the refresh it owes
  (``refresh_client_features``), each timed;
- ``plain load``: the account rows read from Parquet and inserted with the driver's executemany
  into a bare table with the same primary key: no validation, no other table, no upsert;
- ``plain polars``: the builder's own account-feature expressions on the account_months Parquet
  in polars (no monthly grid, no joins, no status, no database).

Printed: each run, the medians, and the ratios of rmreco to its reference. Targets (issue 15):
ingest + refresh of 20,000 clients x 36 months within 20 s and under 1 GiB; the refresh after one
more month within 5 s. ``--db`` is a SQLAlchemy URL of an empty database to use instead of a
temporary SQLite file (its tables are dropped before each repeat; PostgreSQL: e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

RMRECO = Path(sys.executable).parent / "rmreco"


def _split(bank: Path, base: Path, following: Path) -> str:
    """Split ``bank`` into its first months (``base``) and its last month (``following``);
    returns that last month (YYYY-MM)."""
    import pandas as pd

    base.mkdir(parents=True)
    following.mkdir(parents=True)
    months = pd.read_parquet(bank / "account_months.parquet")
    last = pd.to_datetime(months["month"]).max()
    for path in sorted(bank.glob("*.parquet")):
        frame = pd.read_parquet(path)
        name = path.stem
        column = {"account_months": "month", "credit_events": "month", "holdings": "start_month"}
        if name in column:
            dated = pd.to_datetime(frame[column[name]])
            frame[dated < last].to_parquet(base / path.name, index=False)
            frame[dated >= last].to_parquet(following / path.name, index=False)
        elif name == "financials":  # a year's statements are known long after it: in base
            frame.to_parquet(base / path.name, index=False)
        else:
            frame.to_parquet(base / path.name, index=False)
            if name in ("clients", "relationship_managers", "products"):
                # clients: the one table every load carries; the others: what its rows name
                frame.to_parquet(following / path.name, index=False)
    return f"{last:%Y-%m}"


def _child_next(url: str, folder: str) -> None:
    from rmreco.config import Settings
    from rmreco.data.ingest import ingest_folder
    from rmreco.db.engine import create_engine_for, session_factory, transaction
    from rmreco.features.config import SnapshotParams
    from rmreco.features.snapshots import refresh_if_owed

    engine = create_engine_for(url)
    started = time.perf_counter()
    ingest_folder(Path(folder), engine, settings=Settings())
    loaded = time.perf_counter()
    with transaction(session_factory(engine)) as session:
        clients = refresh_if_owed(session, SnapshotParams())
    refreshed = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        json.dumps(
            {
                "ingest_s": loaded - started,
                "refresh_s": refreshed - loaded,
                "clients": clients or 0,
                "peak_gib": peak,
            }
        )
    )


def _child_plain_load(url: str, data: str) -> None:
    import pyarrow.parquet as pq
    from sqlalchemy import text

    from rmreco.db.engine import create_engine_for

    engine = create_engine_for(url)
    started = time.perf_counter()
    table = pq.read_table(Path(data) / "account_months.parquet")
    columns = table.column_names
    rows = list(zip(*(table.column(c).to_pylist() for c in columns), strict=True))
    holder = ", ".join("?" if engine.dialect.name == "sqlite" else "%s" for _ in columns)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS plain_account_months"))
        kinds = ", ".join(
            f"{c} {'TEXT' if c == 'client_id' else 'DATE' if c == 'month' else 'REAL'}"
            for c in columns
        )
        connection.execute(
            text(f"CREATE TABLE plain_account_months ({kinds}, PRIMARY KEY (client_id, month))")
        )
        for start in range(0, len(rows), 5000):
            connection.exec_driver_sql(
                f"INSERT INTO plain_account_months VALUES ({holder})", rows[start : start + 5000]
            )
        connection.execute(text("DROP TABLE plain_account_months"))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({"seconds": seconds, "peak_gib": peak, "rows": len(rows)}))


def _child_plain_polars(data: str) -> None:
    from plain_polars import account_features

    started = time.perf_counter()
    frame = account_features(Path(data) / "account_months.parquet")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({"seconds": seconds, "peak_gib": peak, "rows": frame.height}))


def _json_child(args: list[str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark child {args} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _child_cli(url: str, folder: str, home: str) -> None:
    """``rmreco ingest folder`` as a user runs it: wall time and the command's peak RSS (this
    process's only child)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RMRECO_", "MLFLOW_"))}
    env["RMRECO_HOME"] = home
    started = time.perf_counter()
    done = subprocess.run(
        [str(RMRECO), "ingest", folder, "--db", url],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"rmreco ingest failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    print(json.dumps({"seconds": seconds, "peak_gib": peak}))


def _empty(url: str | None, tmp: Path, k: int) -> str:
    if url is None:
        return f"sqlite:///{tmp / f'bench-{k}.db'}"
    from sqlalchemy import MetaData, create_engine

    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    engine.dispose()
    return url


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--db", help="an empty database's URL (default: a temporary SQLite file)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, *rest = args.child
        children: dict[str, Callable[..., None]] = {
            "cli": _child_cli,
            "next": _child_next,
            "plain-load": _child_plain_load,
            "plain-polars": _child_plain_polars,
        }
        children[what](*rest)
        return

    with tempfile.TemporaryDirectory(prefix="rmreco-bench-") as name:
        tmp = Path(name)
        from rmreco.synthetic import generate_bank

        print(f"generating {args.clients:,} clients x {args.months + 1} months ...", flush=True)
        generate_bank(tmp / "bank", n_clients=args.clients, n_months=args.months + 1, seed=1)
        last = _split(tmp / "bank", tmp / "base", tmp / "next")
        print(f"base: the first {args.months} months; next: {last}", flush=True)
        runs: dict[str, list[dict[str, float]]] = {
            "ingest": [],
            "next": [],
            "plain-load": [],
            "plain-polars": [],
        }
        for k in range(args.repeats):
            url = _empty(args.db, tmp, k)
            cli = _json_child(["cli", url, str(tmp / "base"), str(tmp / f"home-{k}")])
            runs["ingest"].append(cli)
            following = _json_child(["next", url, str(tmp / "next")])
            runs["next"].append(following)
            plain_url = _empty(args.db, tmp, 100 + k)
            runs["plain-load"].append(_json_child(["plain-load", plain_url, str(tmp / "base")]))
            runs["plain-polars"].append(_json_child(["plain-polars", str(tmp / "base")]))
            print(
                f"run {k + 1}: rmreco ingest {cli['seconds']:6.2f} s (peak "
                f"{cli['peak_gib']:.2f} GiB); next month: ingest {following['ingest_s']:5.2f} s, "
                f"refresh {following['refresh_s']:5.2f} s of {int(following['clients']):,} "
                f"clients (peak {following['peak_gib']:.2f} GiB); plain load "
                f"{runs['plain-load'][-1]['seconds']:5.2f} s, plain polars "
                f"{runs['plain-polars'][-1]['seconds']:5.2f} s",
                flush=True,
            )

        def median(what: str, key: str = "seconds") -> float:
            return statistics.median(r[key] for r in runs[what])

        ingest, refresh_next = median("ingest"), median("next", "refresh_s")
        reference = median("plain-load") + median("plain-polars")
        print()
        print(f"{'median of ' + str(args.repeats):>44} {'s':>8} {'peak GiB':>9}")
        print(
            f"{'rmreco ingest (load + refresh)':>44} {ingest:8.2f} "
            f"{max(r['peak_gib'] for r in runs['ingest']):9.2f}"
        )
        print(
            f"{'next month: refresh':>44} {refresh_next:8.2f} "
            f"{max(r['peak_gib'] for r in runs['next']):9.2f}"
        )
        print(f"{'next month: ingest':>44} {median('next', 'ingest_s'):8.2f}")
        print(f"{'plain load of the account rows':>44} {median('plain-load'):8.2f}")
        print(f"{'plain polars account features':>44} {median('plain-polars'):8.2f}")
        print(f"ratio rmreco ingest / (plain load + plain polars): {ingest / reference:.2f}x")
        print(
            f"ratio next-month refresh / plain polars features: "
            f"{refresh_next / median('plain-polars'):.2f}x"
        )
        print(
            "targets: ingest + refresh within 20 s and under 1 GiB; the next month's refresh "
            "within 5 s (20,000 clients x 36 months)"
        )


if __name__ == "__main__":
    main()
