"""Commands of the ``rmreco`` CLI and the one place where errors become exit codes."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, ParamSpec

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rmreco.config import Settings, get_settings
from rmreco.domain.errors import (
    ConfigurationError,
    DatabaseError,
    DataContractError,
    RmrecoError,
)

#: Exit codes scripts can rely on. 2 is click's own code for a usage error.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INPUT_REFUSED = 3
EXIT_CONFIGURATION = 4
EXIT_DATABASE = 5

app = typer.Typer(
    name="rmreco",
    help="Credit and cross-sell recommendations for banks' relationship managers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The relational database: migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")

P = ParamSpec("P")

err_console = Console(stderr=True)
out_console = Console()


def _settings() -> Settings:
    return get_settings()


def _parse_month(value: str) -> date:
    try:
        year, month = value.split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        raise typer.BadParameter(f"expected a month as YYYY-MM, got {value!r}") from None


def translate_errors(command: Callable[P, None]) -> Callable[P, None]:
    """The one place where rmreco's errors become a message on stderr and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except RmrecoError as exc:
            label, code = next(
                (exit_ for cls, exit_ in _ERROR_EXITS.items() if isinstance(exc, cls)),
                ("error", EXIT_FAILED),
            )
            err_console.print(f"[bold red]{label}:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(code) from None

    return wrapper


_ERROR_EXITS: dict[type[RmrecoError], tuple[str, int]] = {
    DataContractError: ("error", EXIT_INPUT_REFUSED),
    ConfigurationError: ("configuration error", EXIT_CONFIGURATION),
    DatabaseError: ("database error", EXIT_DATABASE),
}


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    """Credit and cross-sell recommendations for banks' relationship managers."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else getattr(logging, _settings().log_level.upper(), 20),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
@translate_errors
def generate(
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write the tables into (new or empty).")
    ],
    clients: Annotated[int, typer.Option("--clients", min=1, help="Number of clients.")] = 2000,
    months: Annotated[int, typer.Option("--months", min=13, help="Months of history.")] = 36,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same bytes.")] = 7,
    start: Annotated[
        str, typer.Option("--start", help="First month of the history, YYYY-MM.")
    ] = "2022-01",
) -> None:
    """Generate a synthetic bank: the contract's tables plus the ground truth under truth/."""
    start_month = _parse_month(start)
    from rmreco.data.synthetic import generate_bank

    with _progress() as progress:
        task = progress.add_task("generating clients", total=clients)
        try:
            summary = generate_bank(
                out,
                n_clients=clients,
                n_months=months,
                seed=seed,
                start_month=start_month,
                on_progress=lambda k: progress.advance(task, k),
            )
        except ValueError as exc:  # arguments the generator refuses, e.g. a non-empty --out
            raise typer.BadParameter(str(exc)) from None
    for table, rows in summary.rows.items():
        out_console.print(f"{table:>24}: {rows:>12,} rows")
    out_console.print(f"wrote {summary.out_dir} in {summary.seconds:.1f} s")


@app.command()
@translate_errors
def ingest(
    folder: Annotated[
        Path,
        typer.Argument(
            help="Folder of Parquet or CSV files named after the contract's tables.",
            exists=True,
            file_okay=False,
        ),
    ],
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL (default: RMRECO_DATABASE_URL or the embedded SQLite file)."
        ),
    ] = None,
) -> None:
    """Validate a folder of input tables against the data contract and load it, all or nothing."""
    from rmreco.data.ingest import ingest_folder
    from rmreco.db.engine import create_engine_for

    settings = _settings()
    url = db or settings.resolved_database_url
    if db is None:
        settings.ensure_home()
    engine = create_engine_for(url)
    try:
        summary = ingest_folder(folder, engine, settings=settings)
    finally:
        engine.dispose()
    for table, rows in summary.rows.items():
        out_console.print(f"{table:>24}: {rows:>12,} rows")
    out_console.print(f"loaded {folder} into the database (ingest run {summary.run_id})")


@db_app.command("upgrade")
@translate_errors
def db_upgrade(
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL (default: RMRECO_DATABASE_URL or the embedded SQLite file)."
        ),
    ] = None,
) -> None:
    """Create or migrate the database schema to the latest revision."""
    from rmreco.db.migrate import current, upgrade

    settings = _settings()
    if db is None:
        settings.ensure_home()
    url = db or settings.resolved_database_url
    upgrade(url)
    out_console.print(f"database at revision {current(url)}")


@db_app.command("current")
@translate_errors
def db_current(
    db: Annotated[str | None, typer.Option("--db", help="Database URL.")] = None,
) -> None:
    """Print the database's schema revision (empty when never migrated)."""
    from rmreco.db.migrate import current

    out_console.print(current(db or _settings().resolved_database_url) or "(not migrated)")


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def main() -> None:
    """Console-script entry point."""
    app()
