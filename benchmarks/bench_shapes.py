"""Benchmark: what each shape of bank extract costs rmreco's credit model, beside a plain
LightGBM on the same rows and columns.

    python benchmarks/bench_shapes.py [--clients 3000] [--months 36] [--seed 7]
        [--shapes full month_end ...] [--small-book 1300]

For each shape (``rmreco.synthetic.shapes``; all of them by default): writes the synthetic bank
of the same seed in that shape (``small_book`` keeps ``--small-book`` of its clients), trains
the shipped ``models/sme_credit_risk.yaml`` as ``rmreco train credit-risk`` does (in a temporary
MLflow store; with the overrides the shape needs: ``split.kind: client`` where the data has one
outcome window, and fewer bootstrap resamples, which only the intervals read), and reads the
test AUC of the registered model and of rmreco's LightGBM and scorecard. Then fits a plain
LightGBM (default parameters, early stopping on the AUC of the same calibration rows) on the
same fit rows and the same feature columns rmreco used, and scores the same test rows; and a
second LightGBM with rmreco's own parameters but no monotone constraints (what the constraints
cost). Prints the AUCs and the difference per shape; a shape the pipeline refuses prints the
refusal instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "models" / "sme_credit_risk.yaml"
#: Spec overrides per shape: data with one outcome window cannot be split out of time.
BOOTSTRAP_RESAMPLES = 50


@dataclass(frozen=True)
class Outcome:
    shape: str
    clients: int
    rmreco_auc: float | None = None
    rmreco_lightgbm_auc: float | None = None
    scorecard_auc: float | None = None
    plain_auc: float | None = None
    same_params_auc: float | None = None
    registered: str = ""
    features: int = 0
    rows: str = ""
    seconds: float = 0.0
    refusal: str = ""
    warnings: tuple[str, ...] = ()
    #: rmreco's AUC minus each baseline's; set for a median over seeds (the median of the
    #: paired differences, not the difference of the medians), else computed from the run
    gap_plain: float | None = None
    gap_same_params: float | None = None

    def gap(self, baseline: float | None, stored: float | None) -> float | None:
        if stored is not None:
            return stored
        if self.rmreco_auc is None or baseline is None:
            return None
        return self.rmreco_auc - baseline


def _spec(shape: str, work: Path) -> Path:
    raw = yaml.safe_load(SPEC.read_text())
    raw["validation"]["bootstrap_resamples"] = BOOTSTRAP_RESAMPLES
    from rmreco.synthetic.shape_options import ONE_OUTCOME_WINDOW

    if shape in ONE_OUTCOME_WINDOW:
        raw["split"]["kind"] = "client"
    path = work / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _plain_lightgbm(
    fit: pd.DataFrame,
    calibration: pd.DataFrame,
    test: pd.DataFrame,
    columns: list[str],
    seed: int,
    tuned: dict[str, Any] | None = None,
) -> float:
    """Test AUC of LightGBM with its default parameters (or ``tuned`` over them), early-stopped
    on the AUC of ``calibration``."""
    import lightgbm as lgb

    from rmreco.features.labels import LABEL
    from rmreco.modeling.metrics import auc

    frames = [fit[columns].copy(), calibration[columns].copy(), test[columns].copy()]
    for column in columns:
        if not pd.api.types.is_numeric_dtype(fit[column]) or pd.api.types.is_bool_dtype(
            fit[column]
        ):
            levels = sorted(fit[column].dropna().astype(str).unique())
            for frame in frames:
                frame[column] = pd.Categorical(
                    frame[column].astype("string").astype(object), categories=levels
                )
    # stopped on AUC, the measure compared: stopping on the default log-loss halts a 2% default
    # rate after a handful of trees and would flatter rmreco
    params: dict[str, Any] = {
        "objective": "binary",
        "metric": "auc",
        "verbosity": -1,
        "seed": seed,
        **(tuned or {}),
    }
    booster = lgb.train(
        params,
        lgb.Dataset(frames[0], label=fit[LABEL].astype(int)),
        num_boost_round=1000,
        valid_sets=[lgb.Dataset(frames[1], label=calibration[LABEL].astype(int))],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    scores = booster.predict(frames[2], num_iteration=booster.best_iteration)
    return float(auc(test[LABEL].to_numpy(dtype=int), scores))


def _run(shape: str, args: argparse.Namespace, work: Path) -> Outcome:
    from rmreco.config import Settings
    from rmreco.domain.errors import RmrecoError
    from rmreco.features.inputs import read_feature_inputs
    from rmreco.modeling.spec import load_credit_risk_spec
    from rmreco.synthetic.shape_options import ShapeOptions
    from rmreco.synthetic.shapes import write_shape
    from rmreco.training.credit_risk import build_split, train_credit_risk
    from rmreco.training.data_features import choose_features

    started = time.perf_counter()
    bank = work / "bank"
    summary = write_shape(
        bank,
        shape,
        n_clients=args.clients,
        n_months=args.months,
        seed=args.seed,
        options=ShapeOptions(small_book_clients=args.small_book),
    )
    clients = summary.rows["clients"]
    spec_path = _spec(shape, work)
    try:
        result = train_credit_risk(
            bank,
            spec_path=spec_path,
            settings=Settings(home=work / "home"),
            tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
        )
    except RmrecoError as refused:
        return Outcome(shape, clients, refusal=str(refused), seconds=time.perf_counter() - started)
    spec = load_credit_risk_spec(spec_path)
    inputs, _ = read_feature_inputs(bank)
    split = build_split(inputs, spec)
    choice = choose_features(
        spec.feature_names, split.fit, inputs.extra_columns, bank_columns=spec.bank_columns
    )
    plain = _plain_lightgbm(
        split.fit, split.calibration, split.test, list(choice.used), seed=spec.seed
    )
    # the same trees rmreco grows (its spec's parameters, leaves sized for the fit set) without
    # its monotone constraints: what the constraints cost, or give
    own = {
        k: v
        for k, v in spec.model.lightgbm.resolved_params(len(split.fit)).items()
        if not k.startswith("monotone") and k not in ("objective", "metric")
    }
    same_params = _plain_lightgbm(
        split.fit, split.calibration, split.test, list(choice.used), seed=spec.seed, tuned=own
    )
    metrics = result.metrics
    return Outcome(
        shape,
        clients,
        rmreco_auc=metrics["oot_auc"],
        rmreco_lightgbm_auc=metrics["lightgbm_oot_auc"],
        plain_auc=plain,
        same_params_auc=same_params,
        scorecard_auc=metrics["scorecard_oot_auc"],
        registered=result.registered_kind,
        warnings=tuple(
            line for line in result.comparison.splitlines() if line.startswith("warning:")
        ),
        features=len(choice.used),
        rows=f"{len(split.fit):,}/{len(split.calibration):,}/{len(split.test):,}",
        seconds=time.perf_counter() - started,
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


def _print(outcomes: list[Outcome], title: str) -> None:
    header = (
        "shape",
        "clients",
        "rmreco AUC",
        "rmreco LightGBM",
        "rmreco scorecard",
        "plain LightGBM",
        "rmreco - plain",
        "rmreco params, no monotone",
        "rmreco - that",
        "features",
        "fit/cal/test rows",
        "s",
    )
    rows = [
        (
            o.shape,
            f"{o.clients:,}",
            _number(o.rmreco_auc),
            _number(o.rmreco_lightgbm_auc),
            _number(o.scorecard_auc),
            _number(o.plain_auc),
            _signed(o.gap(o.plain_auc, o.gap_plain)),
            _number(o.same_params_auc),
            _signed(o.gap(o.same_params_auc, o.gap_same_params)),
            str(o.features) if o.features else "-",
            o.rows or "-",
            f"{o.seconds:.0f}",
        )
        for o in outcomes
    ]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print(" | ".join(header))
        for row in rows:
            print(" | ".join(row))
    else:
        table = Table(title=f"credit model per shape of extract (test AUC), {title}")
        for name in header:
            table.add_column(name, justify="left" if name == "shape" else "right")
        for row in rows:
            table.add_row(*row)
        Console(width=200).print(table)
    for o in outcomes:
        if o.refusal:
            print(f"{o.shape}: refused: {o.refusal}")
        else:
            print(f"{o.shape}: rmreco registered its {o.registered}")
            for warning in o.warnings:
                print(f"  {warning}")


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from rmreco.synthetic.shape_options import Shape

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=3000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="banks to run per shape (seeds --seed, --seed+1, ...); with more than one, a last "
        "table gives each shape's median AUCs (the small one-window books' test sets hold 10-15 "
        "defaults, so one seed is noisy)",
    )
    parser.add_argument("--small-book", type=int, default=1300)
    parser.add_argument(
        "--shapes", nargs="+", default=[s.value for s in Shape], choices=[s.value for s in Shape]
    )
    args = parser.parse_args()
    import mlflow  # noqa: F401  (configures its loggers on import: quieten them after)

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    first = args.seed
    by_seed: list[list[Outcome]] = []
    for seed in range(first, first + args.seeds):
        args.seed = seed
        outcomes = []
        for shape in args.shapes:
            print(f"{shape}: {args.clients:,} clients x {args.months} months, seed {seed}")
            with tempfile.TemporaryDirectory() as tmp:
                outcome = _run(shape, args, Path(tmp))
            outcomes.append(outcome)
            print(
                f"  rmreco {_number(outcome.rmreco_auc)}, plain LightGBM "
                f"{_number(outcome.plain_auc)} ({outcome.seconds:.0f} s)"
                + (f"; refused: {outcome.refusal}" if outcome.refusal else "")
            )
        _print(outcomes, f"seed {seed}")
        by_seed.append(outcomes)
    if len(by_seed) > 1:
        _print([_median(list(runs)) for runs in zip(*by_seed, strict=True)], "median over seeds")


def _median(runs: list[Outcome]) -> Outcome:
    """One shape's median figures over its runs (refused runs left out)."""
    done = [r for r in runs if not r.refusal]
    if not done:
        return runs[0]

    def median(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return float(np.median(known)) if known else None

    return Outcome(
        done[0].shape,
        done[0].clients,
        rmreco_auc=median([r.rmreco_auc for r in done]),
        rmreco_lightgbm_auc=median([r.rmreco_lightgbm_auc for r in done]),
        scorecard_auc=median([r.scorecard_auc for r in done]),
        plain_auc=median([r.plain_auc for r in done]),
        same_params_auc=median([r.same_params_auc for r in done]),
        gap_plain=median([r.gap(r.plain_auc, None) for r in done]),
        gap_same_params=median([r.gap(r.same_params_auc, None) for r in done]),
        registered=", ".join(
            f"{kind} in {n} of {len(runs)} runs"
            for kind, n in Counter(r.registered for r in done).most_common()
        ),
        features=done[0].features,
        rows=done[0].rows,
        seconds=float(np.median([r.seconds for r in done])),
    )


if __name__ == "__main__":
    main()
