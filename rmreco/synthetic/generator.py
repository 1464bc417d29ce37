"""This module owns the generator's entry point, :func:`generate_bank`: its arguments, the
output folder that appears whole or not at all, and the pipeline that streams the tables into
Parquet, one file per table or the client-partitioned layout of ``rmreco.data.partitions``.

Clients are simulated chunk by chunk, a few chunks at a time on threads of their own (numpy and
Arrow release the GIL on whole-array work, so the threads use every core); a writer thread
appends each chunk's tables to the files, in chunk order, while later chunks are simulated. A
million clients fit in bounded memory: at most one chunk per simulating thread, one waiting and
one being written.

Determinism: every random draw comes from ``np.random.SeedSequence(seed, spawn_key=...)`` with a
fixed key per purpose (common factors, client frame, RMs, chunk k), so the order in which the
threads finish changes nothing. Same arguments (including ``chunk_clients``, and
``partitions``) give byte-identical files. ``partitions`` decides the file split only: a
partitioned bank holds the same rows, with the same values, as the bank of the same arguments
written one file per table.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import os
import queue
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rmreco.data.partitions import (
    CLIENT_COLUMN,
    Part,
    Partitions,
    client_blocks,
    part_path,
    write_partitions,
)
from rmreco.domain.contract import (
    ACCOUNT_MONTHS,
    CLIENTS,
    PRODUCTS,
    RELATIONSHIP_MANAGERS,
    TABLES_BY_NAME,
    TRUTH_CREDIT_PD,
    TRUTH_CROSS_SELL,
    TRUTH_DIR,
)
from rmreco.synthetic.arrays import Array
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
#: Chunks simulated at once, at most: one per core up to this many. Each holds about 0.3 GB
#: at the default chunk size.
MAX_SIMULATING_THREADS = 4


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
    partitions: int | None = None,
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
            product.
        every_firm_files: every firm present at a year end files that year's statement (a
            statements-only book), not only the usual nine in ten corporates and two in three
            SMEs. The other tables are the same as without it.
        statement_ratios: the statements carry 40 extra ratio columns ``ratio_01`` ..
            ``ratio_40`` (``rmreco.synthetic.ratios``), as a bank's wide extract does. The other
            tables, and the seven contract fields, are the same as without it.
        partitions: write the client-partitioned layout of ``rmreco.data.partitions`` with this
            many parts (contiguous blocks of clients whose sizes differ by one at most) instead
            of one file per table. The values are those of the bank written without it.
        on_progress: called after each chunk with the number of clients just finished.

    Raises:
        ValueError: an argument is out of range (``partitions`` above ``n_clients`` too), or
            ``out_dir`` exists and is not an empty folder.
    """
    _check_arguments(n_clients, n_months, seed, start_month, chunk_clients)
    if not 0.0 <= corporate_share <= 1.0:
        raise ValueError(f"corporate_share must be between 0 and 1, got {corporate_share}")
    if not 0.0 <= personal_share <= 1.0 - corporate_share + 1e-9:
        raise ValueError(
            f"personal_share must be between 0 and 1 - corporate_share ({1.0 - corporate_share:g}),"
            f" got {personal_share}"
        )
    blocks = None
    if partitions is not None:
        if isinstance(partitions, bool) or not isinstance(partitions, int | np.integer):
            raise ValueError(f"partitions must be an integer, got {partitions!r}")
        blocks = client_blocks(n_clients, int(partitions))  # raises on a number out of range
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"output folder {out_dir} exists and is not empty; choose a new folder")
    parent = out_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=parent))
    try:
        os.chmod(tmp, 0o755)
        with _memory_kept_for_reuse(), _blas_on_one_thread():
            rows = _generate_into(
                _Writers(tmp, blocks),
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
    "store_schema": False,  # columns come back as plain strings, not dictionaries
}


def parquet_writer(
    path: Path,
    schema: pa.Schema,
    *,
    statistics: bool | list[str] = True,
    split_floats: tuple[str, ...] = (),
    uncompressed: tuple[str, ...] = (),
) -> pq.ParquetWriter:
    """A writer of one generated table: dictionary-encoded except floating columns, snappy, no
    Arrow schema (the options of every file of a synthetic bank). Column statistics for
    ``statistics`` (every column when True); ``split_floats`` byte-stream-split before
    compression; ``uncompressed`` columns not compressed."""
    dictionary_columns = [f.name for f in schema if not pa.types.is_floating(f.type)]
    return pq.ParquetWriter(
        path,
        schema,
        use_dictionary=dictionary_columns,
        write_statistics=statistics,
        use_byte_stream_split=list(split_floats) or False,
        compression={f.name: "none" if f.name in uncompressed else "snappy" for f in schema},
        **_WRITE_OPTIONS,
    )


