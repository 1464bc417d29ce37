"""Benchmark of the synthetic bank generator: account-month rows per second and peak memory.

Each repeat runs ``generate_bank`` in a fresh Python process, so the peak resident memory
reported is that run's own. Output goes to a temporary folder that is deleted afterwards.

    python benchmarks/bench_generate.py [--clients 1000000] [--months 36] [--repeats 3]
        [--personal-share 0.2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import json, resource, sys
from pathlib import Path
from rmreco.synthetic import generate_bank
out, clients, months, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
personal_share = float(sys.argv[5])
summary = generate_bank(
    out, n_clients=clients, n_months=months, seed=seed, personal_share=personal_share
)
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"seconds": summary.seconds, "rows": summary.rows, "peak_kib": peak_kib}))
"""


def _run_once(clients: int, months: int, seed: int, personal_share: float) -> dict[str, object]:
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
    args = parser.parse_args(argv)

    rates: list[float] = []
    seconds: list[float] = []
    peaks: list[float] = []
    rows: dict[str, int] = {}
    for repeat in range(1, args.repeats + 1):
        result = _run_once(args.clients, args.months, args.seed, args.personal_share)
        rows = dict(result["rows"])  # type: ignore[call-overload]
        secs = float(result["seconds"])  # type: ignore[arg-type]
        peak = float(result["peak_kib"]) / 2**20  # type: ignore[arg-type]
        rate = rows["account_months"] / secs
        rates.append(rate)
        seconds.append(secs)
        peaks.append(peak)
        print(
            f"run {repeat}: {secs:8.1f} s  {rate:12,.0f} account-month rows/s  "
            f"peak RSS {peak:5.2f} GiB",
            flush=True,
        )
    print(
        f"median: {statistics.median(seconds):8.1f} s  {statistics.median(rates):12,.0f} "
        f"account-month rows/s  peak RSS {max(peaks):5.2f} GiB (max)"
    )
    print(
        f"clients {args.clients:,} x months {args.months} (personal share "
        f"{args.personal_share:g}); rows written:"
    )
    for name, count in rows.items():
        print(f"  {name:<24} {count:>14,}")


if __name__ == "__main__":
    main()
