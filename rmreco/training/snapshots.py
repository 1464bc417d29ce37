"""This module owns refreshing the service's feature snapshots with the settings of the models
that will read them: the builder settings (financials lag, cure months) of the champions of the
models folder's specs, read from the registry, so that the snapshots are computed the way those
models were trained. The builder's defaults apply while no champion is registered.

On a Dask cluster (:func:`cluster_blocks`), the workers read and compute the blocks of clients,
each through its own read-only connection to the database, with the same function the single
process runs (:func:`rmreco.features.snapshots.block_rows`); this process writes their rows in
its one transaction as they come, so the table is still replaced all at once or not at all.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rmreco.config import Settings
from rmreco.db.engine import create_engine_for, normalize_url, session_factory, transaction
from rmreco.domain.errors import ConfigurationError
from rmreco.features.config import SnapshotParams, shared_snapshot_params
from rmreco.features.snapshots import (
    BlockComputer,
    BlockRows,
    StepProgress,
    block_rows,
    refresh_client_features,
)
from rmreco.modeling.spec import find_specs
from rmreco.training.run import champion_configs

if TYPE_CHECKING:
    from distributed import Client

#: Blocks in flight per worker: enough to keep every worker busy while this process writes,
#: few enough that finished blocks do not pile up in the workers' memory.
BLOCKS_PER_WORKER = 2


def refresh_snapshots(
    database_url: str,
    settings: Settings,
    tracking_uri: str | None = None,
    on_step: StepProgress | None = None,
    *,
    client: Client | None = None,
) -> int:
    """Recompute every client's feature snapshot in the database at ``database_url`` from its
    stored history, with the champions' builder settings, in one transaction; returns the number
    of clients written. ``on_step`` is told each step as it starts. With a Dask ``client``, the
    blocks of clients are computed on its cluster (:func:`cluster_blocks`).

    Raises:
        ConfigurationError: the champions were trained with different builder settings, or a
            cluster is asked to read a SQLite file it cannot reach.
        RegistryError: a champion could not be loaded.
    """
    if on_step is not None:
        on_step("reading the champions' feature settings from the registry")
    names = [found.spec.name for found in find_specs(settings.resolved_models_dir)]
    configs = champion_configs(names, settings=settings, tracking_uri=tracking_uri)
    params = shared_snapshot_params(configs)
    compute = None if client is None else cluster_blocks(client, database_url)
    engine = create_engine_for(database_url)
    try:
        with transaction(session_factory(engine)) as session:
            return refresh_client_features(session, params, on_step, compute=compute)
    finally:
        engine.dispose()


def cluster_blocks(client: Client, database_url: str) -> BlockComputer:
    """A :data:`~rmreco.features.snapshots.BlockComputer` running each block on ``client``'s
    cluster, :data:`BLOCKS_PER_WORKER` blocks per worker in flight, yielding them as they finish.
    A task that fails fails the refresh (its exception raised here: the caller's transaction
    rolls back).

    Raises:
        ConfigurationError: the database is a SQLite file and the cluster is not on this
            machine (its workers could not open the file; use PostgreSQL).
    """
    problem = unreachable_database(database_url, list(client.scheduler_info()["workers"]))
    if problem is not None:
        raise ConfigurationError(problem)

    def compute(
        ranges: list[tuple[str, str]], params: SnapshotParams, recorded: dict[str, Any]
    ) -> Iterator[tuple[int, BlockRows]]:
        from distributed import as_completed

        window = max(1, BLOCKS_PER_WORKER * len(client.scheduler_info()["workers"]))
        pending = iter(enumerate(ranges))
        numbers: dict[Any, int] = {}

        def submit() -> Any | None:
            for k, client_range in pending:
                future = client.submit(
                    _block_on_worker, database_url, client_range, params, recorded, pure=False
                )
                numbers[future.key] = k
                return future
            return None

        started = [f for f in (submit() for _ in range(window)) if f is not None]
        running = as_completed(started)
        for future in running:
            result = future.result()
            k = numbers.pop(future.key)
            future.release()
            following = submit()
            if following is not None:
                running.add(following)
            yield k, result

    return compute


def unreachable_database(database_url: str, workers: list[str]) -> str | None:
    """Why the cluster of ``workers`` (their addresses) cannot read the database, or None: a
    SQLite file is on this machine, and a worker elsewhere cannot open it.

    Raises:
        ConfigurationError: the URL cannot be parsed, or names another database.
    """
    url = normalize_url(database_url)
    local = all(
        address.split("://")[-1].startswith(("127.", "localhost", "[::1]")) for address in workers
    )
    if url.get_backend_name() != "sqlite" or local:
        return None
    return (
        "the feature refresh on a remote Dask cluster needs a database its workers can reach; "
        f"{url.render_as_string(hide_password=True)} is a SQLite file on this machine: use "
        "PostgreSQL (--db postgresql+psycopg://...), or --dask local:N"
    )


@functools.lru_cache(maxsize=4)
def _engine(database_url: str) -> Any:  # a SQLAlchemy Engine (rmreco.db owns SQLAlchemy)
    """One engine per database and worker process, reused by every block the worker runs."""
    return create_engine_for(database_url)


def _block_on_worker(
    database_url: str,
    client_range: tuple[str, str],
    params: SnapshotParams,
    recorded: dict[str, Any],
) -> BlockRows:
    """One block's rows, computed on a worker from the committed history (read-only)."""
    with transaction(session_factory(_engine(database_url)), read_only=True) as session:
        return block_rows(session, client_range, params, recorded)