def file_schema(name: str, schema: pa.Schema) -> pa.Schema:
    """The schema table ``name`` is written with: a column the contract says is never empty in
    a file (not nullable, and not filled from the manifest), and every truth column, is a
    required Parquet column, so that no definition level is written per value (a fifth of the
    cost of writing the cross-sell truth)."""
    table = TABLES_BY_NAME.get(name)
    nullable = (
        {
            c.name: c.nullable or c.filled_from is not None
            for c in (*table.columns, *table.detail_columns)
        }
        if table is not None
        else {}
    )
    return pa.schema(
        [
            f.with_nullable(nullable.get(f.name, True) if table is not None else False)
            for f in schema
        ]
    )


def write_table(path: Path, name: str, table: pa.Table) -> None:
    """Write a whole table into one file as the generator writes table ``name`` (truth files
    as ``truth/<name>``): its schema (``file_schema``) and its writer's options."""
    schema = file_schema(name, table.schema)
    writer = _writer(path, name, schema)
    try:
        writer.write_table(pa.Table.from_arrays(table.columns, schema=schema))
    finally:
        writer.close()


#: Amounts to the cent: their mantissas do not compress, their sign and exponent bytes do once
#: the bytes are split by position (snappy then costs a third of what it costs on whole
#: values, for files 15 % larger).
_SPLIT_FLOATS = {
    ACCOUNT_MONTHS.name: (
        "balance_avg",
        "balance_min",
        "balance_max",
        "credit_turnover",
        "debit_turnover",
        "intl_payments",
        "payroll_outflow",
    )
}
#: Probabilities: snappy does not make them any smaller.
_UNCOMPRESSED = {
    f"{TRUTH_DIR}/{TRUTH_CREDIT_PD}": ("pd_12m",),
    f"{TRUTH_DIR}/{TRUTH_CROSS_SELL}": ("p_3m",),
}


def _writer(path: Path, name: str, schema: pa.Schema) -> pq.ParquetWriter:
    """The writer of table ``name``'s file (or part) at ``path``. Statistics are kept for the
    client (readers find a client's row groups by them) and, in the contract's tables, the
    month; the truth files keep none: they are read whole, and statistics on their client
    column cost a quarter of the time of writing the cross-sell truth."""
    wanted = {CLIENT_COLUMN, "month"} if name in TABLES_BY_NAME else set()
    return parquet_writer(
        path,
        schema,
        statistics=[f.name for f in schema if f.name in wanted],
        split_floats=_SPLIT_FLOATS.get(name, ()),
        uncompressed=_UNCOMPRESSED.get(name, ()),
    )


#: A chunk handed to the writer: its first client, its end (one past its last) and its tables.
_Chunk = tuple[int, int, dict[str, pa.Table]]


