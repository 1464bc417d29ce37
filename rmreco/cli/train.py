"""This module owns the modelling commands of the CLI: ``train credit-risk`` and ``train
cross-sell`` (fit, register, gate) and the backtests ``evaluate`` and ``evaluate-cross-sell``.
Specs default to the files of the models folder (``RMRECO_MODELS_DIR``, else the shipped ones).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from rmreco.cli.main import (
    DaskOption,
    DataOption,
    TrackingOption,
    current_settings,
    out_console,
    quiet_mlflow,
    steps,
    translate_errors,
    work_progress,
)
from rmreco.config import CREDIT_SPEC_FILE, CROSS_SELL_SPEC_FILE

if TYPE_CHECKING:
    from rmreco.training.run import TrainingResult

app = typer.Typer()
train_app = typer.Typer(help="Train models; every run is tracked in MLflow.", no_args_is_help=True)
app.add_typer(train_app, name="train")


def _spec_help(file: str) -> str:
    return f"Model specification (YAML; default: {file} of the models folder)."


CreditSpecOption = Annotated[Path | None, typer.Option("--spec", help=_spec_help(CREDIT_SPEC_FILE))]
CrossSellSpecOption = Annotated[
    Path | None, typer.Option("--spec", help=_spec_help(CROSS_SELL_SPEC_FILE))
]
VersionOption = Annotated[
    str | None, typer.Option("--version", help="Registered version (default: the champion).")
]

CREDIT_REPORT = (
    "oot_auc",
    "oot_gini",
    "oot_ks",
    "oot_brier",
    "oot_logloss",
    "baseline_oot_auc",
    "oracle_oot_auc",
    "oot_mean_pd",
    "oot_default_rate",
)
CROSS_SELL_REPORT = (
    "oot_map_at_5",
    "oot_ndcg_at_5",
    "oot_precision_at_1",
    "popularity_oot_map_at_5",
    "logistic_oot_map_at_5",
    "oracle_oot_map_at_5",
    "oot_adoption_rate",
    "oot_mean_propensity",
)

#: A training job of ``rmreco.training`` (``train_credit_risk``, ``train_cross_sell``).
Job = Callable[..., "TrainingResult"]
#: The steps a training job tells that are printed with its report, not only shown in passing.
TOLD_AFTER = ("note: ", "warning: ")


@train_app.command("credit-risk")
@translate_errors
def train_credit_risk(
    data: DataOption,
    spec: CreditSpecOption = None,
    tracking_uri: TrackingOption = None,
    experiment: Annotated[
        str, typer.Option("--experiment", help="MLflow experiment name.")
    ] = "rmreco-credit-risk",
    dask: DaskOption = None,
) -> None:
    """Train the SME credit-risk (12-month PD) model, register it, and gate its promotion.

    With --dask, the features, the split and LightGBM's fit (lightgbm.dask) run part by part on
    a Dask cluster; the model is registered and served as one trained in one process."""
    from rmreco.training.credit_risk import train_credit_risk as job

    _train(
        job,
        data,
        spec,
        CREDIT_SPEC_FILE,
        tracking_uri=tracking_uri,
        experiment=experiment,
        report=CREDIT_REPORT,
        dask=dask,
    )


@train_app.command("cross-sell")
@translate_errors
def train_cross_sell(
    data: DataOption,
    spec: CrossSellSpecOption = None,
    tracking_uri: TrackingOption = None,
    experiment: Annotated[
        str, typer.Option("--experiment", help="MLflow experiment name.")
    ] = "rmreco-cross-sell",
    dask: DaskOption = None,
) -> None:
    """Train the cross-sell propensity models, register the better one, and gate its promotion.

    With --dask, the panels, the split and the LightGBM fits (lightgbm.dask: the stacked model,
    then one per product) run part by part on a Dask cluster; the model is registered and served
    as one trained in one process."""
    from rmreco.training.cross_sell import train_cross_sell as job

    _train(
        job,
        data,
        spec,
        CROSS_SELL_SPEC_FILE,
        tracking_uri=tracking_uri,
        experiment=experiment,
        report=CROSS_SELL_REPORT,
        dask=dask,
    )


@app.command("evaluate")
@translate_errors
def evaluate(
    data: DataOption,
    spec: CreditSpecOption = None,
    version: VersionOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Backtest a registered credit-risk version on another bank's or a later period's data.

    The spec names the registered model; the panel is built with the version's own feature
    settings (horizon, events, cure months, financials lag, segments) and test window."""
    from rmreco.modeling.spec import load_credit_risk_spec
    from rmreco.training.credit_risk import evaluate_credit_model

    settings = current_settings()
    model = load_credit_risk_spec(spec or settings.spec_path(CREDIT_SPEC_FILE))
    with work_progress() as progress, steps(progress, f"evaluating {model.name}") as step:
        result = evaluate_credit_model(
            data,
            model_name=model.name,
            settings=settings,
            tracking_uri=tracking_uri,
            version=version,
            on_step=step,
        )
    out_console.print(
        f"v{result.model_version} on {result.test_period} ({result.rows:,} snapshots)"
    )
    for key, value in result.metrics.items():
        out_console.print(f"{key:>20}: {value:.4f}")


