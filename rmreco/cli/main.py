"""This module owns the root of the ``rmreco`` command line: the Typer app and its ``--verbose``
option, the exit codes scripts rely on, the one place where rmreco's errors become those codes
(:func:`translate_errors`), and what the area modules share (consoles, progress displays,
common options). The areas (``data``, ``train``, ``models``, ``users``, ``serve``) add their
commands to it in ``rmreco/cli/__init__.py``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec

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

if TYPE_CHECKING:
    from sqlalchemy import Engine

#: Exit codes scripts can rely on. 2 is click's own code for a usage error.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INPUT_REFUSED = 3
EXIT_CONFIGURATION = 4
EXIT_DATABASE = 5

_ERROR_EXITS: dict[type[RmrecoError], tuple[str, int]] = {
    DataContractError: ("error", EXIT_INPUT_REFUSED),
    ConfigurationError: ("configuration error", EXIT_CONFIGURATION),
    DatabaseError: ("database error", EXIT_DATABASE),
}

app = typer.Typer(
    name="rmreco",
    help="Credit and cross-sell recommendations for banks' relationship managers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

err_console = Console(stderr=True)
out_console = Console()

P = ParamSpec("P")

# Options several areas share.
TrackingOption = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: RMRECO_TRACKING_URI or the embedded SQLite store).",
    ),
]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (default: RMRECO_DATABASE_URL or the embedded SQLite file)."
    ),
]
DataOption = Annotated[
    Path,
    typer.Option("--data", help="Folder of the contract's tables.", exists=True, file_okay=False),
]


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    """Credit and cross-sell recommendations for banks' relationship managers."""
    logging.basicConfig(
        # the commands print what they did; library logs are for --verbose
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        # MLflow gives its logger its own INFO handler (configured when mlflow is imported,
        # which the commands do lazily: hence the variable too); its progress lines are noise
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        logging.getLogger("mlflow").setLevel(logging.WARNING)


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


def current_settings() -> Settings:
    """The settings as the environment says now."""
    return get_settings()


def parse_month(value: str) -> date:
    """A ``YYYY-MM`` option as the first day of that month; a usage error otherwise."""
    try:
        year, month = value.split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        raise typer.BadParameter(f"expected a month as YYYY-MM, got {value!r}") from None


def database_url(db: str | None) -> str:
    """``--db``, or the settings' database (creating the home folder its embedded default
    lives in)."""
    if db is not None:
        return db
    settings = current_settings()
    settings.ensure_home()
    return settings.resolved_database_url


def open_engine(db: str | None) -> Engine:
    """An engine on :func:`database_url`."""
    from rmreco.db.engine import create_engine_for

    return create_engine_for(
        database_url(db), sqlite_synchronous=current_settings().sqlite_synchronous
    )


def progress_bar() -> Progress:
    """A progress display for work counted in units (e.g. clients generated)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def spinner() -> Progress:
    """A progress display for work told in steps: the current step and the time elapsed."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def main() -> None:
    """Console-script entry point."""
    app()
