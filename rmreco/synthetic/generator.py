"""This module owns the generator's entry point, :func:`generate_bank`: its arguments, the
output folder that appears whole or not at all, and the streaming of the tables into Parquet.

Output is streamed chunk by chunk of clients into one Parquet file per table, so a million
clients fit in bounded memory; a writer thread encodes chunk k while chunk k + 1 is being
simulated.

Determinism: every random draw comes from ``np.random.SeedSequence(seed, spawn_key=...)`` with a
fixed key per purpose (common factors, client frame, RMs, chunk k). Same arguments (including
``chunk_clients``) give byte-identical files.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rmreco.domain.contract import PRODUCTS, RELATIONSHIP_MANAGERS
from rmreco.synthetic.bank import Statements, build_bank, products_table
from rmreco.synthetic.parameters import (
    BUSINESS,
    CORPORATE_SHARE,
    PERSONAL_POPULATION,
    PERSONAL_SHARE,
)
from rmreco.synthetic.simulation import simulate_chunk
from rmreco.synthetic.truth import truth_grids

DEFAULT_CHUNK_CLIENTS = 25_000
MIN_MONTHS = 13


@dataclass(frozen=True)
class GenerationSummary:
    """What a generation wrote: the folder, rows per table (truth as ``truth/<name>``), time."""

    out_dir: Path
    rows: dict[str, int]
    seconds: float


def generate_bank(
    out_dir: Path,
    *,
    n_clients: int,
    n_months: int,
    seed: int,
    start_month: date = date(2022, 1, 1),
    chunk_clients: int = DEFAULT_CHUNK_CLIENTS,
    corporate_share: float = CORPORATE_SHARE,
    personal_share: float = PERSONAL_SHARE,
    every_firm_files: bool = False,
    statement_ratios: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> GenerationSummary:
    """Generate a synthetic bank into ``out_dir`` (Parquet, one file per table, plus truth/).

    Args:
        out_dir: target folder; must not exist or be empty. Files are written to a hidden
            sibling folder and renamed into place at the end, so an interrupted run leaves no
            half-written ``out_dir``.
        n_clients: number of clients (>= 1).
        n_months: months of account history (>= 13, so a 12-month outcome can be observed).
        seed: non-negative integer; the same arguments give byte-identical files.
        start_month: first month of the history window (a first of month).
        chunk_clients: clients simulated and written per chunk; part of the output's identity.
        corporate_share: expected share of corporate clients among all clients; a bank with
            enough corporate defaults to fit a corporate credit model needs more than the
            default's one in ten.
        personal_share: expected share of personal clients among all clients, served by
            personal RMs (PRMs) and offered the personal products; the rest after corporates
            and persons are SMEs. With 0 (the default) the bank has no PRM and no personal
            product, and its files are those of a bank generated before persons existed.
        every_firm_files: every firm present at a year end files that year's statement (a
            statements-only book), not only the usual nine in ten corporates and two in three
            SMEs. The other tables are the same as without it.
        statement_ratios: the statements carry 40 extra ratio columns ``ratio_01`` ..
            ``ratio_40`` (``rmreco.synthetic.ratios``), as a bank's wide extract does. The other
            tables, and the seven contract fields, are the same as without it.
        on_progress: called after each chunk with the number of clients just finished.

    Raises:
        ValueError: an argument is out of range, or ``out_dir`` exists and is not an empty
            folder.
    """
    _check_arguments(n_clients, n_months, seed, start_month, chunk_clients)
    if not 0.0 <= corporate_share <= 1.0:
        raise ValueError(f"corporate_share must be between 0 and 1, got {corporate_share}")
    if not 0.0 <= personal_share <= 1.0 - corporate_share + 1e-9:
        raise ValueError(
            f"personal_share must be between 0 and 1 - corporate_share ({1.0 - corporate_share:g}),"
            f" got {personal_share}"
        )
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"output folder {out_dir} exists and is not empty; choose a new folder")
    parent = out_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=parent))
    try:
        os.chmod(tmp, 0o755)
        rows = _generate_into(
            tmp,
            n_clients,
            n_months,
            seed,
            start_month,
            chunk_clients,
            (corporate_share, personal_share),
            Statements(every_firm_files=every_firm_files, with_ratios=statement_ratios),
            on_progress,
        )
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return GenerationSummary(out_dir=out_dir, rows=rows, seconds=time.perf_counter() - started)


def _check_arguments(
    n_clients: int, n_months: int, seed: int, start_month: date, chunk_clients: int
) -> None:
    for name, value in (
        ("n_clients", n_clients),
        ("n_months", n_months),
        ("seed", seed),
        ("chunk_clients", chunk_clients),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if n_clients < 1:
        raise ValueError(f"n_clients must be at least 1, got {n_clients}")
    if n_months < MIN_MONTHS:
        raise ValueError(
            f"n_months must be at least {MIN_MONTHS} (a 12-month outcome window "
            f"plus one month), got {n_months}"
        )
    if n_months > 600:
        raise ValueError(f"n_months must be at most 600, got {n_months}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if chunk_clients < 1:
        raise ValueError(f"chunk_clients must be at least 1, got {chunk_clients}")
    if not isinstance(start_month, date) or start_month.day != 1:
        raise ValueError(f"start_month must be the first day of a month, got {start_month!r}")
    if not 1950 <= start_month.year <= 2150:
        raise ValueError(f"start_month must be between 1950 and 2150, got {start_month}")


_WRITE_OPTIONS: dict[str, Any] = {
    "compression": "snappy",
    "store_schema": False,  # columns come back as plain strings, not dictionaries
}


def parquet_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """A writer of one generated table: dictionary-encoded except floating columns, snappy, no
    Arrow schema (the options of every file of a synthetic bank)."""
    dictionary_columns = [f.name for f in schema if not pa.types.is_floating(f.type)]
    return pq.ParquetWriter(path, schema, use_dictionary=dictionary_columns, **_WRITE_OPTIONS)


class _Writers:
    """One ParquetWriter per table, fed by a background thread so encoding overlaps the
    simulation of the next chunk (numpy and Parquet both release the GIL)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {}
        self.queue: queue.Queue[dict[str, pa.Table] | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="rmreco-writer", daemon=True)
        self.thread.start()

    def _open(self, name: str, schema: pa.Schema) -> pq.ParquetWriter:
        path = self.root / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        return parquet_writer(path, schema)

    def write_now(self, tables: dict[str, pa.Table]) -> None:
        for name, table in tables.items():
            if name not in self.writers:
                self.writers[name] = self._open(name, table.schema)
                self.rows[name] = 0
            self.writers[name].write_table(table)
            self.rows[name] += table.num_rows

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.write_now(item)
                except BaseException as exc:  # handed to the main thread
                    self.error = exc

    def put(self, tables: dict[str, pa.Table]) -> None:
        self._raise_if_failed()
        self.queue.put(tables)

    def close(self) -> dict[str, int]:
        self.queue.put(None)
        self.thread.join()
        for writer in self.writers.values():
            writer.close()
        self._raise_if_failed()
        return dict(self.rows)

    def abort(self) -> None:
        self.queue.put(None)
        self.thread.join()
        for writer in self.writers.values():
            writer.close()

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error


def _generate_into(
    root: Path,
    n_clients: int,
    n_months: int,
    seed: int,
    start_month: date,
    chunk_clients: int,
    shares: tuple[float, float],
    statements: Statements,
    on_progress: Callable[[int], None] | None,
) -> dict[str, int]:
    corporate_share, personal_share = shares
    bank, rm_table = build_bank(
        n_clients, n_months, seed, start_month, corporate_share, personal_share
    )
    bank = replace(bank, statements=statements)
    truth_grids(BUSINESS)
    if personal_share > 0:
        truth_grids(PERSONAL_POPULATION)
    writers = _Writers(root)
    try:
        writers.put(
            {RELATIONSHIP_MANAGERS.name: rm_table, PRODUCTS.name: products_table(bank.catalog)}
        )
        for chunk, lo in enumerate(range(0, n_clients, chunk_clients)):
            hi = min(n_clients, lo + chunk_clients)
            writers.put(simulate_chunk(bank, chunk, lo, hi))
            if on_progress is not None:
                on_progress(hi - lo)
    except BaseException:
        writers.abort()
        raise
    return writers.close()
