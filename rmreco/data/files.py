"""This module owns what an input file is before any column of it is read: whether a ``.csv``
file is CSV text at all (empty, a Parquet or Excel file under a ``.csv`` name, UTF-16, bytes
that are not UTF-8, each refused saying what it is instead), the column names its header gives,
a parser's error in words, and its raw cells (:func:`read_raw`). A table may also be given as a
folder of Parquet parts (the client-partitioned layout of ``rmreco.data.partitions``): its part
files, in order (:func:`part_files`), each read as a Parquet file is. Converting the cells to
the contract's kinds is ``rmreco.data.tables``.
"""

from __future__ import annotations

import codecs
import csv
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from rmreco.data.partitions import table_parts

CSV_SUFFIX = ".csv"
PARQUET_SUFFIX = ".parquet"
#: How many bytes of a CSV file are looked at to tell what it is before it is parsed.
_SNIFF_BYTES = 1 << 16
#: The first bytes of files that are often sent under a ``.csv`` name, and what to do instead.
_NOT_CSV: tuple[tuple[bytes, str], ...] = (
    (b"PAR1", "a Parquet file, not CSV text: name it {stem}.parquet"),
    (
        b"PK\x03\x04",
        "a ZIP archive (an Excel workbook?), not CSV text: export the sheet as CSV, UTF-8",
    ),
    (b"\xd0\xcf\x11\xe0", "an old Excel file, not CSV text: export the sheet as CSV, UTF-8"),
)
#: pandas' messages for a row with more cells than the header (its line counted from 1) and for
#: a quote never closed (its line counted from 0).
_FIELD_COUNT = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_OPEN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


def csv_file_problem(path: Path) -> str | None:
    """Why the CSV file ``path`` is not CSV text the contract reads, told from its first bytes,
    or None: empty (not even a header), a Parquet or Excel file under a ``.csv`` name, UTF-16.
    Bytes that are not UTF-8 further on are found while reading (:func:`not_utf8_problem`)."""
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    body = head.removeprefix(codecs.BOM_UTF8)
    if not body.strip():
        return "is empty: a CSV file needs at least its header row"
    for magic, what in _NOT_CSV:
        if body.startswith(magic):
            return "is " + what.format(stem=path.stem)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "is UTF-16 text: save it as UTF-8"
    return None


def not_utf8_problem(path: Path) -> str:
    """The problem of a file that is not UTF-8, naming the line and the first bad byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(1 << 20)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # exc.object is what the decoder held plus this chunk; held bytes are the start
                # of a character, never a line break, and their line was counted already
                data = bytes(exc.object)
                line += data.count(b"\n", 0, exc.start)
                return (
                    f"is not UTF-8 text: line {line} holds the byte 0x{data[exc.start]:02x} "
                    "(binary data, or text in another encoding such as Latin-1 or "
                    "Windows-1252): save it as UTF-8"
                )
            if not chunk:
                break
            line += chunk.count(b"\n")
    return "is not UTF-8 text: save it as UTF-8"


def part_files(folder: Path) -> list[Path]:
    """The part files (``part-NNNNN.parquet``) of a table given as ``folder``, in part order."""
    return table_parts(folder.parent, folder.name)


def header_names(path: Path) -> list[str]:
    """The column names as the file gives them: a CSV's first non-empty row, a Parquet file's
    schema."""
    if path.suffix != CSV_SUFFIX:
        return [str(name) for name in pq.read_schema(path).names]
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.reader(handle):
            if any(cell.strip() for cell in row):
                return row
    return []


def repeated_names(names: list[str]) -> list[str]:
    """The names that occur more than once, sorted."""
    seen: set[str] = set()
    repeated: set[str] = set()
    for name in names:
        (repeated if name in seen else seen).add(name)
    return sorted(repeated)


def reading_error(exc: Exception, path: Path) -> str:
    """A parser's error as a refusal says it: the file by its name only, pandas' CSV tokenizer
    errors in words."""
    text = str(exc).strip().replace(str(path), path.name)
    fields = _FIELD_COUNT.search(text)
    if fields is not None:
        header, line, found = fields.groups()
        return (
            f"line {line} has {found} cells, but the header has {header} (a value holding a comma "
            'must be quoted: "a, b")'
        )
    quote = _OPEN_QUOTE.search(text)
    if quote is not None:
        return f"the quote opened on line {int(quote.group(1)) + 1} is never closed"
    return text.removeprefix("Error tokenizing data. C error: ")


def read_raw(path: Path) -> pd.DataFrame:
    """Every cell of a CSV file as trimmed text (empty = missing), or a Parquet file as it is
    stored: the kinds are the contract's to give, column by column."""
    if path.suffix == CSV_SUFFIX:
        # Everything as text first: conversion below knows each column's kind and reports
        # each bad cell, where pandas' own inference would silently turn ids into floats.
        frame = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8-sig",
            skip_blank_lines=True,
        )
        for name in frame.columns:
            frame[name] = blank_to_na(frame[name].str.strip())
        return frame
    return pd.read_parquet(path)


def blank_to_na(series: pd.Series) -> pd.Series:
    return series.mask(series == "")
