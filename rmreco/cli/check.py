"""This module owns ``rmreco data check FOLDER``: the data's profile and, for every spec of the
models folder, whether it can train on that data, printed as rich tables or (``--json``) as JSON.
It reads and writes nothing else; its exit code tells scripts whether every spec can train
(:data:`EXIT_CANNOT_TRAIN` when one cannot).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rmreco.cli.main import current_settings, out_console, translate_errors
from rmreco.domain import contract

if TYPE_CHECKING:
    from rmreco.training.feasibility import DataCheck, DataProfile, MonthSpan

#: Exit code of ``data check`` when the data is valid but some spec cannot train on it (0: every
#: spec can; 3: the data breaks the contract; 4: the models folder or a spec is invalid).
EXIT_CANNOT_TRAIN = 6

app = typer.Typer()
data_app = typer.Typer(help="Checks of a bank's data before training.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("check")
@translate_errors
def check(
    folder: Annotated[
        Path,
        typer.Argument(
            help="Folder of Parquet or CSV files named after the contract's tables.",
            exists=True,
            file_okay=False,
        ),
    ],
    models_dir: Annotated[
        Path | None,
        typer.Option(
            "--models-dir",
            help="Folder of model specs (default: RMRECO_MODELS_DIR or the shipped models/).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Profile a data folder and tell which model specs can train on it; writes nothing.

    Exit code 0 when every spec can train, 6 when some cannot (the reasons name the setting that
    would fit), 3 when the data breaks the contract, 4 when a spec is invalid.
    """
    from rmreco.training.feasibility import check_data

    result = check_data(folder, models_dir or current_settings().resolved_models_dir)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print(result)
    if not result.can_all_train:
        raise typer.Exit(EXIT_CANNOT_TRAIN)


def _print(result: DataCheck) -> None:
    profile = result.profile
    out_console.print(_overview(profile))
    out_console.print(_segments(profile))
    if profile.extra_columns:
        out_console.print(_extra_columns(profile))
    out_console.print(_adoptions(profile))
    verdicts = Table(title="Can each spec train on this data?", show_lines=True)
    verdicts.add_column("spec", no_wrap=True)  # whole names, to copy into train commands
    for column in ("segments", "horizon", "verdict"):
        verdicts.add_column(column)
    for verdict in result.verdicts:
        if verdict.can_train:
            text = "[green]can train[/]: " + ", ".join(
                f"{k.removesuffix('_period')} {v}" for k, v in verdict.periods.items()
            )
        else:
            text = "[red]cannot train[/]: " + "; ".join(escape(r) for r in verdict.reasons)
        verdicts.add_row(
            escape(verdict.name),
            ", ".join(verdict.segments),
            f"{verdict.horizon_months} m",
            text,
        )
    out_console.print(verdicts)
    for note in profile.notes:
        out_console.print(escape(note))
    for warning in profile.warnings:
        out_console.print(f"[yellow]warning:[/] {escape(warning)}")


def _overview(profile: DataProfile) -> Table:
    table = Table(title=f"Data in {escape(profile.folder)}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("currency", profile.currency or "(not stated)")
    table.add_row("account months", _span(profile.account_months))
    if profile.months_from != [contract.ACCOUNT_MONTHS.name]:
        sources = ", ".join(profile.months_from) or "no dated table"
        table.add_row("observation months", f"{_span(profile.observation_months)}, from {sources}")
    if profile.as_of_months.count:
        table.add_row("clients' as-of months", _span(profile.as_of_months))
    if profile.extract_date is not None:
        table.add_row("extract date (manifest)", profile.extract_date)
    for horizon, outcome in profile.outcome_months.items():
        months = f"{outcome.first}..{outcome.last}" if outcome.count else "none"
        table.add_row(
            f"months with a complete {horizon}-month outcome", f"{months} ({outcome.count})"
        )
    defaults = profile.defaults
    months = f"in {defaults.months.count} months" if defaults.events else ""
    table.add_row("default events", f"{defaults.events:,} {months}".strip())
    other = {k: v for k, v in defaults.events_by_type.items() if k != "default"}
    if other:
        table.add_row("other credit events", ", ".join(f"{k} {v:,}" for k, v in other.items()))
    roles = ", ".join(f"{role} {n:,}" for role, n in profile.rms_by_role.items())
    table.add_row("RMs per role", roles or "none")
    fin = profile.financials
    table.add_row(
        "financials",
        f"{fin.clients:,} clients ({fin.share_of_clients:.0%}), years {fin.first_year}.."
        f"{fin.last_year}"
        if fin.clients
        else "none",
    )
    table.add_row("tables given (rows)", ", ".join(f"{k} {v:,}" for k, v in profile.tables.items()))
    table.add_row("tables not given", ", ".join(profile.absent_tables) or "none")
    return table


def _span(span: MonthSpan) -> str:
    return f"{span.first}..{span.last} ({span.count} months)" if span.count else "none"


def _extra_columns(profile: DataProfile) -> Table:
    table = Table(title="The bank's own columns (used as features)")
    for column in ("table", "column", "kind"):
        table.add_column(column)
    for name, kinds in profile.extra_columns.items():
        for column, kind in kinds.items():
            table.add_row(name, escape(column), kind)
    return table


def _segments(profile: DataProfile) -> Table:
    table = Table(title="Clients per segment")
    for column in ("segment", "clients", "clients with a default"):
        table.add_column(column, justify="right" if column != "segment" else "left")
    rates = profile.defaults.client_rate_by_segment
    for segment, count in profile.clients_by_segment.items():
        rate = rates.get(segment)
        table.add_row(segment, f"{count:,}", "-" if rate is None else f"{rate:.2%}")
    return table


def _adoptions(profile: DataProfile) -> Table:
    table = Table(title="Adoptions per product (starts inside the history)")
    for column in ("product", "adoptions", "months"):
        table.add_column(column, justify="left" if column == "product" else "right")
    for code, found in profile.adoptions.items():
        months = f"{found.months.first}..{found.months.last} ({found.months.count})"
        table.add_row(escape(code), f"{found.count:,}", months if found.count else "-")
    return table
