"""This module owns the client-partitioned layout of a bank folder: where each part of a table
lies, the manifest that describes the parts, and the check that a folder keeps the layout's
promises. The synthetic generator writes it (``rmreco generate --partitions N``); ingest reads it
(``rmreco.data.tables``); a Dask reader can take its divisions from the manifest.

A partitioned folder holds, for each table with a ``client_id`` column (``clients``,
``account_months``, ``holdings``, ``credit_events``, ``financials``, and the truth files under
``truth/``), a directory ``<table>/`` of files ``part-00000.parquet`` ...
``part-{N-1:05d}.parquet``.
Every client's rows of every table lie in the same part number: part k holds one contiguous block
of clients, and the clients table decides which. Within a part, rows are sorted by ``client_id``
(then by month where the table has one), and the blocks follow each other in ``client_id`` order
(as strings): part k's last client id sorts before part k+1's first, so one client's whole history
is in one part and a reader knows which part holds a client without reading any data. Tables
without ``client_id`` (``products``, ``relationship_managers``) stay single ``<table>.parquet``
files. ``_partitions.json`` records N and, per part, its first and last client id and its rows
per table.

Every table directory has all N parts, even when a part of it holds no row (an empty file with
the table's columns): a reader can then zip the parts of several tables by number.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rmreco.domain.errors import Problem

#: The manifest of a partitioned folder, beside the tables.
PARTITIONS_FILE = "_partitions.json"
#: The column whose value decides a row's part.
CLIENT_COLUMN = "client_id"
#: The manifest's format; raised when a key changes meaning.
_FORMAT = 1
_PART_NAME = re.compile(r"^part-(\d{5})\.parquet$")
#: The most parts a folder may have (the file names carry five digits).
MAX_PARTS = 100_000


@dataclass(frozen=True)
class Part:
    """One part of a partitioned folder: the block of clients it holds and its rows per table."""

    first_client: str
    last_client: str
    #: rows of each partitioned table in this part, by table name (truth as ``truth/<name>``)
    rows: dict[str, int]


@dataclass(frozen=True)
class Partitions:
    """What ``_partitions.json`` records: the parts in order."""

    parts: tuple[Part, ...]

    @property
    def n_parts(self) -> int:
        return len(self.parts)

    @property
    def tables(self) -> tuple[str, ...]:
        """The partitioned tables, in the order the manifest lists them."""
        return tuple(self.parts[0].rows) if self.parts else ()

    def divisions(self) -> tuple[str, ...]:
        """Each part's first client id, then the last part's last one: Dask's divisions of a
        frame indexed by ``client_id`` read one partition per part."""
        if not self.parts:
            return ()
        return (*(p.first_client for p in self.parts), self.parts[-1].last_client)


def part_name(part: int) -> str:
    """The file name of part number ``part`` (from 0)."""
    if not 0 <= part < MAX_PARTS:
        raise ValueError(f"a part number is between 0 and {MAX_PARTS - 1}, got {part}")
    return f"part-{part:05d}.parquet"


def part_path(folder: Path, table: str, part: int) -> Path:
    """Where part ``part`` of ``table`` (``truth/<name>`` for a truth file) lies in ``folder``."""
    return Path(folder) / table / part_name(part)


def table_parts(folder: Path, table: str) -> list[Path]:
    """The part files of ``table`` in ``folder``, in part order; empty when the table has no
    directory. Other files in the directory are not parts and are left out."""
    directory = Path(folder) / table
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and _PART_NAME.match(p.name))


def is_partitioned(folder: Path) -> bool:
    """Whether ``folder`` holds the partitioned layout (it has a ``_partitions.json``)."""
    return (Path(folder) / PARTITIONS_FILE).is_file()


def client_blocks(n_clients: int, n_parts: int) -> list[tuple[int, int]]:
    """The clients (positions ``lo`` to ``hi - 1`` in client order) of each of ``n_parts``
    parts: contiguous blocks whose sizes differ by one at most, none empty.

    Raises:
        ValueError: ``n_parts`` is below 1, above ``MAX_PARTS`` or above ``n_clients``.
    """
    if not 1 <= n_parts <= MAX_PARTS:
        raise ValueError(f"the number of parts is between 1 and {MAX_PARTS}, got {n_parts}")
    if n_parts > n_clients:
        raise ValueError(f"{n_parts} parts need at least as many clients, the bank has {n_clients}")
    edges = [k * n_clients // n_parts for k in range(n_parts + 1)]
    return list(itertools.pairwise(edges))


def write_partitions(folder: Path, partitions: Partitions) -> Path:
    """Write ``_partitions.json`` into ``folder``; return its path."""
    document = {
        "format": _FORMAT,
        "n_parts": partitions.n_parts,
        "parts": [
            {"first_client": p.first_client, "last_client": p.last_client, "rows": p.rows}
            for p in partitions.parts
        ],
    }
    path = Path(folder) / PARTITIONS_FILE
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return path


def read_partitions(folder: Path) -> tuple[Partitions | None, list[Problem]]:
    """The manifest of a partitioned folder, or None and the problems that make it unreadable
    (not JSON, a key missing or of the wrong kind, N not the number of parts listed)."""
    path = Path(folder) / PARTITIONS_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [Problem(file=PARTITIONS_FILE, message=f"cannot be read: {exc}")]
    try:
        partitions = _parse(document)
    except (TypeError, ValueError, KeyError) as exc:
        return None, [Problem(file=PARTITIONS_FILE, message=str(exc).strip("'\""))]
    return partitions, []


def _parse(document: Any) -> Partitions:
    if not isinstance(document, dict):
        raise ValueError("holds no JSON object")
    if document.get("format") != _FORMAT:
        raise ValueError(
            f"key 'format' is {document.get('format')!r}; this version reads {_FORMAT}"
        )
    parts = document.get("parts")
    n_parts = document.get("n_parts")
    if not isinstance(parts, list) or not parts:
        raise ValueError("key 'parts' is not a non-empty list")
    if n_parts != len(parts):
        raise ValueError(f"key 'n_parts' is {n_parts!r}, but 'parts' lists {len(parts)} parts")
    read: list[Part] = []
    for k, entry in enumerate(parts):
        where = f"parts[{k}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} is not an object")
        first, last, rows = entry.get("first_client"), entry.get("last_client"), entry.get("rows")
        if not isinstance(first, str) or not isinstance(last, str):
            raise ValueError(f"{where}: 'first_client' and 'last_client' must be client ids")
        if not isinstance(rows, dict) or not all(
            isinstance(name, str) and isinstance(n, int) and not isinstance(n, bool) and n >= 0
            for name, n in rows.items()
        ):
            raise ValueError(f"{where}: 'rows' must map table names to row counts")
        read.append(Part(first_client=first, last_client=last, rows=dict(rows)))
    tables = set(read[0].rows)
    for k, part in enumerate(read):
        if set(part.rows) != tables:
            raise ValueError(f"parts[{k}] counts the rows of other tables than parts[0]")
    return Partitions(parts=tuple(read))


def partition_problems(folder: Path, tables: Collection[str] | None = None) -> list[Problem]:
    """Everything that breaks the layout of the partitioned ``folder``, each problem naming the
    file: the manifest unreadable; client ranges not in order, overlapping or inverted; a table
    directory without all N parts, or with a part number beyond N; a part whose rows are not
    the manifest's count; a part holding a client id outside its range. Client ids are taken
    from the parts' Parquet statistics, or read from the column where a file has none.

    ``tables`` limits the parts looked at to these tables (ingest looks at the tables it reads,
    not at the truth files); by default every table the manifest lists. Sorting within a part
    is not checked (it would take reading every row).

    Returns an empty list when the folder keeps every promise of the layout.
    """
    folder = Path(folder)
    partitions, problems = read_partitions(folder)
    if partitions is None:
        return problems
    parts = partitions.parts
    if "clients" not in partitions.tables:
        problems.append(
            Problem(
                file=PARTITIONS_FILE,
                message="lists no 'clients' rows: the clients decide the parts",
            )
        )
    for k, part in enumerate(parts):
        if part.first_client > part.last_client:
            problems.append(
                Problem(
                    file=PARTITIONS_FILE,
                    message=f"part {k} starts at client {part.first_client!r} after its last "
                    f"client {part.last_client!r}",
                )
            )
        if k and parts[k - 1].last_client >= part.first_client:
            problems.append(
                Problem(
                    file=PARTITIONS_FILE,
                    message=f"part {k} starts at client {part.first_client!r}, not after part "
                    f"{k - 1}'s last client {parts[k - 1].last_client!r}: client ranges must "
                    "increase from part to part without overlapping",
                )
            )
    for table in partitions.tables:
        if tables is None or table in tables:
            problems.extend(_table_problems(folder, table, partitions))
    unlisted = sorted(set(tables or ()) - set(partitions.tables))
    problems.extend(
        Problem(
            file=f"{table}/",
            message=f"is a folder of parts, but {PARTITIONS_FILE} does not list it",
        )
        for table in unlisted
    )
    return problems


def _table_problems(folder: Path, table: str, partitions: Partitions) -> list[Problem]:
    problems: list[Problem] = []
    found = {
        int(m.group(1)): p for p in table_parts(folder, table) if (m := _PART_NAME.match(p.name))
    }
    n = partitions.n_parts
    missing = [k for k in range(n) if k not in found]
    if missing:
        shown = ", ".join(part_name(k) for k in missing[:5]) + (" ..." if len(missing) > 5 else "")
        problems.append(
            Problem(
                file=f"{table}/",
                message=f"has {n - len(missing)} of the {n} parts {PARTITIONS_FILE} lists; "
                f"missing: {shown}",
            )
        )
    for k in sorted(k for k in found if k >= n):
        problems.append(
            Problem(
                file=_relative(folder, found[k]),
                message=f"is beyond the {n} parts {PARTITIONS_FILE} lists",
            )
        )
    for k, path in sorted(found.items()):
        if k < n:
            problems.extend(_part_problems(folder, table, path, partitions.parts[k]))
    return problems


def _part_problems(folder: Path, table: str, path: Path, part: Part) -> list[Problem]:
    file = _relative(folder, path)
    try:
        metadata = pq.read_metadata(path)
    except Exception as exc:  # any Parquet or file error: reported against the part
        return [Problem(file=file, message=f"cannot be read: {exc}")]
    problems: list[Problem] = []
    expected = part.rows[table]
    if metadata.num_rows != expected:
        problems.append(
            Problem(
                file=file,
                message=f"holds {metadata.num_rows:,} rows; {PARTITIONS_FILE} counts {expected:,}",
            )
        )
    if metadata.num_rows == 0:
        return problems
    names = metadata.schema.to_arrow_schema().names
    if CLIENT_COLUMN not in names:
        return [*problems, Problem(file=file, message=f"has no {CLIENT_COLUMN} column")]
    low, high = _client_range(path, metadata, names.index(CLIENT_COLUMN))
    if low < part.first_client or high > part.last_client:
        problems.append(
            Problem(
                file=file,
                column=CLIENT_COLUMN,
                message=f"holds clients {low!r} to {high!r}, outside its part's range "
                f"{part.first_client!r} to {part.last_client!r} in {PARTITIONS_FILE}",
            )
        )
    return problems


def _client_range(path: Path, metadata: pq.FileMetaData, column: int) -> tuple[str, str]:
    """The smallest and largest client id of a part: from the row groups' statistics when every
    row group has them, else read from the column."""
    lows: list[str] = []
    highs: list[str] = []
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        if group.num_rows == 0:
            continue
        stats = group.column(column).statistics
        if stats is None or not stats.has_min_max:
            values = pq.read_table(path, columns=[CLIENT_COLUMN]).column(0)
            bounds = pc.min_max(values.cast(pa.string()))
            return str(bounds["min"].as_py()), str(bounds["max"].as_py())
        lows.append(_text(stats.min))
        highs.append(_text(stats.max))
    return min(lows), max(highs)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _relative(folder: Path, path: Path) -> str:
    return path.relative_to(folder).as_posix()
