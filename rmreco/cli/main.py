"""This module owns the root of the ``rmreco`` command line: the Typer app and its ``--verbose``
option (what libraries may print: :func:`configure_output`), the exit codes scripts rely on, the
one place where rmreco's errors become those codes (:func:`translate_errors`), and what the area
modules share (consoles, progress displays, common options). The areas (``data``, ``train``,
``models``, ``users``, ``serve``) add their commands to it in ``rmreco/cli/__init__.py``.

A command prints its own output (what it did, and the warnings of the work it reports); logs
are for ``--verbose``. By default only errors are logged to stderr: MLflow's INFO lines, the
lines it prints when it registers a model, its warnings (the CloudPickle note on every logged
model) and its download bars are left out, as are Python warnings and rmreco's own log lines. A
running service is the exception: its warnings are its output (:func:`show_service_logs`). The
library code never prints progress: it tells callbacks (``on_step``, ``on_rows``), and the
commands draw them with rich.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column
from rich.text import Text

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
DaskOption = Annotated[
    str | None,
    typer.Option(
        "--dask",
        help="Run on a Dask cluster: a scheduler's address (tcp://host:8786), or local[:N] for a "
        "local cluster of N worker processes (default: one per core). The data must be a "
        "client-partitioned folder (rmreco generate --partitions N).",
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


#: MLflow's variables read when it is imported (the commands import it lazily, after the root
#: callback): the level of its own log handler, and its artifact download bars.
MLFLOW_LOGGING_LEVEL = "MLFLOW_LOGGING_LEVEL"
MLFLOW_PROGRESS_BARS = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@app.callback()
def _root(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Show libraries' logs (MLflow's among them) and rmreco's own."
        ),
    ] = False,
) -> None:
    """Credit and cross-sell recommendations for banks' relationship managers."""
    configure_output(verbose=verbose)


class _CommandLogHandler(RichHandler):
    """The log handler the command line puts on the root logger (drawn above progress bars)."""


class _ErrorsAndOwnWarnings(logging.Filter):
    """Errors, and rmreco's warnings when ``own_warnings``."""

    def __init__(self, *, own_warnings: bool) -> None:
        super().__init__()
        self.own_warnings = own_warnings

    def filter(self, record: logging.LogRecord) -> bool:
        is_own = record.name == "rmreco" or record.name.startswith("rmreco.")
        shown = logging.WARNING if is_own and self.own_warnings else logging.ERROR
        return record.levelno >= shown


def configure_output(*, verbose: bool, own_warnings: bool = False) -> None:
    """What reaches stderr besides a command's own output: with ``verbose``, every library's
    log at INFO and rmreco's at DEBUG; otherwise errors only, and rmreco's warnings when
    ``own_warnings`` (see the module docstring). Replaces what an earlier call set up (commands
    run in one process in tests)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _CommandLogHandler)]:
        root.removeHandler(handler)
    handler = _CommandLogHandler(
        console=err_console, show_time=verbose, show_path=False, markup=False
    )
    if verbose:
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler.addFilter(_ErrorsAndOwnWarnings(own_warnings=own_warnings))
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("rmreco").setLevel(logging.DEBUG if verbose else logging.WARNING)
    # Python warnings (a library's FutureWarning) become log records, shown with --verbose
    logging.captureWarnings(True)
    # MLflow's loggers have their own handler and do not propagate: its level is set by the
    # variable when it is imported later, and on its logger when it was imported already
    mlflow_level = "INFO" if verbose else "ERROR"
    os.environ[MLFLOW_LOGGING_LEVEL] = mlflow_level
    os.environ[MLFLOW_PROGRESS_BARS] = "true" if verbose else "false"
    logging.getLogger("mlflow").setLevel(mlflow_level)


def is_verbose() -> bool:
    """Whether the running command was given ``--verbose``, as :func:`configure_output` set
    the logging up for it (the one record of that choice)."""
    return logging.getLogger("rmreco").level == logging.DEBUG


def show_service_logs() -> None:
    """Show rmreco's warnings from here on: a running service has no other way to say that
    its registry is unreachable or its database slow."""
    configure_output(verbose=is_verbose(), own_warnings=True)


def quiet_mlflow() -> None:
    """Close MLflow's own output stream unless ``--verbose``: besides its log lines, MLflow
    prints to it when it registers a model ("Successfully registered model ...", "Created
    version ..."), which no log level silences. Call it in a command that trains or registers,
    where MLflow is imported anyway."""
    from mlflow.utils.logging_utils import disable_logging, enable_logging

    if is_verbose():
        enable_logging()
    else:
        disable_logging()


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


class _CountColumn(ProgressColumn):
    """``done/total unit`` for a task counted in units (a ``unit`` field); nothing for a task
    told in steps."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit")
        if unit is None or task.total is None:
            return Text("")
        count = f"{int(task.completed):,}/{int(task.total):,} {unit}"
        return Text(count, style="progress.download", no_wrap=True)


def work_progress() -> Progress:
    """A progress display for tasks counted in units (e.g. a table's rows, added with a
    ``unit`` field) and tasks told in steps (:func:`steps`): a bar each, the count, the time."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        _CountColumn(table_column=Column(no_wrap=True)),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


@contextmanager
def steps(progress: Progress, title: str) -> Iterator[Callable[[str], None]]:
    """A task of ``progress`` for work told in steps, and the ``on_step`` callback that shows
    each step after ``title``; the bar is full when the block ends without an error."""
    task = progress.add_task(escape(title), total=None)

    def on_step(message: str) -> None:
        progress.update(task, description=escape(f"{title}: {message}"))

    yield on_step
    progress.update(task, description=escape(title), total=1, completed=1)


def main() -> None:
    """Console-script entry point."""
    app()
