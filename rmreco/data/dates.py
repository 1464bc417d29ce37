"""Month columns: any date within a month means that month.

This module owns reading the contract's month columns (``month`` and ``*_month``: e.g.
``account_months.month``, ``holdings.start_month`` / ``end_month``, ``credit_events.month``).
Banks date a month in many ways -- the month's last day (the common convention), a posting day
in the month, its first day, or a timestamp -- and all of them mean the same month. One function,
:func:`read_month_column`, turns every such value into the first day of its month. It is called
by the reader (``rmreco.data.tables``), so ingest and training / batch scoring (both read through
``rmreco.data.contract.read_and_validate``) see the same months.

Accepted, per cell: a date or timestamp (Parquet; a time of day or time zone is dropped keeping
the wall-clock date), text ``YYYY-MM-DD`` (any valid day of the month), ``YYYY-MM`` and
``YYYY-MM-DD HH:MM[:SS[.fff]]`` (also with ``T``). Anything else (not a date, or a day that does
not exist such as 2024-02-30) is refused naming the file, the row and the column. How many values
were moved to the first day of their month is counted, so the load summary says it once per
column instead of once per row.

It also owns what "after the load's as-of" means for a dated column (:func:`after_as_of`): a
date after the as-of day, a month after the as-of's month, a year after its year. Ingest refuses
such values (``rmreco.data.ingest``): one account row dated 2099 would make 2099 the end of the
history and leave every client without a month to be scored at.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Final, Literal, Protocol

import pandas as pd

#: dtype of date columns after reading (the reader's).
MONTH_DTYPE: Final = "datetime64[us]"

_MONTH_TEXT = re.compile(r"^\d{4}-\d{2}(-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?)?$")


class _Collector(Protocol):
    def add(self, series: pd.Series, bad: pd.Series, describe: str) -> None: ...


#: How a dated column is compared with an as-of: by day, by month or by year.
Period = Literal["day", "month", "year"]


def is_month_column(name: str) -> bool:
    """Whether a date column holds months: ``month`` or ``*_month``."""
    return name == "month" or name.endswith("_month")


def is_year_column(name: str) -> bool:
    """Whether a whole-number column holds calendar years (``financials.year``)."""
    return name == "year"


def period_of(name: str, kind: str) -> Period | None:
    """How column ``name`` of contract kind ``kind`` is dated: ``day`` (a date column),
    ``month`` (a month column) or ``year`` (a year column); None for a column that is not."""
    if kind == "date":
        return "month" if is_month_column(name) else "day"
    if kind == "int" and is_year_column(name):
        return "year"
    return None


def after_as_of(values: pd.Series, as_of: date, period: Period) -> pd.Series:
    """True where a value is after ``as_of``: a date after the day, a month (its first day, as
    read) after the as-of's month, a year after its year. Missing values are never after.

    ``values`` are ``datetime64`` for days and months, whole numbers for years.
    """
    if period == "year":
        later = values > as_of.year
    elif period == "month":
        later = values > pd.Timestamp(as_of.replace(day=1))
    else:
        later = values > pd.Timestamp(as_of)
    return pd.Series(later, index=values.index).fillna(False).astype(bool)


def first_of_month(stamps: pd.Series) -> pd.Series:
    """Timestamps (naive) moved to the first day of their month, at midnight."""
    return stamps.dt.to_period("M").dt.to_timestamp().astype(MONTH_DTYPE)


def read_month_column(series: pd.Series, collector: _Collector) -> tuple[pd.Series, int]:
    """Read one month column: each value becomes the first day of its month.

    ``collector`` receives a problem for every non-empty cell that is not a date within a month.
    Returns the months (``datetime64``; missing where empty or refused) and how many values
    named a day or time other than the first day of the month at midnight (normalised).
    """
    stamps = _to_timestamps(series, collector)
    months = first_of_month(stamps)
    n_moved = int((stamps.notna() & (stamps != months)).sum())
    return months, n_moved


def _to_timestamps(series: pd.Series, collector: _Collector) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        stamps = series
        if isinstance(stamps.dtype, pd.DatetimeTZDtype):
            stamps = stamps.dt.tz_localize(None)
        return stamps.astype(MONTH_DTYPE)
    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) in (
        "date",
        "datetime",
    ):
        # Parquet date32 and timestamps arrive as datetime.date / datetime objects: every value
        # is a date already, converted at once (a million of them as text took seconds)
        stamps = pd.to_datetime(series, errors="coerce")
        if isinstance(stamps.dtype, pd.DatetimeTZDtype):
            stamps = stamps.dt.tz_localize(None)
        collector.add(
            series,
            series.notna() & stamps.isna(),
            "{value} is not a date within a month (YYYY-MM-DD or YYYY-MM)",
        )
        return stamps.astype(MONTH_DTYPE)
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        text = series.str.strip()
    else:
        # Parquet date32 arrives as datetime.date objects, timestamps as datetimes
        text = series.map(_text, na_action="ignore").astype("str")
    is_form = text.str.match(_MONTH_TEXT).fillna(False).astype(bool)
    candidate = text.where(is_form)
    # "YYYY-MM" names the month itself: its first day
    candidate = candidate.where(candidate.str.len() != 7, candidate + "-01")
    stamps = pd.to_datetime(
        candidate.str.replace("T", " ", regex=False), format="ISO8601", errors="coerce"
    )
    collector.add(
        series,
        series.notna() & stamps.isna(),
        "{value} is not a date within a month (YYYY-MM-DD or YYYY-MM)",
    )
    return stamps.astype(MONTH_DTYPE)


def _text(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
