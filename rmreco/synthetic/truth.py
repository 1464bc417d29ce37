"""This module owns the exact truth of the synthetic bank: the probabilities its events were
drawn with (``truth/credit_pd``: pd_12m; ``truth/cross_sell``: p_3m), computed by survival
recursions backwards over a (static, dynamic) log-odds grid and interpolated per client-month.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

from rmreco.synthetic.arrays import Array, coded, dates, sigmoid
from rmreco.synthetic.bank import Bank
from rmreco.synthetic.parameters import DEFAULT_SLOPE, PHI, SD_NEED, Population

#: Truth file columns (not part of the contract: the truth is never an input table).
TRUTH_PD_COLUMNS = ("client_id", "month", "pd_12m")
TRUTH_CROSS_SELL_COLUMNS = ("client_id", "month", "product_code", "p_3m")
PD_HORIZON = 12
CROSS_SELL_HORIZON = 3

# Grids of the exact truth (see _hazard_grid).
_S_GRID = np.linspace(-16.0, 2.0, 181)
_N_D = 97
_D_SPAN = 5.5  # D grid covers +- this many stationary sd
_N_QUAD = 12


@dataclass(frozen=True)
class _Grid:
    """Event probability P(S, D) tabulated on ``_S_GRID`` x (d0 + dd * j)."""

    values: Array  # (..., nS, nD) float32
    d0: Array  # per leading index or scalar
    dd: Array


def _hazard_grid(alpha: float, sd_d: float, eligible: tuple[bool, ...]) -> Array:
    """P(first event within len(eligible) months | S, D_t) on the grid.

    The hazard in month t+k is sigmoid(S + D_{t+k}) when ``eligible[k-1]`` (else 0), where
    D is AR(1) with persistence PHI and stationary sd ``sd_d``; a client leaves at the end of
    each month with probability ``alpha`` (also at the end of month t). Backward recursion:
    V_r(D) = E[h(D') + (1 - h(D')) (1 - alpha) V_{r-1}(D')], D' ~ N(PHI D, innovation),
    with the expectation by Gauss-Hermite quadrature and V interpolated linearly in D.
    """
    d_grid = np.linspace(-_D_SPAN * sd_d, _D_SPAN * sd_d, _N_D)
    nodes, weights = np.polynomial.hermite_e.hermegauss(_N_QUAD)
    weights = weights / weights.sum()
    innov = sd_d * math.sqrt(1.0 - PHI**2)
    d_next = PHI * d_grid[:, None] + innov * nodes[None, :]  # (nD, Q)
    pos = np.clip((d_next - d_grid[0]) / (d_grid[1] - d_grid[0]), 0.0, _N_D - 1 - 1e-9)
    i0 = pos.astype(np.int64)
    frac = pos - i0
    hazard = sigmoid(_S_GRID[:, None, None] + d_next[None, :, :])  # (nS, nD, Q)
    value = np.zeros((_S_GRID.size, _N_D))
    for is_eligible in reversed(eligible):
        later = value[:, i0] * (1.0 - frac) + value[:, i0 + 1] * frac
        h = hazard if is_eligible else 0.0
        value = ((h + (1.0 - h) * (1.0 - alpha) * later) * weights).sum(axis=2)
    return (1.0 - alpha) * value


@lru_cache(maxsize=4)
def truth_grids(population: Population) -> tuple[_Grid, _Grid, _Grid]:
    """Grids of pd_12m and 2-month default probability (per segment of the population) and of
    p_3m (per segment, product and first eligible month k0 in 1..3). Computed once per process
    and population (~1 s for the business population)."""
    attrition = population.attrition
    n_seg = len(attrition)
    sd_def = DEFAULT_SLOPE * population.health_sd
    pd12 = np.stack([_hazard_grid(a, sd_def, (True,) * PD_HORIZON) for a in attrition])
    pd2 = np.stack([_hazard_grid(0.0, sd_def, (True, True)) for _ in attrition])
    d_def = np.full(n_seg, -_D_SPAN * sd_def)
    dd_def = np.full(n_seg, 2 * _D_SPAN * sd_def / (_N_D - 1))
    sd_p = _product_sd(population)
    schedules = [
        tuple(k >= k0 for k in range(1, CROSS_SELL_HORIZON + 1))
        for k0 in range(1, CROSS_SELL_HORIZON + 1)
    ]
    cross = np.stack(
        [
            np.stack(
                [
                    np.stack([_hazard_grid(alpha, float(sd_p[p]), sch) for sch in schedules])
                    for p in range(population.n_products)
                ]
            )
            for alpha in attrition
        ]
    )  # (segments, P, 3, nS, nD)
    return (
        _Grid(pd12.astype(np.float64), d_def, dd_def),
        _Grid(pd2.astype(np.float64), d_def, dd_def),
        _Grid(cross.astype(np.float32), -_D_SPAN * sd_p, 2 * _D_SPAN * sd_p / (_N_D - 1)),
    )


def _product_sd(population: Population) -> Array:
    """Stationary sd of each product's dynamic log-odds D = w . (y, g, f, c)."""
    lat_w = population.lat_w
    var = lat_w[0] ** 2 * population.health_sd**2 + (lat_w[1:] ** 2).sum(axis=0) * SD_NEED**2
    return np.sqrt(np.maximum(var, 1e-6))


def _interpolate(
    values: Array, offset: Array, s: Array, d: Array, d0: Array | float, dd: Array | float
) -> Array:
    """Bilinear interpolation in grids stored flat in ``values`` (each nS x nD, the one for an
    entry starting at ``offset``) at static log-odds ``s`` and dynamic log-odds ``d``.

    Arguments broadcast against each other; pass ``s`` and ``offset`` in their smallest shape
    (e.g. per client and product) so that only the ``d`` part runs at full size.
    """
    dtype = values.dtype
    n_s = _S_GRID.size
    fs = np.clip((s - _S_GRID[0]) / (_S_GRID[1] - _S_GRID[0]), 0.0, n_s - 1 - 1e-3)
    i = fs.astype(np.int32)
    a = (fs - i).astype(dtype)
    fd = np.clip(
        (d - np.asarray(d0, dtype=dtype)) / np.asarray(dd, dtype=dtype), 0.0, _N_D - 1 - 1e-3
    )
    j = fd.astype(np.int32)
    b = (fd - j).astype(dtype)
    base = (offset + i * _N_D) + j
    flat = values.reshape(-1)
    low = flat[base] * (1 - b)
    low += flat[base + 1] * b
    high = flat[base + _N_D] * (1 - b)
    high += flat[base + _N_D + 1] * b
    out: Array = low * (1 - a) + high * a
    return out


def truth_tables(
    bank: Bank,
    population: Population,
    ids: pa.Array,
    status_hist: Array,
    held_hist: Array,
    seg: Array,
    founded_abs: Array,
    s_def: Array,
    s_prod: Array,
    Y: Array,
) -> tuple[pa.Table, pa.Table]:
    """pd_12m for every performing client-month; p_3m for every performing client-month and
    product the client may take (segment, age by t+3) and does not hold at t. ``seg`` is the
    population's own segment index; ``s_prod`` and ``held_hist`` cover its products."""
    pd_grid, pd2_grid, cross_grid = truth_grids(population)
    P, lat_w = population.n_products, population.lat_w
    M = status_hist.shape[1]
    n_cells = _S_GRID.size * _N_D
    performing = status_hist == 1
    d_def = (-DEFAULT_SLOPE * Y[:, :, 0]).astype(np.float64)
    offset = (seg * n_cells)[:, None]
    pd12 = _interpolate(pd_grid.values, offset, s_def[:, None], d_def, pd_grid.d0[0], pd_grid.dd[0])
    ci, mi = np.nonzero(performing)
    pd_table = pa.table(
        {
            "client_id": coded(ci, ids),
            "month": dates(bank.month_days[mi]),
            "pd_12m": pa.array(np.clip(pd12[ci, mi], 0.0, 1.0), type=pa.float64()),
        }
    )

    # Adoption stops while in default: the chance to still be performing in the middle of the
    # 3-month window (2 months) multiplies the adoption probability (docs: why this is close).
    survive = (
        1.0
        - _interpolate(
            pd2_grid.values, offset, s_def[:, None], d_def, pd2_grid.d0[0], pd2_grid.dd[0]
        )
    ).astype(np.float32)
    # Dense over (client, month, product), with the static parts kept per (client, product)
    # and the full-size work done only on the rows kept: broadcasting beats gathering per row.
    n = status_hist.shape[0]
    age = (bank.start_abs - founded_abs[:, None] + np.arange(M)[None, :]).astype(np.int16)
    min_age = population.min_age.astype(np.int16)
    wait = np.clip(min_age[None, None, :] - age[:, :, None] - 1, 0, 3)
    mask = (
        performing[:, :, None]
        & ~held_hist
        & population.seg_eligible[seg][:, None, :]
        & (wait < CROSS_SELL_HORIZON)
    )
    fs = np.clip((s_prod - _S_GRID[0]) / (_S_GRID[1] - _S_GRID[0]), 0.0, _S_GRID.size - 1.001)
    i = fs.astype(np.int32)
    a = np.broadcast_to((fs - i).astype(np.float32)[:, None, :], mask.shape)[mask]
    grid = (seg[:, None] * P + np.arange(P)[None, :]) * CROSS_SELL_HORIZON
    base_cp = (grid * n_cells + i * _N_D).astype(np.int32)  # (n, P)
    inv_dd = (1.0 / cross_grid.dd).astype(np.float32)
    fd = Y @ (lat_w * inv_dd[None, :]).astype(np.float32)  # (n, M, P), in D-grid steps
    fd -= (cross_grid.d0 * inv_dd).astype(np.float32)
    fd = np.clip(fd[mask], 0.0, _N_D - 1.001)
    j = fd.astype(np.int32)
    b = fd - j
    base = np.broadcast_to(base_cp[:, None, :], mask.shape)[mask] + j
    base += wait[mask].astype(np.int32) * np.int32(n_cells)
    flat = cross_grid.values.reshape(-1)
    low = flat[base]
    low += (flat[base + 1] - low) * b
    high = flat[base + _N_D]
    high += (flat[base + _N_D + 1] - high) * b
    p3 = low + (high - low) * a
    per_month = mask.sum(axis=2)
    p3 *= np.repeat(survive.reshape(-1), per_month.reshape(-1))
    ci = np.repeat(np.arange(n, dtype=np.int32), per_month.sum(axis=1))
    mi = np.repeat(np.tile(np.arange(M, dtype=np.int32), n), per_month.reshape(-1))
    pi = np.broadcast_to(np.arange(P, dtype=np.int32), mask.shape)[mask]
    cross_table = pa.table(
        {
            "client_id": coded(ci, ids),
            "month": dates(bank.month_days[mi]),
            "product_code": coded(pi, pa.array(population.codes)),
            "p_3m": pa.array(np.clip(p3, 0.0, 1.0), type=pa.float32()),
        }
    )
    return pd_table, cross_table