@app.command("evaluate-cross-sell")
@translate_errors
def evaluate_cross_sell(
    data: DataOption,
    spec: CrossSellSpecOption = None,
    version: VersionOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Rank another bank's or a later period's test window as score-batch does, and measure
    MAP@5 against the adoptions that followed."""
    from rmreco.modeling.spec import credit_specs, load_cross_sell_spec
    from rmreco.training.cross_sell import evaluate_cross_sell as run

    settings = current_settings()
    model = load_cross_sell_spec(spec or settings.spec_path(CROSS_SELL_SPEC_FILE))
    with work_progress() as progress, steps(progress, f"evaluating {model.name}") as step:
        result = run(
            data,
            model_name=model.name,
            settings=settings,
            tracking_uri=tracking_uri,
            version=version,
            credit_models=[s.name for s in credit_specs(settings.resolved_models_dir)],
            on_step=step,
        )
    graded = ", ".join(f"{name} v{v}" for name, v in result.credit_versions.items())
    credit = f", credit grades from {graded}" if graded else ""
    out_console.print(
        f"v{result.model_version} on {result.test_period} ({result.rows:,} offers{credit})"
    )
    for key, value in result.metrics.items():
        out_console.print(f"{key:>24}: {value:.4f}")
    k = next(
        (n.removeprefix("oot_map_at_") for n in result.metrics if n.startswith("oot_map_at_")), "5"
    )
    compared = [
        (label, name)
        for label, name in (
            ("propensity order", f"oot_map_at_{k}"),
            ("value order (the list's rank)", f"value_oot_map_at_{k}"),
        )
        if name in result.reference and name in result.metrics
    ]
    if compared:
        out_console.print(f"MAP@{k} here against the version's own out-of-time test:")
    for label, name in compared:
        here, there = result.metrics[name], result.reference[name]
        out_console.print(
            f"{label:>30}: {here:.4f} vs {there:.4f} ({here / there:.1%})"
            if there > 0
            else f"{label:>30}: {here:.4f} vs {there:.4f}"
        )


def _train(
    job: Job,
    data: Path,
    spec: Path | None,
    default_spec: str,
    *,
    tracking_uri: str | None,
    experiment: str,
    report: tuple[str, ...],
    dask: str | None = None,
) -> None:
    """Run a training job on ``spec`` (default: ``default_spec`` of the models folder) under a
    progress display that shows its steps, then print the metrics named in ``report``; with
    ``dask`` (a ``--dask`` address), on that Dask cluster."""
    settings = current_settings()
    spec_path = spec or settings.spec_path(default_spec)
    quiet_mlflow()
    # the job tells its notes and warnings as steps: they are this command's output, printed
    # with the report (library logs are for --verbose)
    told: list[str] = []
    with work_progress() as progress, steps(progress, f"training {spec_path.name}") as step:

        def on_step(message: str) -> None:
            if message.startswith(TOLD_AFTER):
                told.append(message)
            step(message)

        arguments: dict[str, Any] = {
            "spec_path": spec_path,
            "settings": settings,
            "tracking_uri": tracking_uri,
            "experiment": experiment,
            "on_step": on_step,
        }
        if dask is None:
            result = job(data, **arguments)
        else:  # Dask is imported only now: the commands without --dask never pay for it
            from rmreco.training.cluster import dask_client, parse_address
            from rmreco.training.partitioned import partition_count

            address = parse_address(dask)
            partition_count(data)  # a folder that is not partitioned is refused before a start
            step(f"starting {address.describe()}")
            with dask_client(address) as client:
                result = job(data, client=client, **arguments)
    _report_training(result, report)
    for message in told:
        if message not in result.comparison:  # the comparison repeats some warnings
            out_console.print(escape(message), highlight=False)


def _report_training(result: TrainingResult, keys: tuple[str, ...]) -> None:
    """What a training run did: its version, the metrics in ``keys``, the comparison, the gate."""
    out_console.print(
        f"run {result.run_id}: {result.model_name} v{result.version} ({result.registered_kind})"
    )
    width = max(len(k) for k in keys)
    for key in keys:
        if key in result.metrics:
            out_console.print(f"{key:>{width}}: {result.metrics[key]:.4f}")
    out_console.print(result.comparison)
    out_console.print(("[green]" if result.gate.passed else "[yellow]") + result.gate.reason)
