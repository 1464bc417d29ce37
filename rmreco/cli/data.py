"""This module owns the data commands of the CLI: ``generate`` (a synthetic bank), ``ingest``
(a folder of input tables into the database), ``db upgrade`` / ``db current`` (the schema) and
``features refresh`` (the feature snapshots the service reads).

``ingest`` commits the load, then refreshes the feature snapshots in a second transaction. When
the refresh fails or the process is killed between the two, the load stays and the refresh is
owed (``rmreco.features.snapshots``): ``features refresh`` completes it, as does the service's
start, and the command says so when the refresh fails."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import TaskID

from rmreco.cli.main import (
    DbOption,
    current_settings,
    database_url,
    err_console,
    open_engine,
    out_console,
    parse_month,
    progress_bar,
    steps,
    translate_errors,
    work_progress,
)
from rmreco.synthetic.parameters import CORPORATE_SHARE, PERSONAL_SHARE
from rmreco.synthetic.shape_options import SHAPE_HELP, Shape

if TYPE_CHECKING:
    from rmreco.features.snapshots import SnapshotState

app = typer.Typer()
db_app = typer.Typer(help="The relational database: migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
features_app = typer.Typer(help="Feature snapshots the service reads.", no_args_is_help=True)
app.add_typer(features_app, name="features")


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
    corporate_share: Annotated[
        float,
        typer.Option(
            "--corporate-share", min=0.0, max=1.0, help="Expected share of corporate clients."
        ),
    ] = CORPORATE_SHARE,
    personal_share: Annotated[
        float,
        typer.Option(
            "--personal-share",
            min=0.0,
            max=1.0,
            help="Expected share of personal clients, served by PRMs (0: none, no PRM and no "
            "personal product).",
        ),
    ] = PERSONAL_SHARE,
    shape: Annotated[
        Shape,
        typer.Option(
            "--shape",
            help="Shape of extract to write, from the same bank: "
            + "; ".join(f"{s.value}: {text}" for s, text in SHAPE_HELP.items())
            + ".",
        ),
    ] = Shape.FULL,
    partitions: Annotated[
        int | None,
        typer.Option(
            "--partitions",
            min=1,
            help="Write the client-partitioned layout with this many parts: a folder of "
            "part-NNNNN.parquet files per table with clients, every client's rows in the same "
            "part of each, and _partitions.json (full shape only). Default: one file per table.",
        ),
    ] = None,
) -> None:
    """Generate a synthetic bank: the contract's tables plus the ground truth under truth/,
    in one of the shapes banks send (--shape), one file per table or partitioned by client
    (--partitions)."""
    start_month = parse_month(start)
    from rmreco.data.partitions import PARTITIONS_FILE
    from rmreco.synthetic.shapes import write_shape

    with progress_bar() as progress:
        task = progress.add_task("generating clients", total=clients)
        try:
            summary = write_shape(
                out,
                shape,
                n_clients=clients,
                n_months=months,
                seed=seed,
                start_month=start_month,
                corporate_share=corporate_share,
                personal_share=personal_share,
                partitions=partitions,
                on_progress=lambda k: progress.advance(task, k),
            )
        except ValueError as exc:  # arguments the generator refuses, e.g. a non-empty --out
            raise typer.BadParameter(str(exc)) from None
    for note in summary.notes:
        out_console.print(note)
    _print_rows(summary.rows)
    if partitions is not None:
        out_console.print(
            f"tables with clients in {partitions} parts each, listed in "
            f"{escape(str(summary.out_dir / PARTITIONS_FILE))}"
        )
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
    db: DbOption = None,
) -> None:
    """Validate a folder of input tables against the data contract and load it, all or nothing.

    A database without any table gets the schema first; one at an older schema revision is
    refused with the `rmreco db upgrade` command to run."""
    from rmreco.data.ingest import ingest_folder
    from rmreco.db.migrate import create_if_empty

    created = create_if_empty(database_url(db))
    if created is not None:
        out_console.print(f"the database was empty: created the schema (revision {created})")
    settings = current_settings()
    engine = open_engine(db)
    try:
        with work_progress() as progress:
            reading = progress.add_task(escape(f"reading and validating {folder}"), total=None)
            tables: dict[str, TaskID] = {}

            def on_rows(table: str, done: int, total: int) -> None:
                if not tables:  # the first table is written: reading is over
                    progress.update(reading, total=1, completed=1)
                if table not in tables:
                    tables[table] = progress.add_task(f"loading {table}", total=total, unit="rows")
                progress.update(tables[table], completed=done, total=total)

            summary = ingest_folder(folder, engine, settings=settings, on_rows=on_rows)
    finally:
        engine.dispose()
    for note in summary.notes:
        out_console.print(note)
    # the load's warnings are this command's output (library logs are for --verbose)
    for warning in summary.warnings:
        out_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if summary.currency != settings.currency:
        out_console.print(
            f"[yellow]warning:[/] the data is in {summary.currency}, not in {settings.currency} "
            f"as RMRECO_CURRENCY says; the database keeps {summary.currency}",
            highlight=False,
        )
    _print_rows(summary.rows, absent=summary.absent)
    for table, kinds in summary.extra_columns.items():
        listed = ", ".join(f"{name} ({kind})" for name, kind in kinds.items())
        out_console.print(f"{table}: the bank's own columns loaded: {listed}", markup=False)
    out_console.print(
        f"loaded {folder} into the database (ingest run {summary.run_id}, as of {summary.as_of})"
    )
    try:
        refreshed, _ = _refresh_features(db)
    except BaseException:
        err_console.print(
            f"the load is committed (ingest run {summary.run_id}), but its feature refresh did "
            "not complete and is owed: `rmreco features refresh` completes it, as does the "
            "service's start",
            highlight=False,
        )
        raise
    out_console.print(f"feature snapshots refreshed for {refreshed:,} clients")


@db_app.command("upgrade")
@translate_errors
def db_upgrade(db: DbOption = None) -> None:
    """Create or migrate the database schema to the latest revision."""
    from rmreco.db.migrate import current, upgrade

    url = database_url(db)
    upgrade(url)
    out_console.print(f"database at revision {current(url)}")


@db_app.command("current")
@translate_errors
def db_current(
    db: Annotated[str | None, typer.Option("--db", help="Database URL.")] = None,
) -> None:
    """Print the database's schema revision (empty when never migrated)."""
    from rmreco.db.migrate import current

    out_console.print(current(db or current_settings().resolved_database_url) or "(not migrated)")


