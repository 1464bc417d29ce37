"""This module owns the registry commands of the CLI: ``models list``, ``models promote`` and
``models rollback`` (the champion alias by hand), and ``score-batch`` (every client scored by
the champions into files). Registered names come from the specs of the models folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import TypeAdapter, ValidationError

from rmreco.cli.main import (
    DaskOption,
    DataOption,
    TrackingOption,
    current_settings,
    out_console,
    parse_month,
    steps,
    translate_errors,
    work_progress,
)
from rmreco.config import ExplainedOffers, Settings

app = typer.Typer()
models_app = typer.Typer(help="The Model Registry: list, promote, roll back.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
@translate_errors
def models_list(
    name: Annotated[str | None, typer.Argument(help="Registered model (default: all).")] = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """List registered model versions with their aliases, test metric and gate decision."""
    from mlflow import MlflowClient

    from rmreco.training.registry import list_versions
    from rmreco.training.tracking import configure_mlflow

    configure_mlflow(current_settings(), tracking_uri)
    # each model's gated test metric: AUC for credit risk, MAP@5 for cross-sell
    shown = {"oot_auc": "auc", "oot_map_at_5": "map@5"}
    rows = list_versions(MlflowClient(), [name] if name else None, metric_names=tuple(shown))
    if not rows:
        typer.echo("no registered models")
    # one line per version, whatever the terminal's width: people read it and scripts grep it
    for r in rows:
        metric = " ".join(
            f"{label} {r.metrics[key]:.4f}" for key, label in shown.items() if key in r.metrics
        )
        aliases = f"[{','.join(r.aliases)}]" if r.aliases else "[]"
        typer.echo(f"{r.name}  v{r.version}  {aliases}  {r.created}  {metric or '-'}  {r.gate}")


@models_app.command("promote")
@translate_errors
def models_promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version to make champion.")],
    tracking_uri: TrackingOption = None,
) -> None:
    """Make VERSION the champion of NAME by hand (the gates are the training run's)."""
    from mlflow import MlflowClient

    from rmreco.training.registry import promote
    from rmreco.training.tracking import configure_mlflow

    configure_mlflow(current_settings(), tracking_uri)
    promote(MlflowClient(), name, version, reason="promoted by hand (rmreco models promote)")
    out_console.print(f"{name}: champion is now v{version}")


@models_app.command("rollback")
@translate_errors
def models_rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    tracking_uri: TrackingOption = None,
) -> None:
    """Return the champion alias of NAME to the version that held it before."""
    from mlflow import MlflowClient

    from rmreco.training.registry import rollback
    from rmreco.training.tracking import configure_mlflow

    configure_mlflow(current_settings(), tracking_uri)
    previous = rollback(MlflowClient(), name)
    out_console.print(f"{name}: champion rolled back to v{previous}")


@app.command("score-batch")
@translate_errors
def score_batch(
    data: DataOption,
    as_of: Annotated[str, typer.Option("--as-of", help="Month to score, YYYY-MM.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the scores into.")],
    tracking_uri: TrackingOption = None,
    dask: DaskOption = None,
    explain_offers: Annotated[
        str | None,
        typer.Option(
            "--explain-offers",
            help="How many of each client's cross-sell offers, the first by rank, carry their "
            "reasons: a number, or all (default: the RMRECO_EXPLAINED_OFFERS setting, "
            f"{Settings.model_fields['explained_offers'].default}). The others carry null.",
        ),
    ] = None,
) -> None:
    """Score every performing client at a month with the champion models, each client by the
    credit model of its segment and each model with the feature settings it was trained with:
    PD and grade (credit.parquet), the policy decision and ranked financing options
    (financing.parquet) and, when a cross-sell champion exists, ranked credit-aware offers, each
    client by the cross-sell model of its segment (cross_sell.parquet), the first offers of each
    client with their reasons.

    With --dask, a client-partitioned folder (`rmreco generate --partitions N`) is scored part by
    part on a Dask cluster, one file per part and output (credit/part-00000.parquet, ...); a run
    killed part-way and started again finishes the parts it had not written."""
    month = parse_month(as_of)
    from rmreco.modeling.spec import CreditRiskSpec, CrossSellSpec, find_specs
    from rmreco.training.scoring import score_batch as run

    settings = current_settings()
    if explain_offers is not None:
        settings = settings.model_copy(
            update={"explained_offers": _explained_offers(explain_offers)}
        )
    specs = [found.spec for found in find_specs(settings.resolved_models_dir)]
    arguments = {
        "as_of": month,
        "out": out,
        "settings": settings,
        "tracking_uri": tracking_uri,
        "credit_models": [s.name for s in specs if isinstance(s, CreditRiskSpec)],
        "cross_sell_models": [s.name for s in specs if isinstance(s, CrossSellSpec)],
        "policy_path": settings.policy_path,
    }
    with work_progress() as progress, steps(progress, f"scoring {month:%Y-%m}") as step:
        if dask is None:
            summary = run(data, on_step=step, **arguments)  # type: ignore[arg-type]
        else:
            from rmreco.training.cluster import dask_client, parse_address
            from rmreco.training.partitioned import score_batch_partitioned

            address = parse_address(dask)
            step(f"starting {address.describe()}")
            with dask_client(address) as client:
                summary = score_batch_partitioned(
                    data,
                    client=client,
                    on_step=step,
                    **arguments,  # type: ignore[arg-type]
                )
    for file, rows in summary.files.items():
        shown = out / file if dask is None else out / Path(file).stem
        out_console.print(f"{shown}: {rows:,} rows")
    for model, version in summary.model_versions.items():
        out_console.print(f"{model}: v{version}")
    for message in summary.skipped.values():
        out_console.print(f"[yellow]{message}")


def _explained_offers(value: str) -> int | str:
    """``--explain-offers``, read as the setting reads it; a usage error otherwise."""
    try:
        return TypeAdapter(ExplainedOffers).validate_python(value.strip().lower())
    except ValidationError:
        raise typer.BadParameter(
            f"expected a number of offers (0 or more) or all, got {value!r}",
            param_hint="--explain-offers",
        ) from None