class _Writers:
    """The files of a bank being written, fed by a background thread so that encoding
    overlaps the simulation of later chunks.

    One file per table, or, with client ``blocks`` (the partitioned layout), one file per table
    without a client column and one per table with one and part: a chunk's rows are split at
    the parts' edges, each part's files are closed as soon as its last client is written (the
    parts of a table that got no row are written empty then), and ``_partitions.json`` at the
    end.
    """

    def __init__(self, root: Path, blocks: list[tuple[int, int]] | None) -> None:
        self.root = root
        self.blocks = blocks
        self.writers: dict[tuple[str, int], pq.ParquetWriter] = {}
        self.schemas: dict[str, pa.Schema] = {}
        self.rows: dict[str, int] = {}
        self.part_rows: list[dict[str, int]] = [{} for _ in blocks or ()]
        #: each part's first and last client id, from its rows of the clients table
        self.part_clients: list[list[str]] = [[] for _ in blocks or ()]
        self.closed_parts = 0
        self.queue: queue.Queue[_Chunk | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="rmreco-writer", daemon=True)
        self.thread.start()

    def _write(self, name: str, part: int, table: pa.Table) -> None:
        key = (name, part)
        if key not in self.writers:
            path = self.root / f"{name}.parquet" if part < 0 else part_path(self.root, name, part)
            path.parent.mkdir(parents=True, exist_ok=True)
            schema = self.schemas[name]
            self.writers[key] = _writer(path, name, schema)
        self.writers[key].write_table(
            pa.Table.from_arrays(table.columns, schema=self.schemas[name])
        )
        self.rows[name] += table.num_rows
        if part >= 0:
            counts = self.part_rows[part]
            counts[name] = counts.get(name, 0) + table.num_rows
            if name == CLIENTS.name and table.num_rows:
                ids = table.column(CLIENT_COLUMN)
                seen = self.part_clients[part]
                if not seen:
                    seen.append(str(ids[0].as_py()))
                seen[1:] = [str(ids[-1].as_py())]

    def write_now(self, lo: int, hi: int, tables: dict[str, pa.Table]) -> None:
        """Append the tables of clients ``lo`` to ``hi - 1`` (all of them for tables without a
        client column)."""
        # the parts holding some of these clients: number, first client and end
        parts = [
            (k, max(a, lo), min(b, hi))
            for k, (a, b) in enumerate(self.blocks or ())
            if a < hi and b > lo
        ]
        for name, table in tables.items():
            if name not in self.schemas:
                self.schemas[name] = file_schema(name, table.schema)
                self.rows[name] = 0
            if self.blocks is None or CLIENT_COLUMN not in table.column_names:
                self._write(name, -1, table)
                continue
            edges = _client_offsets(table, lo, [first for _, first, _ in parts] + [hi])
            for (part, first, end), (r0, r1) in zip(parts, itertools.pairwise(edges), strict=False):
                if r1 > r0:
                    self._write(
                        name, part, _own_clients(table.slice(r0, r1 - r0), first - lo, end - lo)
                    )
        if self.blocks is not None:
            self._close_parts_before(hi)

    def _close_parts_before(self, hi: int) -> None:
        """Close the files of every part whose clients are all written (``hi`` is the end of
        the chunk just written), writing the empty parts of tables that had no row there."""
        assert self.blocks is not None
        while self.closed_parts < len(self.blocks) and self.blocks[self.closed_parts][1] <= hi:
            part = self.closed_parts
            for name, schema in self.schemas.items():
                if CLIENT_COLUMN not in schema.names:
                    continue
                if (name, part) not in self.writers:
                    self._write(name, part, schema.empty_table())
                self.writers.pop((name, part)).close()
            self.closed_parts += 1

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.write_now(*item)
                except BaseException as exc:  # handed to the main thread
                    self.error = exc

    def put(self, lo: int, hi: int, tables: dict[str, pa.Table]) -> None:
        self._raise_if_failed()
        self.queue.put((lo, hi, tables))

    def close(self) -> dict[str, int]:
        self.queue.put(None)
        self.thread.join()
        for writer in self.writers.values():
            writer.close()
        self._raise_if_failed()
        if self.blocks is not None:
            write_partitions(self.root, self._partitions())
        return dict(self.rows)

    def abort(self) -> None:
        self.queue.put(None)
        self.thread.join()
        for writer in self.writers.values():
            writer.close()

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def _partitions(self) -> Partitions:
        """The manifest: each part's first and last client id and its rows per table."""
        tables = [name for name, schema in self.schemas.items() if CLIENT_COLUMN in schema.names]
        return Partitions(
            parts=tuple(
                Part(
                    first_client=clients[0],
                    last_client=clients[-1],
                    rows={name: counts.get(name, 0) for name in tables},
                )
                for clients, counts in zip(self.part_clients, self.part_rows, strict=True)
            )
        )


def _client_codes(table: pa.Table) -> pa.ChunkedArray | None:
    """Each row's client as its place in the chunk: the dictionary codes of ``client_id``, or
    None for the clients table (one row per client, in order)."""
    column = table.column(CLIENT_COLUMN)
    if not pa.types.is_dictionary(column.type):
        return None
    return pa.chunked_array([c.indices for c in column.chunks], type=column.type.index_type)


def _client_offsets(table: pa.Table, lo: int, starts: list[int]) -> list[int]:
    """The first row of each client in ``starts`` (bank-wide places, from ``lo`` on) in a chunk
    table sorted by client."""
    codes = _client_codes(table)
    wanted = np.asarray(starts, dtype=np.int64) - lo
    if codes is None:
        return [int(w) for w in wanted]
    values: Array = (
        np.concatenate([c.to_numpy() for c in codes.chunks])
        if codes.num_chunks
        else np.zeros(0, dtype=np.int32)
    )
    return [int(r) for r in np.searchsorted(values, wanted, side="left")]


