"""Benchmark: a client-partitioned bank on one process beside a 2-worker Dask LocalCluster.

    python benchmarks/bench_scale.py [--clients 1000000] [--months 36] [--parts 40]
        [--workers 2] [--train-clients 20000] [--train-parts 4] [--skip-single]

Generates the bank with ``--parts`` parts (``rmreco generate --partitions``), then measures,
each in a fresh process:

- **feature build**: ``snapshot_frame`` (features and default status of every client-month) of
  the whole book in one process, and of every part on the cluster
  (``rmreco.training.partitioned.snapshot_frames``), each part's frame computed, counted and
  dropped (a million clients' 36 months of features, about 10 GB, are not held anywhere);
- **training**: ``rmreco train credit-risk`` then ``rmreco train cross-sell`` on a partitioned
  bank of ``--train-clients`` clients (``--train-parts`` parts), in one process and with
  ``--dask local:N`` (``lightgbm.dask``), each place into an MLflow store of its own; the
  out-of-time AUC (credit) and MAP@5 (cross-sell) printed beside the time. Training reads the
  whole book's panel of every month; a million clients' panel does not fit this machine's
  workers, hence the smaller bank;
- **batch scoring** at the last month: ``rmreco score-batch`` in one process, and
  ``rmreco score-batch --dask local:N`` (one file per part), with champions trained on that
  training bank (the scored book's size does not change what a model is);

and prints wall time, the single process's peak RSS and each cluster worker's peak RSS (read in
the workers; for a command, the largest of the command and its workers), with the ratio
single / cluster. Targets (issue 15, 1,000,000 clients x 36 months): batch scoring on the cluster
within 60 s, no worker above 4 GiB. ``--skip-single`` leaves out the single-process feature build
and scoring of the big bank (at a million clients they need more than 20 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RMRECO = Path(sys.executable).parent / "rmreco"


def _child(args: list[str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark child {args} failed:\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _features_single(bank: str) -> None:
    from rmreco.features.config import SnapshotParams, snapshot_frame
    from rmreco.features.inputs import read_feature_inputs

    started = time.perf_counter()
    inputs, _ = read_feature_inputs(Path(bank))
    frame = snapshot_frame(inputs, SnapshotParams())
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps({"seconds": seconds, "rows": len(frame), "peak_gib": peak}))


def _worker_peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _features_cluster(bank: str, workers: str) -> None:
    from rmreco.features.config import SnapshotParams
    from rmreco.training.cluster import dask_client, parse_address
    from rmreco.training.partitioned import snapshot_frames

    with dask_client(parse_address(f"local:{workers}")) as client:
        started = time.perf_counter()
        frames = snapshot_frames(Path(bank), SnapshotParams())
        rows = int(client.compute(frames.map_partitions(len).sum()).result())
        seconds = time.perf_counter() - started
        peaks = list(client.run(_worker_peak_gib).values())
    print(json.dumps({"seconds": seconds, "rows": rows, "worker_peak_gib": peaks}))


def _score(bank: str, out: str, as_of: str, home: str, uri: str, dask: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RMRECO_", "MLFLOW_"))}
    env.update(RMRECO_HOME=home, RMRECO_TRACKING_URI=uri)
    command = [str(RMRECO), "score-batch", "--data", bank, "--as-of", as_of, "--out", out]
    if dask != "-":
        command += ["--dask", f"local:{dask}"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"score-batch failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    # this child's only children: the command and, on the cluster, its worker processes
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    print(json.dumps({"seconds": seconds, "peak_gib": peak, "stdout": done.stdout[-2000:]}))


#: The figure of each training job printed beside its time (the two runs should agree)
TRAINING_METRIC = {"credit-risk": "oot_auc", "cross-sell": "oot_map_at_5"}


def _train_command(bank: str, home: str, dask: str, job: str) -> None:
    """``rmreco train JOB`` on ``bank`` into a fresh store under ``home``: wall time, peak RSS
    (the command and, on the cluster, its workers: the largest) and the run's test figure
    (:data:`TRAINING_METRIC`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RMRECO_", "MLFLOW_"))}
    env["RMRECO_HOME"] = home
    command = [str(RMRECO), "train", job, "--data", bank]
    if dask != "-":
        command += ["--dask", f"local:{dask}"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:  # a gate not passed still exits 0: the model is registered
        raise SystemExit(f"train failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    metric = TRAINING_METRIC[job]
    value = next(
        (
            float(line.split()[-1])
            for line in done.stdout.splitlines()
            if line.strip().startswith(f"{metric}:")
        ),
        float("nan"),
    )
    print(json.dumps({"seconds": seconds, "peak_gib": peak, "metric": metric, "value": value}))


def _generate(folder: str, clients: str, months: str, parts: str, seed: str = "1") -> None:
    from rmreco.synthetic import generate_bank

    summary = generate_bank(
        Path(folder),
        n_clients=int(clients),
        n_months=int(months),
        seed=int(seed),
        partitions=int(parts),
    )
    print(json.dumps({"account_rows": summary.rows["account_months"]}))


def _champions(tmp: str, bank: str) -> None:
    home, uri = _train(Path(tmp), Path(bank))
    print(json.dumps({"home": home, "uri": uri}))


def _train(tmp: Path, bank: Path) -> tuple[str, str]:
    """Champions trained on ``bank`` in this process: (RMRECO_HOME, tracking URI)."""
    from rmreco.config import Settings
    from rmreco.training.credit_risk import train_credit_risk
    from rmreco.training.cross_sell import train_cross_sell
    from rmreco.training.registry import promote

    home = tmp / "home"
    settings = Settings(home=home)
    uri = settings.resolved_tracking_uri
    for spec, train in (
        ("sme_credit_risk.yaml", train_credit_risk),
        ("cross_sell.yaml", train_cross_sell),
    ):
        raw = yaml.safe_load((ROOT / "models" / spec).read_text())
        path = tmp / spec
        path.write_text(yaml.safe_dump(raw))
        result = train(bank, spec_path=path, settings=settings, tracking_uri=uri)
        if not result.gate.passed:  # scoring needs a champion; the gate is not what is measured
            from mlflow import MlflowClient

            promote(
                MlflowClient(tracking_uri=uri),
                result.model_name,
                str(result.version),
                reason="benchmark: a champion to score with",
            )
    return str(home), uri


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--parts", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--train-clients", type=int, default=20_000)
    parser.add_argument("--train-parts", type=int, default=4)
    parser.add_argument("--skip-single", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, *rest = args.child
        children: dict[str, Callable[..., None]] = {
            "features-single": _features_single,
            "features-cluster": _features_cluster,
            "score": _score,
            "train": _train_command,
            "generate": _generate,
            "champions": _champions,
        }
        children[what](*rest)
        return

    with tempfile.TemporaryDirectory(prefix="rmreco-scale-") as name:
        tmp = Path(name)
        # the banks are generated and the champions trained in children too: a child's peak
        # RSS (ru_maxrss) starts from its parent's size at the fork, kept across exec
        print(f"generating {args.clients:,} clients x {args.months} months in {args.parts} parts")
        started = time.perf_counter()
        made = _child(
            ["generate", str(tmp / "bank"), str(args.clients), str(args.months), str(args.parts)]
        )
        print(
            f"  {made['account_rows']:,} account rows in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        train_bank = tmp / "train-bank"
        _child(
            [
                "generate",
                str(train_bank),
                str(args.train_clients),
                str(args.months),
                str(args.train_parts),
                "3",
            ]
        )
        print(f"training champions on {args.train_clients:,} clients ...", flush=True)
        champions = _child(["champions", str(tmp), str(train_bank)])
        home, uri = str(champions["home"]), str(champions["uri"])
        import pandas as pd

        months = pd.read_parquet(tmp / "bank" / "account_months" / "part-00000.parquet")
        as_of = f"{pd.to_datetime(months['month']).max():%Y-%m}"
        bank = str(tmp / "bank")
        rows: list[tuple[str, str, dict[str, object]]] = []
        if not args.skip_single:
            rows.append(("feature build", "single", _child(["features-single", bank])))
        rows.append(
            ("feature build", "cluster", _child(["features-cluster", bank, str(args.workers)]))
        )
        for job in TRAINING_METRIC:
            for where, dask in (("single", "-"), ("cluster", str(args.workers))):
                # credit-risk first: cross-sell's financing order is measured with its champion
                store = str(tmp / f"train-{where}")
                result = _child(["train", str(train_bank), store, dask, job])
                rows.append((f"train {job}", where, result))
        if not args.skip_single:
            single = _child(["score", bank, str(tmp / "s1"), as_of, home, uri, "-"])
            rows.append(("batch scoring", "single", single))
        cluster = _child(["score", bank, str(tmp / "s2"), as_of, home, uri, str(args.workers)])
        rows.append(("batch scoring", "cluster", cluster))
        print()
        print(f"{args.clients:,} clients x {args.months} months, {args.parts} parts, as of {as_of}")
        print(f"{'':>20} {'':>8} {'wall s':>8}  peak memory")
        for what, where, result in rows:
            if "worker_peak_gib" in result:
                peaks = ", ".join(f"{p:.2f}" for p in result["worker_peak_gib"])  # type: ignore[attr-defined]
                memory = f"workers {peaks} GiB"
            else:
                label = "process" if where == "single" else "command and workers, largest"
                memory = f"{label} {result['peak_gib']:.2f} GiB"
            figure = f"  {result['metric']} {result['value']:.4f}" if "metric" in result else ""
            print(f"{what:>20} {where:>8} {result['seconds']:8.1f}  {memory}{figure}")
        trained_on = f"{args.train_clients:,} clients x {args.months} months"
        print(f"(training: {trained_on}, {args.train_parts} parts)")
        by = {(w, p): float(r["seconds"]) for w, p, r in rows}  # type: ignore[arg-type]
        for what in (
            "feature build",
            *(f"train {job}" for job in TRAINING_METRIC),
            "batch scoring",
        ):
            if (what, "single") in by:
                ratio = by[(what, "single")] / by[(what, "cluster")]
                print(f"ratio {what} single / cluster: {ratio:.2f}x")
        print("targets: cluster batch scoring within 60 s; no worker above 4 GiB")


if __name__ == "__main__":
    main()
