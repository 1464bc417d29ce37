"""Benchmark: batch scoring (``score_clients``) stage by stage, in one process.

    python benchmarks/bench_scoring.py [--clients 20000] [--months 24] [--train-clients 3000]
        [--train-months 36] [--repeats 3] [--work DIR] [--profile 25]

Generates a bank (``rmreco.synthetic.generate_bank``, its default book of SMEs and corporates),
trains the champions of the shipped model specs that serve it (credit: SME LightGBM, corporate
scorecard; cross-sell: SMEs and corporates) on a small bank of ``--train-clients`` x
``--train-months`` into a temporary MLflow store (as ``bench_scale.py`` does: the scored book's
size does not change what a model is), then times each stage of
``rmreco.training.scoring.score_clients`` at the bank's last month with the same functions it
calls, in wall and CPU seconds (CPU is what counts on a shared machine):

- **features**: each credit champion's snapshot frame and each cross-sell champion's panel;
- **credit**: PD, grade and reasons of every client (TreeSHAP), and the credit table;
- **propensities**: every candidate offer's propensity, once (the financing options' and the
  offers');
- **financing**: the policy decision and ranked financing options of every client;
- **offers**: every candidate offer's expected value and rank, credit-aware, and the reasons
  (TreeSHAP) of each client's first ``--explain-offers`` offers (default: the
  ``RMRECO_EXPLAINED_OFFERS`` setting's default);
- **write**: the files' columns and Parquet files;

and the whole of ``score_clients`` end to end; the median over ``--repeats`` runs of each, the
process's peak RSS, and the reference the issue asks for: plain ``lgb.Booster.predict`` of the
same matrices (every LightGBM credit champion's clients, every cross-sell booster's rows), with
the ratio scoring / plain predict. ``--profile N`` prints cProfile's N most expensive functions
(cumulative) of one more ``score_clients`` run. ``--work DIR`` keeps the bank and the champions
in DIR and reuses them on the next run with the same sizes. Target (issue 15): 1,000,000 clients
within 60 s on a 2-worker LocalCluster, about 100 µs of CPU per client for everything.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: The specs trained: the shipped models of the generator's default book (SMEs and corporates;
#: it holds no personal clients, so the personal cross-sell model has no champion).
SPECS = ("sme_credit_risk.yaml", "corporate_credit_risk.yaml", "cross_sell.yaml")


def _train(bank: Path, home: Path) -> str:
    """Champions of :data:`SPECS` trained on ``bank`` into an MLflow store in ``home``: its
    tracking URI. A model whose gate fails is promoted anyway (scoring needs a champion; the gate
    is not what is measured)."""
    from mlflow import MlflowClient

    from rmreco.config import Settings
    from rmreco.training.credit_risk import train_credit_risk
    from rmreco.training.cross_sell import train_cross_sell
    from rmreco.training.registry import promote

    settings = Settings(home=home)
    uri = settings.resolved_tracking_uri
    for spec in SPECS:
        raw = yaml.safe_load((ROOT / "models" / spec).read_text())
        train = train_credit_risk if raw["kind"] == "credit_risk" else train_cross_sell
        path = home / spec
        path.write_text(yaml.safe_dump(raw))
        result = train(bank, spec_path=path, settings=settings, tracking_uri=uri)
        if not result.gate.passed:
            promote(
                MlflowClient(tracking_uri=uri),
                result.model_name,
                str(result.version),
                reason="benchmark: a champion to score with",
            )
        print(f"  trained {result.model_name} v{result.version}", flush=True)
    return uri


def prepare(
    work: Path, clients: int, months: int, train_clients: int, train_months: int
) -> tuple[Path, Path, str]:
    """The scored bank, the champions' home and their tracking URI, in ``work`` (made when not
    there yet: the bank with seed 1, the training bank with seed 3)."""
    from rmreco.config import Settings
    from rmreco.synthetic import generate_bank

    bank = work / f"bank-{clients}x{months}"
    if not bank.exists():
        print(f"generating {clients:,} clients x {months} months ...", flush=True)
        generate_bank(bank, n_clients=clients, n_months=months, seed=1)
    home = work / f"champions-{train_clients}x{train_months}"
    done = home / "trained"
    if not done.exists():
        if home.exists():
            raise SystemExit(f"{home} holds a training that did not finish: remove it")
        home.mkdir(parents=True)
        train_bank = work / f"train-bank-{train_clients}x{train_months}"
        if not train_bank.exists():
            generate_bank(train_bank, n_clients=train_clients, n_months=train_months, seed=3)
        print(f"training champions on {train_clients:,} clients ...", flush=True)
        _train(train_bank, home)
        done.write_text("ok\n")
    return bank, home, Settings(home=home).resolved_tracking_uri


def load(bank: Path, home: Path, uri: str) -> dict[str, Any]:
    """What ``score_batch`` reads before it scores: inputs, champions, policy, currency, as-of."""
    from rmreco.config import Settings
    from rmreco.features.inputs import read_feature_inputs
    from rmreco.modeling.policy import load_policy
    from rmreco.modeling.spec import CreditRiskSpec, CrossSellSpec, find_specs
    from rmreco.training.scoring import load_scoring_champions, observed_span

    settings = Settings(home=home)
    specs = [found.spec for found in find_specs(settings.resolved_models_dir)]
    inputs, validated = read_feature_inputs(bank)
    currency = validated.currency or settings.currency
    champions = load_scoring_champions(
        settings=settings,
        credit_models=[s.name for s in specs if isinstance(s, CreditRiskSpec)],
        cross_sell_models=[s.name for s in specs if isinstance(s, CrossSellSpec)],
        tracking_uri=uri,
    )
    span = observed_span(inputs, champions)
    assert span is not None
    return {
        "inputs": inputs,
        "champions": champions,
        "policy": load_policy(settings.policy_path).in_currency(currency),
        "currency": currency,
        "as_of": span[1],
    }


def stages(loaded: dict[str, Any], out: Path) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds of each stage of ``score_clients``, run as it runs them (the same
    functions)."""
    from rmreco.training import scoring as s

    inputs, champions = loaded["inputs"], loaded["champions"]
    as_of: date = loaded["as_of"]
    currency: str = loaded["currency"]
    credit = champions.credit
    horizons = sorted({c.model.horizon_months for c in credit})
    seconds: dict[str, tuple[float, float]] = {}
    clock = (time.perf_counter(), time.process_time())

    def lap(name: str) -> None:
        nonlocal clock
        now = (time.perf_counter(), time.process_time())
        seconds[name] = (now[0] - clock[0], now[1] - clock[1])
        clock = now

    frames = [s.snapshot_frame(inputs, c.model.config.snapshot, months=[as_of]) for c in credit]
    frames = [
        f[c.model.config.scored(f)].reset_index(drop=True)
        for c, f in zip(credit, frames, strict=True)
    ]
    panels = {
        name: model.config.cross_sell_panel(inputs, months=[as_of])
        for name, (model, _) in champions.cross_sell.items()
    }
    lap("features")
    scored = [
        s.ScoredClients(c, f, c.model.predict(f, with_reasons=True, currency=currency))
        for c, f in zip(credit, frames, strict=True)
    ]
    scores = s.score_table(scored)
    credit_frame = scores.assign(as_of=pd.Series([as_of] * len(scores), dtype="object"))[
        list(s.CREDIT_COLUMNS)
    ]
    lap("credit")
    predicted = {
        name: model.predict(panels[name], with_reasons=False)
        for name, (model, _) in champions.cross_sell.items()
    }
    propensities: dict[str, dict[str, float]] = {}
    for name, (model, _) in champions.cross_sell.items():
        propensities.update(s.client_propensities(model, panels[name], predictions=predicted[name]))
    lap("propensities")
    financing = s.financing_decisions(scored, inputs, as_of, loaded["policy"], propensities)
    views = s.credit_views(financing)
    lap("financing")
    parts = []
    for name, (model, version) in champions.cross_sell.items():
        offers = s.cross_sell_offers(
            panels[name],
            model,
            as_of,
            views,
            credit[0].model.scale,
            currency=currency,
            predictions=predicted[name],
            explained=loaded["explained"],
        )
        offers["model_name"] = name
        offers["model_version"] = version
        parts.append(offers)
    lap("offers")
    staged = {
        s.CREDIT_FILE: s.horizon_columns(credit_frame, horizons),
        s.CROSS_SELL_FILE: s.horizon_columns(pd.concat(parts, ignore_index=True), horizons),
        s.FINANCING_FILE: s.horizon_columns(financing, horizons),
    }
    for name, frame in staged.items():
        frame.to_parquet(out / name, index=False)
    lap("write")
    return seconds


