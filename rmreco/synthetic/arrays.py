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


def normals(rng: np.random.Generator, shape: int | tuple[int, ...]) -> Array:
    """Standard normal draws from ``rng`` as float32, by the Box-Muller transform of uniforms:
    three times faster than numpy's own normals for the generator's millions of noise draws
    (float32 log, sqrt, sine and cosine run vectorised; numpy's float64 sine and cosine are 25
    times slower). No draw lies beyond 5.8 sd (a chance of one in a hundred million), the
    resolution of a float32 uniform."""
    f32 = np.float32
    size = int(np.prod(shape))
    half = (size + 1) // 2
    u = rng.random(2 * half, dtype=f32)
    radius = np.sqrt(f32(-2.0) * np.log1p(-u[:half]))  # 1 - u is in (0, 1]
    angle = u[half:]
    angle *= f32(2 * np.pi)
    out = np.empty(2 * half, dtype=f32)
    np.multiply(radius, np.cos(angle), out=out[:half])
    np.multiply(radius, np.sin(angle), out=out[half:])
    return out[:size].reshape(shape)


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
    """A dictionary array: Parquet stores it as plain strings without hashing every row. The
    codes are the generator's own positions in ``dictionary``, so they are not checked again
    (a pass over every row of the cross-sell truth)."""
    indices = pa.array(np.asarray(codes, dtype=np.int32))
    return pa.DictionaryArray.from_arrays(indices, dictionary, safe=False)


def geometric(u: Array, mean: Array) -> Array:
    """Counts 0, 1, 2, ... with the given mean (geometric law), from uniforms ``u``."""
    q = mean / (1.0 + mean)
    return np.floor(np.log1p(-u) / np.log(q)).astype(np.int64)
