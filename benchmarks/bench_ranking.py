"""Benchmark: how well the financing options' order agrees with the clients' true need, on a
synthetic bank whose exact take-up probabilities are known.

    python benchmarks/bench_ranking.py [--clients 3000] [--months 36] [--seeds 7 8 9]

For each seed: generates a bank, trains and registers the shipped SME credit-risk and
cross-sell specs in a temporary MLflow store, runs batch scoring (the same
``decide_financing`` as the service's financing answer) at the last month, and compares each
SME's ranked options with the generator's true 3-month take-up probability of each product
(``truth/cross_sell``): NDCG@3 of the served order (expected profit x the client's take-up
propensity) beside the order by expected profit alone (margin x limit, the order before
propensities). Printed per seed and the median over seeds, with the number of distinct orders
among twenty SMEs of different account behaviour.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _run(clients: int, months: int, seed: int, work: Path) -> dict[str, float]:
    from rmreco.config import Settings
    from rmreco.domain.contract import TRUTH_CROSS_SELL, TRUTH_DIR
    from rmreco.modeling.credit_model import pd_column
    from rmreco.modeling.spec import load_credit_risk_spec, load_cross_sell_spec
    from rmreco.synthetic import generate_bank
    from rmreco.synthetic.truth import TRUTH_CROSS_SELL_COLUMNS
    from rmreco.training.agreement import financing_agreement
    from rmreco.training.credit_risk import train_credit_risk
    from rmreco.training.cross_sell import train_cross_sell
    from rmreco.training.scoring import FINANCING_FILE, score_batch

    bank = work / "bank"
    generate_bank(bank, n_clients=clients, n_months=months, seed=seed)
    settings = Settings(home=work / "home")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    credit_spec = ROOT / "models" / "sme_credit_risk.yaml"
    cross_spec = ROOT / "models" / "cross_sell.yaml"
    credit = load_credit_risk_spec(credit_spec)
    train_credit_risk(bank, spec_path=credit_spec, settings=settings, tracking_uri=uri)
    train_cross_sell(bank, spec_path=cross_spec, settings=settings, tracking_uri=uri)
    as_of = pd.to_datetime(pd.read_parquet(bank / "account_months.parquet")["month"]).max().date()
    out = work / "scores"
    score_batch(
        bank,
        as_of=as_of,
        out=out,
        settings=settings,
        tracking_uri=uri,
        credit_models=[credit.name],
        cross_sell_models=[load_cross_sell_spec(cross_spec).name],
        policy_path=ROOT / "models" / "credit_policy.yaml",
    )
    financing = pd.read_parquet(out / FINANCING_FILE)
    truth = pd.read_parquet(
        bank / TRUTH_DIR / f"{TRUTH_CROSS_SELL}.parquet", columns=list(TRUTH_CROSS_SELL_COLUMNS)
    )
    agreement = financing_agreement(financing, truth)
    for line in agreement.lines():
        print(f"  {line}")
    # twenty SMEs with different account behaviour (spread over the PD range)
    offered = financing.dropna(subset=["product_code"])
    clients_pd = offered.drop_duplicates("client_id").sort_values(
        pd_column(credit.label.horizon_months)
    )
    picked = clients_pd.iloc[:: max(1, len(clients_pd) // 20)].head(20)["client_id"]
    orders = {
        tuple(offered[offered["client_id"] == c].sort_values("rank")["product_code"])
        for c in picked
    }
    print(f"  distinct orders among 20 SMEs spread over the PD range: {len(orders)}")
    return {"ranked": agreement.ranked, "by_profit": agreement.by_profit, "twenty": len(orders)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=3000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    results = []
    for seed in args.seeds:
        started = time.perf_counter()
        print(f"seed {seed}: {args.clients:,} clients x {args.months} months")
        with tempfile.TemporaryDirectory() as tmp:
            results.append(_run(args.clients, args.months, seed, Path(tmp)))
        print(f"  ({time.perf_counter() - started:.0f} s)")
    ranked = statistics.median(r["ranked"] for r in results)
    by_profit = statistics.median(r["by_profit"] for r in results)
    print(
        f"median over {len(results)} banks: NDCG@3 served order {ranked:.3f}, by expected "
        f"profit (margin x limit) {by_profit:.3f}, difference {ranked - by_profit:+.3f}"
    )


if __name__ == "__main__":
    main()