@features_app.command("refresh")
@translate_errors
def features_refresh(
    db: DbOption = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            help="Compute the blocks of clients on a Dask cluster: a scheduler's address "
            "(tcp://host:8786; its workers read the database, so PostgreSQL), or local[:N] "
            "for a local cluster of N worker processes.",
        ),
    ] = None,
) -> None:
    """Recompute every client's latest features from the stored history (after a load), with
    the builder settings of the champions that will read them. Completes a refresh a load left
    owed (a failed or interrupted refresh after `rmreco ingest`).

    With --dask, the cluster's workers read and compute the blocks of clients; this command
    writes them in its one transaction (all or nothing, as without it)."""
    refreshed, before = _refresh_features(db, dask)
    if before.owed:
        out_console.print(f"completed the refresh that was owed: {before.describe()}", markup=False)
    run = f" (ingest run {before.latest_run})" if before.latest_run is not None else ""
    out_console.print(f"feature snapshots refreshed for {refreshed:,} clients{run}")


def _refresh_features(db: str | None, dask: str | None = None) -> tuple[int, SnapshotState]:
    """Refresh the snapshots (on the Dask cluster at ``dask``, if given); the number of clients
    written and the snapshots' state before."""
    from rmreco.db.engine import session_factory, transaction
    from rmreco.features.snapshots import snapshot_state
    from rmreco.training.snapshots import refresh_snapshots

    url = database_url(db)
    engine = open_engine(url)
    try:
        with transaction(session_factory(engine), read_only=True) as session:
            before = snapshot_state(session)
    finally:
        engine.dispose()
    with work_progress() as progress, steps(progress, "refreshing the feature snapshots") as step:
        if dask is None:
            refreshed = refresh_snapshots(url, current_settings(), on_step=step)
        else:
            from rmreco.training.cluster import dask_client, parse_address

            address = parse_address(dask)
            step(f"starting {address.describe()}")
            with dask_client(address) as client:
                refreshed = refresh_snapshots(url, current_settings(), on_step=step, client=client)
    return refreshed, before


def _print_rows(rows: dict[str, int], *, absent: list[str] | None = None) -> None:
    for table, count in rows.items():
        if absent and table in absent:
            out_console.print(f"{table:>24}: {'not given':>17}")
        else:
            out_console.print(f"{table:>24}: {count:>12,} rows")