def _own_clients(rows: pa.Table, first: int, end: int) -> pa.Table:
    """``rows`` (of the chunk's clients ``first`` to ``end - 1``) with their ``client_id``
    dictionary cut to those clients: a part file lists its own clients only."""
    column = rows.column(CLIENT_COLUMN)
    if not pa.types.is_dictionary(column.type):
        return rows
    chunks = []
    for chunk in column.chunks:
        indices = pc.subtract(chunk.indices, pa.scalar(first, chunk.indices.type))
        chunks.append(
            pa.DictionaryArray.from_arrays(indices, chunk.dictionary.slice(first, end - first))
        )
    i = rows.column_names.index(CLIENT_COLUMN)
    return rows.set_column(i, CLIENT_COLUMN, pa.chunked_array(chunks, type=column.type))


#: glibc's mallopt parameters, and their defaults (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_DEFAULT_MALLOC_THRESHOLD = 128 * 1024
_DEFAULT_TOP_PAD = 128 * 1024


@contextlib.contextmanager
def _memory_kept_for_reuse() -> Iterator[None]:
    """While generating, freed memory stays with the process for the next chunk (glibc only).

    Each chunk allocates and frees a few gigabytes in arrays of megabytes. By default glibc
    hands such blocks back to the kernel when they are freed (a thread's heap as soon as it is
    empty) and takes fresh pages for the next ones, which the kernel must clear: up to a third
    of the generator's CPU time went to those page faults. Raising the mmap and trim thresholds
    and the top pad keeps freed blocks and heaps for reuse; on the way out the defaults are set
    again and the memory kept is given back (``malloc_trim``). The settings are the process's:
    another thread allocating meanwhile keeps its freed memory too, until the end.
    """
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    libc.mallopt(_M_TOP_PAD, 1 << 30)
    try:
        yield
    finally:
        libc.mallopt(_M_TOP_PAD, _DEFAULT_TOP_PAD)
        libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_MALLOC_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_MALLOC_THRESHOLD)
        libc.malloc_trim(0)


@contextlib.contextmanager
def _blas_on_one_thread() -> Iterator[None]:
    """BLAS on one thread while generating. The generator's matrix products are small
    (25,000 x 4 by 4 x 15) and its own threads already use every core: OpenBLAS's threads then
    mostly wait for each other (15 ms of CPU for such a product on two busy cores, against
    0.2 ms on one thread). threadpoolctl comes with scikit-learn."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _simulating_threads() -> int:
    """Chunks to simulate at once: one per core this process may use, up to a bound."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_SIMULATING_THREADS, cores))


def _generate_into(
    writers: _Writers,
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
    try:
        bank, rm_table = build_bank(
            n_clients, n_months, seed, start_month, corporate_share, personal_share
        )
        bank = replace(bank, statements=statements)
        writers.put(  # tables without clients: no client is written with them
            0,
            0,
            {RELATIONSHIP_MANAGERS.name: rm_table, PRODUCTS.name: products_table(bank.catalog)},
        )
        threads = _simulating_threads()
        with ThreadPoolExecutor(threads, thread_name_prefix="rmreco-chunk") as pool:
            # the exact truth's grids (a second of work) while the first chunks live their
            # months, which do not need them
            for population in (BUSINESS, *((PERSONAL_POPULATION,) if personal_share > 0 else ())):
                pool.submit(truth_grids, population)
            pending: deque[tuple[int, int, Future[dict[str, pa.Table]]]] = deque()
            try:
                for chunk, lo in enumerate(range(0, n_clients, chunk_clients)):
                    hi = min(n_clients, lo + chunk_clients)
                    pending.append((lo, hi, pool.submit(simulate_chunk, bank, chunk, lo, hi)))
                    if len(pending) >= threads:
                        _hand_over(writers, pending.popleft(), on_progress)
                while pending:
                    _hand_over(writers, pending.popleft(), on_progress)
            except BaseException:
                for _, _, future in pending:
                    future.cancel()
                raise
    except BaseException:
        writers.abort()
        raise
    return writers.close()


def _hand_over(
    writers: _Writers,
    item: tuple[int, int, Future[dict[str, pa.Table]]],
    on_progress: Callable[[int], None] | None,
) -> None:
    lo, hi, future = item
    writers.put(lo, hi, future.result())
    if on_progress is not None:
        on_progress(hi - lo)
