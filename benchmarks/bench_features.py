"""Benchmark: the point-in-time feature panel against a plain polars computation of the same
account features, on one synthetic bank, in the same run.

    python benchmarks/bench_features.py [--clients 100000] [--months 36] [--repeats 3]
                                        [--data FOLDER]

Each measurement runs in a fresh subprocess so that its peak memory (ru_maxrss, the child's
whole life: reading its inputs included) is its own. Printed: per run, then the median wall
time and the highest peak of

- ``rmreco``: ``build_credit_panel`` from the contract's tables as pandas frames (features of
  every client-month, default status, labels) and of ``build_features`` alone;
- ``plain polars, same``: the builder's own account-feature expressions applied directly to
  the account_months file in polars, eagerly (``DataFrame.with_columns``): no monthly grid, no
  joins of clients, holdings, events or financials, no labels, no pandas at the edges. The
  ratios to it, in time and in memory, are the cost of the package's structure: the figures
  the target is about;
- ``plain polars, same, lazy``: the same in one lazy query (polars' streaming engine): faster
  than the eager one, and holding about twice its memory; printed for the record;
- ``plain polars, 15``: 15 of the same rolling account features (15 rolling features at
  every client-month) written directly in polars on the account_months file, no joins, no
  labels, no pandas: the floor a hand-tuned script reaches.

Target (issue 15): at 100,000 clients x 36 months, the credit panel within 1.2x of plain
polars, same, in time and in memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _child_build(data: str, what: str) -> None:
    import pandas as pd

    from rmreco.features import FeatureInputs, build_credit_panel, build_features

    def read(name: str) -> pd.DataFrame:
        return pd.read_parquet(Path(data) / f"{name}.parquet")

    inputs = FeatureInputs(
        account_months=read("account_months"),
        clients=read("clients"),
        holdings=read("holdings"),
        credit_events=read("credit_events"),
        financials=read("financials"),
        products=read("products"),
    )
    started = time.perf_counter()
    frame = build_credit_panel(inputs) if what == "panel" else build_features(inputs)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        json.dumps(
            {"seconds": seconds, "peak_gib": peak, "rows": len(frame), "columns": frame.shape[1]}
        )
    )


def _child_plain(data: str) -> None:
    import polars as pl

    started = time.perf_counter()
    am = pl.read_parquet(Path(data) / "account_months.parquet").sort(["client_id", "month"])
    c = pl.col

    def mean(e: pl.Expr, w: int) -> pl.Expr:
        return e.rolling_mean(w, min_samples=1).over("client_id")

    inflow, outflow = c("credit_turnover"), c("debit_turnover")
    in3, in12 = mean(inflow, 3), mean(inflow, 12)
    od = pl.when(c("overdraft_limit") > 0).then(c("overdraft_peak_use") / c("overdraft_limit"))
    in_od = (c("days_in_overdraft") > 0).cast(pl.Float64)
    out = am.with_columns(
        (in3 * 3 + 1).log().alias("inflow_3m_log"),
        ((in3 - mean(outflow, 3)) / in3).alias("net_flow_ratio_3m"),
        ((in12 - mean(outflow, 12)) / in12).alias("net_flow_ratio_12m"),
        (in3 / in3.shift(3).over("client_id") - 1).alias("inflow_growth_3m"),
        (in3 / in3.shift(12).over("client_id") - 1).alias("inflow_growth_yoy"),
        (inflow.rolling_std(12, min_samples=3).over("client_id") / in12).alias(
            "inflow_volatility_12m"
        ),
        (mean(c("balance_avg"), 3) / in12).alias("balance_to_inflow_3m"),
        (c("balance_avg").rolling_std(6, min_samples=3).over("client_id") / in12).alias(
            "balance_volatility_6m"
        ),
        mean(od, 3).alias("overdraft_use_3m"),
        mean(od, 12).alias("overdraft_use_12m"),
        in_od.rolling_sum(3, min_samples=1).over("client_id").alias("overdraft_months_3m"),
        in_od.rolling_sum(12, min_samples=1).over("client_id").alias("overdraft_months_12m"),
        c("dpd_max").rolling_max(3, min_samples=1).over("client_id").alias("dpd_3m"),
        c("dpd_max").rolling_max(12, min_samples=1).over("client_id").alias("dpd_12m"),
        c("returned_payments")
        .rolling_sum(12, min_samples=1)
        .over("client_id")
        .alias("returned_payments_12m"),
    )
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        json.dumps({"seconds": seconds, "peak_gib": peak, "rows": out.height, "columns": out.width})
    )


def _child_same(data: str, lazy: bool = False) -> None:
    from plain_polars import account_features

    started = time.perf_counter()
    out = account_features(Path(data) / "account_months.parquet", lazy=lazy)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        json.dumps({"seconds": seconds, "peak_gib": peak, "rows": out.height, "columns": out.width})
    )


def _child_same_lazy(data: str) -> None:
    _child_same(data, lazy=True)


def _run(args: list[str]) -> dict[str, float]:
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"benchmark child {args} failed:\n{result.stderr[-3000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, help="use this bank instead of generating one")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, data = args.child
        if what == "plain":
            _child_plain(data)
        elif what == "same":
            _child_same(data)
        elif what == "lazy":
            _child_same_lazy(data)
        else:
            _child_build(data, what)
        return

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from rmreco.synthetic import generate_bank

            data = Path(tmp) / "bank"
            print(f"generating {args.clients:,} clients x {args.months} months ...", flush=True)
            generate_bank(data, n_clients=args.clients, n_months=args.months, seed=1)
        results: dict[str, list[dict[str, float]]] = {
            "panel": [],
            "features": [],
            "same": [],
            "lazy": [],
            "plain": [],
        }
        for k in range(args.repeats):
            for what in results:
                r = _run(["--child", what, str(data)])
                results[what].append(r)
                print(
                    f"run {k + 1} {what:>8}: {r['seconds']:6.2f} s, peak {r['peak_gib']:.2f} "
                    f"GiB, {int(r['rows']):,} rows x {int(r['columns'])} columns",
                    flush=True,
                )
        median = {w: statistics.median(r["seconds"] for r in rs) for w, rs in results.items()}
        peak = {w: max(r["peak_gib"] for r in rs) for w, rs in results.items()}
        print()
        print(f"{'':>26} {'median s':>9} {'peak GiB':>9}")
        labels = {
            "panel": "rmreco credit panel",
            "features": "rmreco features",
            "same": "plain polars, same",
            "lazy": "plain polars, same, lazy",
            "plain": "plain polars, 15",
        }
        for what, label in labels.items():
            print(f"{label:>26} {median[what]:9.2f} {peak[what]:9.2f}")
        for what, reference in (("panel", "same"), ("features", "same"), ("panel", "lazy")):
            print(
                f"{labels[what]} / {labels[reference]}: "
                f"time {median[what] / median[reference]:.2f}x, "
                f"memory {peak[what] / peak[reference]:.2f}x"
            )
        per = median["plain"] / 15
        print(f"plain polars per rolling feature: {per * 1000:.0f} ms")
        print(
            "target: rmreco credit panel / plain polars, same: 1.2x or less in time and in memory"
        )


if __name__ == "__main__":
    main()
