"""Benchmark of the synthetic bank generator: account-month rows per second against the target
of issue 15 (1,000,000 a second), peak memory and CPU time.

Each repeat runs ``generate_bank`` in a fresh Python process, so the peak resident memory
reported is that run's own. Output goes to a temporary folder that is deleted afterwards. The
CPU seconds (user and system, every thread of the process) show the work done whatever else
the machine is running: on a machine shared with other work, the wall time also measures the
others.

    python benchmarks/bench_generate.py [--clients 1000000] [--months 36] [--repeats 3]
        [--personal-share 0.2] [--partitions 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

#: Issue 15's target: account-month rows written per second.
TARGET_ROWS_PER_SECOND = 1_000_000

_CHILD = """
import json, resource, sys
from pathlib import Path
from rmreco.synthetic import generate_bank
out, clients, months, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
personal_share, partitions = float(sys.argv[5]), int(sys.argv[6]) or None
summary = generate_bank(
    out,
    n_clients=clients,
    n_months=months,
    seed=seed,
    personal_share=personal_share,
    partitions=partitions,
)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(
    json.dumps(
        {
            "seconds": summary.seconds,
            "rows": summary.rows,
            "peak_kib": usage.ru_maxrss,  # KiB on Linux
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
        }
    )
)
"""


def _run_once(
    clients: int, months: int, seed: int, personal_share: float, partitions: int
) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="rmreco-bench-") as tmp:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                _CHILD,
                str(Path(tmp) / "bank"),
                str(clients),
                str(months),
                str(seed),
                str(personal_share),
                str(partitions),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--personal-share", type=float, default=0.0, help="share of personal clients (default 0)"
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=0,
        help="write the client-partitioned layout with this many parts (default 0: one file "
        "per table)",
    )
    args = parser.parse_args(argv)

    rates: list[float] = []
    seconds: list[float] = []
    peaks: list[float] = []
    cpus: list[float] = []
    rows: dict[str, int] = {}
    for repeat in range(1, args.repeats + 1):
        result = _run_once(
            args.clients, args.months, args.seed, args.personal_share, args.partitions
        )
        rows = dict(result["rows"])  # type: ignore[call-overload]
        secs = float(result["seconds"])  # type: ignore[arg-type]
        peak = float(result["peak_kib"]) / 2**20  # type: ignore[arg-type]
        cpu = float(result["cpu_seconds"])  # type: ignore[arg-type]
        rate = rows["account_months"] / secs
        rates.append(rate)
        seconds.append(secs)
        peaks.append(peak)
        cpus.append(cpu)
        print(
            f"run {repeat}: {secs:8.1f} s  {rate:12,.0f} account-month rows/s "
            f"({rate / TARGET_ROWS_PER_SECOND:4.2f} x target)  peak RSS {peak:5.2f} GiB  "
            f"CPU {cpu:7.1f} s",
            flush=True,
        )
    rate = statistics.median(rates)
    print(
        f"median: {statistics.median(seconds):8.1f} s  {rate:12,.0f} account-month rows/s "
        f"({rate / TARGET_ROWS_PER_SECOND:4.2f} x the target of "
        f"{TARGET_ROWS_PER_SECOND:,})  peak RSS {max(peaks):5.2f} GiB (max)  "
        f"CPU {statistics.median(cpus):7.1f} s on {os.cpu_count()} cores"
    )
    layout = f"{args.partitions} parts" if args.partitions else "one file per table"
    print(
        f"clients {args.clients:,} x months {args.months} (personal share "
        f"{args.personal_share:g}, {layout}); rows written:"
    )
    for name, count in rows.items():
        print(f"  {name:<24} {count:>14,}")


if __name__ == "__main__":
    main()
