"""This module owns the manifest of an input folder: ``manifest.yaml`` beside the tables.

The manifest states what a bank's tables cannot say themselves. Every key is optional, and so is
the file::

    extract_date: 2024-12-31      # the date undated facts are known at
    observation_month: 2023-12    # fills clients.as_of_month where it is empty
    columns:                      # the bank's own columns of clients and financials, and their kind
      clients:   {legal_form: categorical, bureau_score: numeric}
      financials: {ratio_01: numeric, ratio_02: numeric}

- ``extract_date``: an empty ``credit_events.month`` is a credit status known at this date and
  becomes an event of the date's month; outcomes are known up to that month.
- ``observation_month``: any date within the month (or ``YYYY-MM``); an empty
  ``clients.as_of_month`` is this month.
- ``columns``: per table that takes the bank's own columns (``clients``, ``financials``), each
  column's kind, ``numeric`` or ``categorical``. Names are matched trimmed and lower-cased, as the
  tables' headers are, and must be plain names (``rmreco.domain.contract.EXTRA_COLUMN_NAME``).

Unknown keys, bad YAML and bad values are refused as :class:`~rmreco.domain.errors.Problem` s
naming ``manifest.yaml`` and the key.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rmreco.domain import contract
from rmreco.domain.errors import Problem

_MONTH_TEXT = re.compile(r"^\d{4}-\d{2}$")
_YAML_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _DatesAsText(yaml.SafeLoader):
    """The safe loader, with dates left as text: the manifest's validators read them and name
    the key of a date that does not exist (YAML's own reading fails without naming it)."""


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _YAML_TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _tables_with_features() -> dict[str, contract.Table]:
    return {t.name: t for t in contract.TABLES if t.extras == "features"}


def _as_date(value: Any, key: str, *, month: bool) -> Any:
    """A YAML date, a datetime or ISO text as a date; ``month`` also takes ``YYYY-MM``."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if month and _MONTH_TEXT.match(text):
        text += "-01"
    if _DATE_TEXT.match(text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
    form = "a date YYYY-MM-DD or a month YYYY-MM" if month else "a date YYYY-MM-DD"
    raise ValueError(f"key '{key}': {text!r} is not {form}")


class Manifest(BaseModel):
    """What ``manifest.yaml`` states; every key is optional."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The date the extract was taken: undated facts (a credit status) are known at it.
    extract_date: dt.date | None = None
    #: The month clients without account history are observed in (first day of the month).
    observation_month: dt.date | None = None
    #: {table: {column: kind}} of the bank's own columns of clients and financials.
    columns: dict[str, dict[str, contract.ExtraKind]] = Field(default_factory=dict)

    @field_validator(contract.MANIFEST_EXTRACT_DATE, mode="before")
    @classmethod
    def _extract_date(cls, value: Any) -> Any:
        return _as_date(value, contract.MANIFEST_EXTRACT_DATE, month=False)

    @field_validator(contract.MANIFEST_OBSERVATION_MONTH, mode="before")
    @classmethod
    def _observation_month(cls, value: Any) -> Any:
        day = _as_date(value, contract.MANIFEST_OBSERVATION_MONTH, month=True)
        return None if day is None else day.replace(day=1)

    @field_validator("columns", mode="before")
    @classmethod
    def _columns(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("key 'columns': expected a mapping of table -> {column: kind}")
        tables = _tables_with_features()
        normalised: dict[str, Any] = {}
        for table_name, declared in value.items():
            name = str(table_name).strip().lower()
            key = f"columns.{table_name}"
            if name not in tables:
                raise ValueError(
                    f"key '{key}': {table_name!r} is not a table that takes the bank's own "
                    f"columns; those are: {', '.join(tables)}"
                )
            if declared is None:
                declared = {}
            if not isinstance(declared, dict):
                raise ValueError(f"key '{key}': expected a mapping of column -> kind")
            known = set(tables[name].column_names) | {c.name for c in tables[name].detail_columns}
            columns: dict[str, Any] = {}
            for column_name, kind in declared.items():
                column = str(column_name).strip().lower()
                where = f"{key}.{column_name}"
                if not re.match(contract.EXTRA_COLUMN_NAME, column):
                    raise ValueError(
                        f"key '{where}': {column_name!r} is not a plain column name "
                        "(a lower-case letter, then lower-case letters, digits or '_', at "
                        "most 63 characters)"
                    )
                if column in known:
                    raise ValueError(
                        f"key '{where}': {column!r} is a contract column of {name}; declare "
                        "only the bank's own columns"
                    )
                if column in columns:
                    raise ValueError(f"key '{where}': {column!r} is declared twice")
                columns[column] = kind.strip().lower() if isinstance(kind, str) else kind
            normalised[name] = columns
        return normalised

    def extract_month(self) -> dt.date | None:
        """The first day of the extract date's month, or None without an extract date."""
        return None if self.extract_date is None else self.extract_date.replace(day=1)

    def month_of(self, key: str) -> dt.date | None:
        """The month (first day) a manifest key gives a month column (``Column.filled_from``)."""
        if key == contract.MANIFEST_EXTRACT_DATE:
            return self.extract_month()
        if key == contract.MANIFEST_OBSERVATION_MONTH:
            return self.observation_month
        raise KeyError(key)

    def declared(self, table: str) -> dict[str, contract.ExtraKind]:
        """The kinds the manifest declares for the bank's own columns of ``table``."""
        return dict(self.columns.get(table, {}))


def read_manifest(folder: Path) -> tuple[Manifest | None, list[Problem]]:
    """Read ``folder/manifest.yaml``; (None, []) when there is none.

    Returns the manifest (None when absent or refused) and the problems: bad YAML, unknown keys,
    bad values, each naming the file and the key.
    """
    path = Path(folder) / contract.MANIFEST_FILE
    if not path.is_file():
        return None, []
    file = contract.MANIFEST_FILE
    try:
        raw = yaml.load(path.read_text(encoding="utf-8-sig"), Loader=_DatesAsText)
    except UnicodeDecodeError as exc:
        return None, [Problem(file=file, message=f"is not UTF-8 text: {exc}")]
    except OSError as exc:  # unreadable (permissions, a device error): say so, never a traceback
        return None, [Problem(file=file, message=f"cannot be read: {exc.strerror or exc}")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        cause = getattr(exc, "problem", None) or str(exc)
        return None, [Problem(file=file, message=f"is not valid YAML{where}: {cause}")]
    if raw is None:
        return Manifest(), []
    if not isinstance(raw, dict):
        return None, [
            Problem(
                file=file,
                message=f"must be a mapping of keys ({', '.join(Manifest.model_fields)}), "
                f"not {type(raw).__name__}",
            )
        ]
    try:
        return Manifest.model_validate({str(k): v for k, v in raw.items()}), []
    except ValidationError as exc:
        return None, [_problem(error) for error in exc.errors()]


def _problem(error: Any) -> Problem:
    key = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        message = f"key '{key}' is unknown; the keys are: {', '.join(Manifest.model_fields)}"
    elif kind == "value_error":
        message = str(error["ctx"]["error"])  # our validators name the key themselves
    else:
        message = f"key '{key}': {error['msg']} (found {error.get('input')!r})"
    return Problem(file=contract.MANIFEST_FILE, message=message)