def end_to_end(loaded: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """``score_clients`` as ``score_batch`` calls it."""
    from rmreco.training.scoring import score_clients

    return score_clients(
        loaded["inputs"],
        as_of=loaded["as_of"],
        champions=loaded["champions"],
        policy=loaded["policy"],
        currency=loaded["currency"],
        explained_offers=loaded["explained"],
    )


def plain_predict(loaded: dict[str, Any]) -> Callable[[], None]:
    """The reference: ``lgb.Booster.predict`` of the matrices scoring feeds its boosters (each
    LightGBM credit champion's clients, each cross-sell booster's rows), with the models'
    threads; the matrices are built once, outside the timing."""
    from rmreco.training import scoring as s

    inputs, champions, as_of = loaded["inputs"], loaded["champions"], loaded["as_of"]
    calls: list[tuple[Any, np.ndarray, int]] = []
    for c in champions.credit:
        if c.model.booster is None:  # a scorecard: no LightGBM to compare with
            continue
        frame = s.snapshot_frame(inputs, c.model.config.snapshot, months=[as_of])
        frame = frame[c.model.config.scored(frame)]
        calls.append((c.model.booster, c.model.encoder.transform(frame), c.model.threads))
    for model, _ in champions.cross_sell.values():
        X = model.encoder.transform(model.config.cross_sell_panel(inputs, months=[as_of]))
        for key, rows in model._groups(X):
            if len(rows):
                calls.append((model.boosters[key], X[rows], model.threads))

    def run() -> None:
        for booster, X, threads in calls:
            booster.predict(X, num_threads=threads)

    return run


def _median(runs: list[float]) -> float:
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--train-clients", type=int, default=3_000)
    parser.add_argument(
        "--train-months", type=int, default=36, help="the out-of-time splits need 36 months"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="keep bank and champions here")
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions")
    parser.add_argument(
        "--explain-offers",
        default=None,
        help="offers explained per client: a number or all (default: the setting's default)",
    )
    args = parser.parse_args()
    from rmreco.config import Settings

    explained = Settings(
        **({} if args.explain_offers is None else {"explained_offers": args.explain_offers})
    ).resolved_explained_offers

    with tempfile.TemporaryDirectory(prefix="rmreco-scoring-") as name:
        work = args.work or Path(name)
        work.mkdir(parents=True, exist_ok=True)
        bank, home, uri = prepare(
            work, args.clients, args.months, args.train_clients, args.train_months
        )
        loaded = load(bank, home, uri) | {"explained": explained}
        out = Path(name) / "out"
        out.mkdir()
        runs: dict[str, list[tuple[float, float]]] = {}
        sizes: dict[str, int] = {}
        for _ in range(args.repeats):
            for stage, seconds in stages(loaded, out).items():
                runs.setdefault(stage, []).append(seconds)
            started = (time.perf_counter(), time.process_time())
            staged = end_to_end(loaded)
            runs.setdefault("score_clients", []).append(
                (time.perf_counter() - started[0], time.process_time() - started[1])
            )
            sizes = {file: len(frame) for file, frame in staged.items()}
        reference = plain_predict(loaded)
        for _ in range(args.repeats):
            started = (time.perf_counter(), time.process_time())
            reference()
            runs.setdefault("plain predict", []).append(
                (time.perf_counter() - started[0], time.process_time() - started[1])
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2

        clients = max(sizes.get("credit.parquet", 0), 1)
        median = {
            k: (_median([w for w, _ in v]), _median([c for _, c in v])) for k, v in runs.items()
        }
        scoring = [k for k in median if k not in ("features", "score_clients", "plain predict")]
        median["stages but features"] = (
            sum(median[k][0] for k in scoring),
            sum(median[k][1] for k in scoring),
        )
        print()
        print(
            f"{args.clients:,} clients x {args.months} months, as of {loaded['as_of']:%Y-%m}, "
            f"{clients:,} scored; offers explained per client: "
            f"{'all' if explained is None else explained}; median of {args.repeats}; rows: "
            + ", ".join(f"{file} {rows:,}" for file, rows in sizes.items())
        )
        print(f"{'':>20} {'wall s':>8} {'CPU s':>8} {'CPU µs/client':>14}")
        for stage, (wall, cpu) in median.items():
            print(f"{stage:>20} {wall:8.2f} {cpu:8.2f} {cpu / clients * 1e6:14.0f}")
        ratio = median["stages but features"][1] / median["plain predict"][1]
        print(f"ratio scoring (stages but features) / plain predict, CPU: {ratio:.1f}x")
        print(f"peak RSS {peak:.2f} GiB")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            end_to_end(loaded)
            profiler.disable()
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(args.profile)
            print(text.getvalue())
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(args.profile)
            print(text.getvalue())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
