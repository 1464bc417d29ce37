"""This module owns where the scaled-out jobs run: the ``--dask`` option's address, read as a
running Dask scheduler (``tcp://host:8786``, or any address ``distributed.Client`` takes) or as
``local`` / ``local:N``, a LocalCluster of N worker processes on this machine (one thread each:
the feature code and LightGBM bring their own threads, and a worker per core is what uses the
cores), started for the job and closed after it.

Dask is imported only when a cluster is asked for: the commands that run in one process never
pay for it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rmreco.domain.errors import ConfigurationError

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

#: ``local`` or ``local:N``.
_LOCAL = re.compile(r"^local(?::(\d+))?$")
#: The memory each worker of a LocalCluster may use before Dask pauses and then restarts it
#: (bytes; a size in words, e.g. "4GiB"); the jobs keep a partition, its features and a model
#: in memory, so that a partition size fits well under it (docs/scale.md).
DEFAULT_WORKER_MEMORY = "4GiB"


@dataclass(frozen=True)
class ClusterAddress:
    """Where a job runs: a scheduler's address, or a LocalCluster of ``workers`` processes."""

    scheduler: str | None
    workers: int = 0

    @property
    def local(self) -> bool:
        return self.scheduler is None

    def describe(self) -> str:
        if self.local:
            return f"a local Dask cluster of {self.workers} workers"
        return f"the Dask scheduler at {self.scheduler}"


def parse_address(text: str) -> ClusterAddress:
    """Read a ``--dask`` value: ``local``, ``local:N`` (N >= 1) or a scheduler's address.

    Raises:
        ConfigurationError: ``local:`` with something other than a positive whole number, or an
            empty address.
    """
    value = text.strip()
    if not value:
        raise ConfigurationError("--dask needs an address: local, local:N or a scheduler's address")
    found = _LOCAL.match(value)
    if found is not None:
        workers = int(found.group(1)) if found.group(1) else max(1, os.cpu_count() or 1)
        if workers < 1:
            raise ConfigurationError("--dask local:N needs N >= 1 workers")
        return ClusterAddress(None, workers)
    if value.startswith("local:"):  # "localhost:8786" is a scheduler's address
        raise ConfigurationError(
            f"--dask {value!r}: a local cluster is 'local' or 'local:N' with N a whole number"
        )
    return ClusterAddress(value)


@contextmanager
def dask_client(
    address: ClusterAddress, *, worker_memory: str = DEFAULT_WORKER_MEMORY
) -> Iterator[Client]:
    """A Dask client on ``address`` for the time of a job; a LocalCluster is started for it and
    closed after it (its dashboard off: nothing listens that the job does not need)."""
    from distributed import Client, LocalCluster

    if address.scheduler is not None:
        log.info("connecting to the Dask scheduler at %s", address.scheduler)
        with Client(address.scheduler) as client:
            yield client
        return
    log.info("starting a local Dask cluster of %d workers", address.workers)
    with (
        LocalCluster(
            n_workers=address.workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=worker_memory,
            dashboard_address=None,
            # the scheduler's HTTP routes (health, metrics) on a free port, not 8787: a second
            # cluster on the machine would otherwise warn that the port is taken
            scheduler_kwargs={"dashboard_address": ":0"},
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(_discard_output)
        yield client


def _discard_output() -> None:
    """In a LocalCluster's worker process: its standard output to /dev/null. The workers share
    the command's output, and native libraries print there from threads of their own (LightGBM's
    network, say) whatever their log settings; the workers' logs go to standard error."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
