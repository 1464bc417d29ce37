"""This module owns the small numeric and Arrow helpers the generator's modules share: seeded
random streams, the logistic function, month arithmetic and typed Arrow columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

Array = npt.NDArray[Any]


def spawn_rng(seed: int, *key: int) -> np.random.Generator:
    """The random stream of ``seed`` for one purpose (``key``: a stream of parameters.py, then
    e.g. the chunk number): streams never overlap, whatever is drawn from the others."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def sigmoid(x: Array) -> Array:
    """The logistic function: log-odds to probability."""
    return 1.0 / (1.0 + np.exp(-x))


def logit(p: Array) -> Array:
    """Probability to log-odds."""
    return np.log(p / (1.0 - p))


def month_days(abs_month: Array) -> Array:
    """Days since 1970-01-01 of the first day of absolute months (year * 12 + month - 1)."""
    months = np.asarray(abs_month, dtype=np.int64) - 1970 * 12
    return months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int32)


def dates(days: Array) -> pa.Array:
    """A date32 column from days since 1970-01-01."""
    return pa.array(np.asarray(days, dtype=np.int32), type=pa.date32())


def ints(values: Array, null: Array | None = None) -> pa.Array:
    """An int64 column, empty where ``null`` is true."""
    return pa.array(np.asarray(values, dtype=np.int64), type=pa.int64(), mask=null)


def floats(values: Array, null: Array | None = None) -> pa.Array:
    """A float64 column, empty where ``null`` is true."""
    return pa.array(np.asarray(values, dtype=np.float64), type=pa.float64(), mask=null)


def coded(codes: Array, dictionary: pa.Array) -> pa.Array:
    """A dictionary array: Parquet stores it as plain strings without hashing every row."""
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)), dictionary)


def geometric(u: Array, mean: Array) -> Array:
    """Counts 0, 1, 2, ... with the given mean (geometric law), from uniforms ``u``."""
    q = mean / (1.0 + mean)
    return np.floor(np.log1p(-u) / np.log(q)).astype(np.int64)
