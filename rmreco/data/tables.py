"""Reading an input folder: one Parquet or CSV file per contract table, into typed pandas frames.

This module owns finding the files, reading them and converting every contract column to its
kind (``rmreco.domain.contract``); checking the values against the contract is
``rmreco.data.contract``. Reading never stops at the first problem: every cell that cannot be
converted becomes a :class:`~rmreco.domain.errors.Problem` naming the file, the row and the
column, and the rest of the table is still read so that validation can report everything at once.

Rules of the input format (also in the documented contract):

- Table ``t`` is ``t.parquet`` or ``t.csv`` in the folder, or a folder ``t/`` of Parquet parts
  ``part-00000.parquet``, ``part-00001.parquet``, ... (the client-partitioned layout of
  ``rmreco.data.partitions``), read one part after the other as one table; two of these present
  is an error (which one would be meant?). Only ``clients`` is required; every other table may
  be left out and then reads as an empty frame with its contract columns (:func:`empty_frame`).
- A folder with ``_partitions.json`` must keep the partitioned layout's promises for the tables
  it gives (``rmreco.data.partitions.partition_problems``): each broken one is a problem naming
  the file.
- An optional ``manifest.yaml`` beside the tables (``rmreco.data.manifest``) fills empty month
  cells of columns the contract marks ``filled_from`` (an undated credit status is an event of the
  extract date's month; an empty ``clients.as_of_month`` the observation month), counted per
  column (:attr:`InputTable.filled_months`), and declares the kinds of the bank's own columns.
- Rows are numbered as the file's data rows, from 1, header not counted, for CSV and Parquet
  alike; the frames carry that number as their index (named ``row``) through validation. A
  table given as parts numbers its rows across the parts, in part order; the problems found
  while reading name the part and its own row (:meth:`InputTable.locate` translates a row).
- Column names are matched after trimming spaces and lower-casing; a name the header gives twice
  is refused (as the file's header spells it, before any parser renames the second one).
- CSV: UTF-8 (a byte-order mark is fine), comma separated, empty cell = missing; spaces around a
  value are trimmed. Only an empty cell is missing: "NA" or "null" are text, not gaps. A file that
  is not such text is refused with what it is instead (``rmreco.data.files``): empty, a
  Parquet or Excel file under a ``.csv`` name, UTF-16, or bytes that are not UTF-8 (naming the
  line of the first one).
- Identifiers are text. Integer identifiers (Parquet integers, or floats that hold whole numbers
  because a column had gaps) are read as their decimal text: 1042 -> "1042".
- Dates: in CSV exactly ``YYYY-MM-DD``; in Parquet a date, or a timestamp at midnight (a time
  zone, if any, is dropped keeping the wall-clock date). Month columns (``month`` and
  ``*_month``) take any date within a month and mean that month (``rmreco.data.dates``: month-end
  dates, ``YYYY-MM``, timestamps); they are read as the month's first day, and how many values
  were moved is counted per column (:attr:`InputFolder.normalised_months`).
- ``account_months`` may carry the optional ``account_id`` column (several accounts per client);
  it is read like the other columns and aggregated away by ``rmreco.data.accounts``.
- Numbers must be finite; whole-number columns accept "12" and "12.0" but not "12.5".
- Columns the contract does not know (``Table.extras``): in ``products`` they are kept as the
  catalog's ``params`` (numbers as numbers where the whole column is numeric). In ``clients`` and
  ``financials`` they are the bank's own features: a column declared in the manifest is converted
  to its kind (numeric: finite numbers, each other cell a problem naming file, row and column;
  categorical: trimmed text) and must be in the file; an undeclared one is numeric when every
  non-empty value is a number, else categorical, and a warning lists them with their kinds. Their
  names must be plain (``contract.EXTRA_COLUMN_NAME``); a column without any value is dropped
  with a warning, a categorical one with more than ``EXTRA_CATEGORICAL_LEVELS_WARNING`` values is
  kept with a warning (probably an identifier). In every other table they are dropped, and a
  warning lists them (a bank's extract often carries more than we use, and refusing it for that
  would help no one).
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import numpy as np
import pandas as pd

from rmreco.data.dates import is_month_column, read_month_column
from rmreco.data.files import (
    CSV_SUFFIX,
    PARQUET_SUFFIX,
    blank_to_na,
    csv_file_problem,
    header_names,
    not_utf8_problem,
    part_files,
    read_raw,
    reading_error,
    repeated_names,
)
from rmreco.data.manifest import Manifest, read_manifest
from rmreco.data.partitions import PARTITIONS_FILE, is_partitioned, partition_problems
from rmreco.domain import contract
from rmreco.domain.errors import Problem

logger = logging.getLogger(__name__)

#: Cell-level problems collected per column and kind of problem; the rest are counted only.
MAX_PROBLEMS_PER_COLUMN = 100
#: The largest whole number a whole-number column holds (the databases' 32-bit integers): no
#: count, day or year of the contract comes near it.
MAX_WHOLE_NUMBER: Final = 2**31 - 1
#: dtype of date columns after reading.
DATE_DTYPE: Final = "datetime64[us]"

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


@dataclass(frozen=True)
class InputTable:
    """One contract table as read from its file.

    ``frame`` holds the contract columns present in the file, converted to their kinds (str,
    Int64, float64, datetime64, boolean), plus the extra columns the table keeps
    (``Table.extras``) listed in ``extra_columns``: the catalog's parameters in ``products``, the
    bank's own features in ``clients`` and ``financials`` (numeric as float64, categorical as
    object with None for missing; their kinds in ``extra_kinds``). Its index is the file's
    1-based data row number.
    """

    table: contract.Table
    path: Path
    frame: pd.DataFrame
    extra_columns: tuple[str, ...] = ()
    #: The bank's own feature columns (``clients``, ``financials``): name -> numeric/categorical.
    extra_kinds: dict[str, contract.ExtraKind] = field(default_factory=dict)
    #: Per month column: values that named another day of their month, read as its first day.
    normalised_months: dict[str, int] = field(default_factory=dict)
    #: Per month column with ``filled_from``: the rows (file row numbers) whose empty cell was
    #: set to the manifest's month.
    filled_months: dict[str, pd.Index] = field(default_factory=dict)
    #: A table given as a folder of parts: each part's file (relative to the input folder) and
    #: the frame's row number of its first row, in part order; empty for a single file.
    parts: tuple[tuple[str, int], ...] = ()

    @property
    def file(self) -> str:
        """The file name, as problems name it (``<table>/`` for a table given as parts)."""
        return f"{self.path.name}/" if self.parts else self.path.name

    def locate(self, row: int) -> tuple[str, int]:
        """The file and its own row number of the frame's row ``row``: the part that holds
        it for a table given as parts, else the file itself."""
        return _locate(self.parts, self.file, row)

    @property
    def name(self) -> str:
        return self.table.name


@dataclass(frozen=True)
class InputFolder:
    """Everything read from one input folder, with the problems found while reading."""

    folder: Path
    tables: dict[str, InputTable]
    problems: list[Problem]
    #: sha256 over the files' names and bytes (the manifest's too), in name order (the ingest
    #: run's fingerprint).
    fingerprint: str
    warnings: list[str] = field(default_factory=list)
    #: The folder's manifest.yaml, None when it has none (or it was refused: see ``problems``).
    manifest: Manifest | None = None


def find_table_files(folder: Path) -> tuple[dict[str, Path], list[Problem]]:
    """Find the file of each contract table in ``folder``.

    Returns the files found and a problem for each required table missing, each table present
    in both formats, and a folder that does not exist.
    """
    if not folder.is_dir():
        return {}, [Problem(file=str(folder), message="input folder does not exist")]
    found: dict[str, Path] = {}
    problems: list[Problem] = []
    for table in contract.TABLES:
        csv = folder / f"{table.name}{CSV_SUFFIX}"
        parquet = folder / f"{table.name}{PARQUET_SUFFIX}"
        parts = folder / table.name
        given = [
            (name, path)
            for name, path, present in (
                (csv.name, csv, csv.is_file()),
                (parquet.name, parquet, parquet.is_file()),
                (f"{parts.name}/", parts, parts.is_dir()),
            )
            if present
        ]
        if len(given) > 1:
            names = " and ".join(name for name, _ in given)
            problems.append(
                Problem(
                    file=given[0][0],
                    message=f"{'both ' if len(given) == 2 else ''}{names} are present; "
                    "keep only one",
                )
            )
        elif given:
            found[table.name] = given[0][1]
        elif not table.is_optional:
            problems.append(
                Problem(
                    file=f"{table.name}{PARQUET_SUFFIX} or {table.name}{CSV_SUFFIX}",
                    message=f"required table '{table.name}' is missing from the input folder",
                )
            )
    return found, problems


def fingerprinted_paths(folder: Path, files: dict[str, Path]) -> list[Path]:
    """What a folder's fingerprint covers: each table's file (every part of a partitioned
    table), the manifest and ``_partitions.json`` when they are there; ``files`` as
    :func:`find_table_files` finds them."""
    paths = [p for path in files.values() for p in (part_files(path) if path.is_dir() else [path])]
    paths.extend(
        folder / extra
        for extra in (contract.MANIFEST_FILE, PARTITIONS_FILE)
        if (folder / extra).is_file()
    )
    return paths


def folder_fingerprint(folder: Path) -> str:
    """The fingerprint :func:`read_input_folder` gives ``folder``, from the files' bytes alone
    (nothing parsed): what a job that reads the folder part by part records.

    Raises:
        OSError: a file cannot be read.
    """
    files, _ = find_table_files(folder)
    return fingerprint_files(fingerprinted_paths(folder, files), folder)


def fingerprint_files(paths: list[Path], folder: Path | None = None) -> str:
    """sha256 over the names and bytes of ``paths`` (in name order), as hex. Names are
    relative to ``folder`` when given (a part's name is then ``<table>/part-NNNNN.parquet``),
    else the files' own names."""

    def name(path: Path) -> str:
        return path.relative_to(folder).as_posix() if folder is not None else path.name

    digest = hashlib.sha256()
    for path in sorted(paths, key=name):
        digest.update(name(path).encode())
        digest.update(b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def read_input_folder(folder: Path) -> InputFolder:
    """Read every contract table of ``folder``; collect the problems instead of raising.

    Problems cover the files (missing, both formats, unreadable) and the cells (not of the
    column's kind). Values are not checked against the contract here; see
    ``rmreco.data.contract``.
    """
    folder = Path(folder)
    files, problems = find_table_files(folder)
    manifest, manifest_problems = read_manifest(folder) if folder.is_dir() else (None, [])
    problems.extend(manifest_problems)
    partitioned = folder.is_dir() and is_partitioned(folder)
    if partitioned:
        problems.extend(
            partition_problems(folder, tables=[n for n, p in files.items() if p.is_dir()])
        )
    tables: dict[str, InputTable] = {}
    warnings: list[str] = []
    for name, path in files.items():
        table, table_problems, table_warnings = read_table(
            contract.TABLES_BY_NAME[name], path, manifest=manifest
        )
        problems.extend(table_problems)
        warnings.extend(table_warnings)
        if table is not None:
            tables[name] = table
    if manifest is not None:
        problems.extend(
            Problem(
                file=contract.MANIFEST_FILE,
                message=f"key 'columns.{name}' declares columns of {name}, but the folder has "
                f"no {name}{PARQUET_SUFFIX} or {name}{CSV_SUFFIX}",
            )
            for name, declared in manifest.columns.items()
            if declared and name not in files
        )
    try:
        fingerprint = fingerprint_files(fingerprinted_paths(folder, files), folder)
    except OSError as exc:  # a file that could not be read (again): a refusal, not a traceback
        fingerprint = ""
        name = Path(exc.filename).name if exc.filename else str(folder)
        if not any(p.file == name and p.row is None for p in problems):
            problems.append(Problem(file=name, message=f"cannot be read: {exc.strerror or exc}"))
    return InputFolder(
        folder=folder,
        tables=tables,
        problems=problems,
        fingerprint=fingerprint,
        warnings=warnings,
        manifest=manifest,
    )


def empty_frame(table: contract.Table) -> pd.DataFrame:
    """A table left out of the folder: no rows, its contract columns, each of its kind."""
    dtypes = {
        "str": "str",
        "int": "Int64",
        "float": "float64",
        "date": DATE_DTYPE,
        "bool": "boolean",
    }
    index = pd.RangeIndex(1, 1, name="row")
    return pd.DataFrame(
        {c.name: pd.Series(index=index, dtype=dtypes[c.kind]) for c in table.columns},
        index=index,
    )


def read_table(
    table: contract.Table, path: Path, *, manifest: Manifest | None = None
) -> tuple[InputTable | None, list[Problem], list[str]]:
    """Read one table's file, or its folder of parts, and convert its contract columns to their
    kinds.

    ``manifest`` (the folder's, if any) fills empty month cells (``Column.filled_from``) and
    declares the kinds of the bank's own columns. Returns the table (None when the file, or a
    part, cannot be read at all), the problems found (a part's naming the part and its own row)
    and warnings (unknown columns dropped, kinds inferred).
    """
    parts: tuple[tuple[str, int], ...] = ()
    if path.is_dir():
        file = f"{path.name}/"
        raw, parts, refusals = _read_parts(path)
    else:
        file = path.name
        raw, refusals = _read_file(path, file)
    if raw is None:
        return None, refusals, []

    names = [str(c).strip().lower() for c in raw.columns]
    raw.columns = pd.Index(names)
    raw.index = pd.RangeIndex(1, len(raw) + 1, name="row")

    known = set(table.column_names) | {c.name for c in table.detail_columns}
    extra = tuple(n for n in names if n not in known)
    warnings: list[str] = []
    if extra and table.extras == "ignored":
        message = f"{file}: columns not in the contract are ignored: {', '.join(extra)}"
        logger.warning(message)
        warnings.append(message)

    problems: list[Problem] = []
    columns: dict[str, pd.Series] = {}
    normalised: dict[str, int] = {}
    filled: dict[str, pd.Index] = {}
    for column in (*table.columns, *table.detail_columns):
        if column.name in raw.columns:
            converted = convert_column(raw[column.name], column, file=file)
            values = converted.values
            problems.extend(converted.problems)
            if converted.normalised:
                normalised[column.name] = converted.normalised
            if column.filled_from is not None:
                values, rows_filled, fill_problems = fill_from_manifest(
                    values, raw[column.name], column, manifest, file=file
                )
                problems.extend(fill_problems)
                if len(rows_filled):
                    filled[column.name] = rows_filled
            columns[column.name] = values
        elif column.filled_from is not None and manifest is not None:
            month = manifest.month_of(column.filled_from)
            if month is not None and len(raw):  # a column left out is empty everywhere
                columns[column.name] = pd.Series(
                    pd.Timestamp(month), index=raw.index, dtype=DATE_DTYPE
                )
                filled[column.name] = raw.index
    kept_extra: tuple[str, ...] = ()
    kinds: dict[str, contract.ExtraKind] = {}
    if table.extras == "params":
        kept_extra = extra
        for name in extra:
            columns[name] = _extra_column(raw[name])
    elif table.extras == "features":
        declared = manifest.declared(table.name) if manifest is not None else {}
        features = read_feature_columns(raw, extra, declared, file=file)
        problems.extend(features.problems)
        warnings.extend(features.warnings)
        columns.update(features.columns)
        kinds = features.kinds
        kept_extra = tuple(kinds)
    frame = pd.DataFrame(columns, index=raw.index)
    if parts:
        problems = [_in_part(p, parts, file) for p in problems]
    return (
        InputTable(
            table=table,
            path=path,
            frame=frame,
            extra_columns=kept_extra,
            extra_kinds=kinds,
            normalised_months=normalised,
            filled_months=filled,
            parts=parts,
        ),
        problems,
        warnings,
    )


def _read_file(path: Path, file: str) -> tuple[pd.DataFrame | None, list[Problem]]:
    """The raw cells of one file, or None and why it cannot be read (not CSV text, a parser's
    error, a column named twice)."""
    try:
        refused = csv_file_problem(path) if path.suffix == CSV_SUFFIX else None
        # the header as the file spells it: pandas would rename a second "region" "region.1"
        duplicated = (
            [] if refused else repeated_names([c.strip().lower() for c in header_names(path)])
        )
        raw = None if refused or duplicated else read_raw(path)
    except UnicodeDecodeError:
        return None, [Problem(file=file, message=not_utf8_problem(path))]
    except Exception as exc:  # any parser or file error: report it against the file, keep going
        return None, [Problem(file=file, message=f"cannot be read: {reading_error(exc, path)}")]
    if refused is not None:
        return None, [Problem(file=file, message=refused)]
    if raw is None:
        return None, [
            Problem(file=file, column=n, message="column appears more than once")
            for n in duplicated
        ]
    return raw, []


def _read_parts(
    folder: Path,
) -> tuple[pd.DataFrame | None, tuple[tuple[str, int], ...], list[Problem]]:
    """The raw cells of a table given as a folder of Parquet parts, one part after the other,
    with each part's name (``<table>/part-NNNNN.parquet``) and the row number of its first
    row; or None and why: no part at all, a part that cannot be read, parts whose columns
    differ (each problem names its part)."""
    files = part_files(folder)
    if not files:
        return (
            None,
            (),
            [
                Problem(
                    file=f"{folder.name}/",
                    message="is a folder without part files (part-00000.parquet, ...): a "
                    "table given as a folder holds its rows in such parts",
                )
            ],
        )
    frames: list[pd.DataFrame] = []
    parts: list[tuple[str, int]] = []
    problems: list[Problem] = []
    first_row = 1
    for path in files:
        name = f"{folder.name}/{path.name}"
        raw, refusals = _read_file(path, name)
        if raw is None:
            problems.extend(refusals)
            continue
        if frames and [str(c).strip().lower() for c in raw.columns] != [
            str(c).strip().lower() for c in frames[0].columns
        ]:
            problems.append(
                Problem(
                    file=name,
                    message=f"has the columns {', '.join(map(str, raw.columns))}; "
                    f"{parts[0][0]} has {', '.join(map(str, frames[0].columns))}: every part "
                    "of a table has the same columns",
                )
            )
            continue
        frames.append(raw)
        parts.append((name, first_row))
        first_row += len(raw)
    if problems:
        return None, (), problems
    return pd.concat(frames, ignore_index=True), tuple(parts), []


def _locate(parts: tuple[tuple[str, int], ...], file: str, row: int) -> tuple[str, int]:
    """The part (and its own row number) holding a table's row ``row``; ``file`` itself for a
    table of one file."""
    if not parts:
        return file, row
    starts = [first for _, first in parts]
    k = max(0, bisect.bisect_right(starts, row) - 1)
    name, first = parts[k]
    return name, row - first + 1


def _in_part(problem: Problem, parts: tuple[tuple[str, int], ...], file: str) -> Problem:
    """A problem of a table given as parts, at a row: the same problem, naming the part and
    its own row."""
    if problem.row is None or problem.file != file:
        return problem
    name, row = _locate(parts, file, problem.row)
    return Problem(file=name, message=problem.message, row=row, column=problem.column)


def fill_from_manifest(
    values: pd.Series,
    raw: pd.Series,
    column: contract.Column,
    manifest: Manifest | None,
    *,
    file: str,
) -> tuple[pd.Series, pd.Index, list[Problem]]:
    """Set the empty cells of a ``filled_from`` month column to the manifest's month.

    Only cells empty in the file are filled (a cell that did not read is a problem already).
    Without the manifest's key, empty cells of a column that may not be empty are problems
    naming the key to set. Returns the values, the rows filled and the problems.
    """
    key = column.filled_from
    assert key is not None
    empty = raw.isna() & values.isna()
    month = manifest.month_of(key) if manifest is not None else None
    if month is not None:
        filled = values.mask(empty, pd.Timestamp(month)).astype(DATE_DTYPE)
        return filled, values.index[empty.to_numpy()], []
    if column.nullable:
        return values, values.index[:0], []
    collector = ProblemCollector(file, column.name)
    collector.add(
        raw,
        empty,
        f"is empty; it may be empty only when {contract.MANIFEST_FILE} gives the key '{key}' "
        f"({column.fill_rule}): set {key} in {contract.MANIFEST_FILE}, or give the month",
    )
    return values, values.index[:0], collector.problems


@dataclass(frozen=True)
class FeatureColumns:
    """The bank's own columns of a table, read as features."""

    columns: dict[str, pd.Series]
    kinds: dict[str, contract.ExtraKind]
    problems: list[Problem]
    warnings: list[str]


def read_feature_columns(
    raw: pd.DataFrame,
    names: tuple[str, ...],
    declared: dict[str, contract.ExtraKind],
    *,
    file: str,
) -> FeatureColumns:
    """Read the columns ``names`` (not in the contract) of a table that takes them as features.

    A column ``declared`` (in the manifest) gets its kind, and one declared but missing from the
    file is a problem; the others get an inferred kind (numeric when every non-empty value is a
    number), listed in one warning. Names that are not plain are problems; columns without any
    value are dropped with a warning; categorical ones with very many values are warned about.
    """
    problems: list[Problem] = []
    warnings: list[str] = []
    columns: dict[str, pd.Series] = {}
    kinds: dict[str, contract.ExtraKind] = {}
    inferred: list[str] = []
    empty: list[str] = []
    for name in declared:
        if name not in raw.columns:
            problems.append(
                Problem(
                    file=file,
                    column=name,
                    message=f"declared in {contract.MANIFEST_FILE} but not in the file",
                )
            )
    for name in names:
        if not re.match(contract.EXTRA_COLUMN_NAME, name):
            problems.append(
                Problem(
                    file=file,
                    column=name,
                    message="a column the contract does not know is used as a feature and "
                    "needs a plain name (a lower-case letter, then lower-case letters, digits "
                    "or '_', at most 63 characters): rename it, or leave it out of the file",
                )
            )
            continue
        series = raw[name]
        if name not in declared and series.isna().all():
            empty.append(name)
            continue
        collector = ProblemCollector(file, name)
        kind = declared.get(name) or infer_kind(series)
        if name not in declared:
            inferred.append(name)
        columns[name] = (
            _to_float(series, collector) if kind == "numeric" else _categorical(series, collector)
        )
        kinds[name] = kind
        problems.extend(collector.problems)
        if kind == "categorical":
            levels = int(columns[name].nunique(dropna=True))
            if levels > contract.EXTRA_CATEGORICAL_LEVELS_WARNING:
                warnings.append(
                    f"{file}: column {name} is categorical with {levels:,} distinct values "
                    f"(more than {contract.EXTRA_CATEGORICAL_LEVELS_WARNING}): probably an "
                    "identifier, which no model can learn from; kept as a feature"
                )
    if inferred:
        n = len(inferred)
        listed = ", ".join(f"{name} ({kinds[name]})" for name in inferred)
        warnings.append(
            f"{file}: {n} column{'s' if n != 1 else ''} the contract does not know "
            f"{'are' if n != 1 else 'is'} used as feature{'s' if n != 1 else ''}, "
            f"kind{'s' if n != 1 else ''} inferred (declare them in {contract.MANIFEST_FILE} "
            f"to fix them): {listed}"
        )
    if empty:
        warnings.append(
            f"{file}: columns the contract does not know without any value are dropped: "
            + ", ".join(empty)
        )
    for message in warnings:
        logger.warning(message)
    return FeatureColumns(columns, kinds, problems, warnings)


def infer_kind(series: pd.Series) -> contract.ExtraKind:
    """The kind of an undeclared column: numeric when it is a numeric column (Parquet) or every
    non-empty value is a finite number, else categorical (booleans and dates too)."""
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_datetime64_any_dtype(
        series.dtype
    ):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series.dtype):
        return "numeric"  # an infinite value is then refused by the conversion, located
    values = series.dropna()
    if values.map(lambda v: isinstance(v, bool | np.bool_)).any():
        return "categorical"
    numbers = pd.to_numeric(values.astype("str").str.strip(), errors="coerce").astype("float64")
    is_number = numbers.notna() & np.isfinite(numbers)
    return "numeric" if bool(is_number.all()) else "categorical"


def _categorical(series: pd.Series, collector: ProblemCollector) -> pd.Series:
    """A categorical column as trimmed text: object dtype, None where missing."""
    if pd.api.types.is_bool_dtype(series.dtype) or (
        series.dtype == object and series.map(lambda v: isinstance(v, bool | np.bool_)).any()
    ):  # booleans read as CSV writes them
        series = series.map(
            lambda v: str(bool(v)).lower() if isinstance(v, bool | np.bool_) else v,
            na_action="ignore",
        ).astype(object)
    text = _to_str(series, collector)
    return text.astype(object).where(text.notna(), None)


class ProblemCollector:
    """Problems of one column, at most MAX_PROBLEMS_PER_COLUMN per kind of problem."""

    def __init__(self, file: str, column: str) -> None:
        self.file = file
        self.column = column
        self.problems: list[Problem] = []

    def add(self, series: pd.Series, bad: pd.Series, describe: str) -> None:
        """Report the rows where ``bad`` is true; ``describe`` formats with {value}."""
        n_bad = int(bad.sum())
        if n_bad == 0:
            return
        for row, value in series[bad].head(MAX_PROBLEMS_PER_COLUMN).items():
            self.problems.append(
                Problem(
                    file=self.file,
                    row=int(cast(int, row)),
                    column=self.column,
                    message=describe.format(value=show_value(value)),
                )
            )
        if n_bad > MAX_PROBLEMS_PER_COLUMN:
            self.problems.append(
                Problem(
                    file=self.file,
                    column=self.column,
                    message=f"{n_bad - MAX_PROBLEMS_PER_COLUMN} more rows with the same problem: "
                    + describe.format(value="..."),
                )
            )


def show_value(value: Any) -> str:
    """A cell value as problems quote it: dates as YYYY-MM-DD, whole numbers without '.0'."""
    if isinstance(value, pd.Timestamp) and value == value.normalize():
        value = value.strftime("%Y-%m-%d")
    elif isinstance(value, float | np.floating):
        value = _number_text(float(value))
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


@dataclass(frozen=True)
class ConvertedColumn:
    """One column converted to its contract kind."""

    values: pd.Series
    #: A problem for every cell that did not convert (capped, see MAX_PROBLEMS_PER_COLUMN).
    problems: list[Problem]
    #: Month columns: values moved to the first day of their month.
    normalised: int = 0


def convert_column(series: pd.Series, column: contract.Column, *, file: str) -> ConvertedColumn:
    """Convert one column to its contract kind; cells that do not convert become missing.

    Month columns (``rmreco.data.dates.is_month_column``) read any date within a month as the
    month's first day.
    """
    collector = ProblemCollector(file, column.name)
    if column.kind == "date" and is_month_column(column.name):
        months, moved = read_month_column(series, collector)
        return ConvertedColumn(months, collector.problems, moved)
    converters = {
        "str": _to_str,
        "int": _to_int,
        "float": _to_float,
        "date": _to_date,
        "bool": _to_bool,
    }
    converted = converters[column.kind](series, collector)
    return ConvertedColumn(converted, collector.problems)


def _to_str(series: pd.Series, collector: ProblemCollector) -> pd.Series:
    text = _text(series)
    # a NUL character is no text a database stores (PostgreSQL refuses it mid-load)
    has_nul = text.str.contains("\x00", regex=False).fillna(False).astype(bool)
    collector.add(
        text.str.replace("\x00", "\\x00", regex=False), has_nul, "{value} holds a NUL character"
    )
    return text.where(~has_nul, np.nan)


def _text(series: pd.Series) -> pd.Series:
    if pd.api.types.is_integer_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("Int64").astype("str").where(series.notna(), np.nan)
    if pd.api.types.is_float_dtype(series.dtype):
        return series.map(_number_text, na_action="ignore").astype("str")
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series.dt.strftime("%Y-%m-%d").astype("str")
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        return blank_to_na(series.str.strip()).astype("str")
    # object columns (Parquet with mixed or unusual values): text of each value
    text = series.map(_value_text, na_action="ignore").astype("str")
    return blank_to_na(text.str.strip())


def _number_text(value: float) -> str:
    return str(int(value)) if math.isfinite(value) and float(value).is_integer() else repr(value)


def _value_text(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return _number_text(float(value))
    return str(value)


def _to_float(series: pd.Series, collector: ProblemCollector) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        collector.add(series, series.notna(), "{value} is not a number")
        return pd.Series(np.nan, index=series.index, dtype="float64")
    numbers = pd.to_numeric(series, errors="coerce").astype("float64")
    collector.add(series, series.notna() & numbers.isna(), "{value} is not a number")
    infinite = numbers.notna() & ~np.isfinite(numbers)
    collector.add(series, infinite, "{value} is not a finite number")
    return numbers.where(~infinite, np.nan)


def _to_int(series: pd.Series, collector: ProblemCollector) -> pd.Series:
    if pd.api.types.is_integer_dtype(series.dtype):
        numbers = series.astype("Float64")
        fractional = pd.Series(False, index=series.index)
    else:
        numbers = _to_float(series, collector)
        fractional = numbers.notna() & (numbers != np.floor(numbers))
        collector.add(series, fractional, "{value} is not a whole number")
    too_big = (numbers.abs() > MAX_WHOLE_NUMBER).fillna(False).astype(bool)
    collector.add(
        series,
        too_big,
        f"{{value}} is beyond {MAX_WHOLE_NUMBER:,}, the largest whole number stored",
    )
    if pd.api.types.is_integer_dtype(series.dtype):
        return series.astype("Int64").mask(too_big)
    return numbers.where(~(fractional | too_big), np.nan).astype("Int64")


def _to_bool(series: pd.Series, collector: ProblemCollector) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("boolean")
    text = series.map(lambda v: str(v).strip().lower(), na_action="ignore")
    result = pd.Series(pd.NA, index=series.index, dtype="boolean")
    result[text.isin(_TRUE)] = True
    result[text.isin(_FALSE)] = False
    collector.add(series, series.notna() & result.isna(), "{value} is not true or false")
    return result


def _to_date(series: pd.Series, collector: ProblemCollector) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        stamps = series
        if isinstance(stamps.dtype, pd.DatetimeTZDtype):
            stamps = stamps.dt.tz_localize(None)
        timed = stamps.notna() & (stamps != stamps.dt.normalize())
        collector.add(stamps, timed, "{value} has a time of day; expected a date")
        return stamps.where(~timed).astype(DATE_DTYPE)
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        text = series
    else:
        # Parquet date32 arrives as datetime.date objects; anything else is judged as text
        text = series.map(
            lambda v: v.isoformat()[:10] if hasattr(v, "isoformat") and _is_midnight(v) else str(v),
            na_action="ignore",
        ).astype("str")
    is_iso = text.str.match(_ISO_DATE).fillna(False).astype(bool)
    dates = pd.to_datetime(text.where(is_iso), format="%Y-%m-%d", errors="coerce")
    collector.add(
        series, series.notna() & dates.isna(), "{value} is not a date in the form YYYY-MM-DD"
    )
    return dates.astype(DATE_DTYPE)


def _is_midnight(value: Any) -> bool:
    time = getattr(value, "time", None)
    if time is None:  # a datetime.date
        return True
    t = time()
    return bool(t.hour == 0 and t.minute == 0 and t.second == 0 and t.microsecond == 0)


def _extra_column(series: pd.Series) -> pd.Series:
    """An extra catalog column: numbers when every value is one, otherwise as read."""
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        numbers = pd.to_numeric(series, errors="coerce")
        if numbers[series.notna()].notna().all():
            return numbers
    return series
