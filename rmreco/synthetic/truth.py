"""This module owns the exact truth of the synthetic bank: the probabilities its events were
drawn with (``truth/credit_pd``: pd_12m; ``truth/cross_sell``: p_3m), computed by survival
recursions backwards over a (static, dynamic) log-odds grid and interpolated per client-month.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import cached_property, lru_cache

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

    values: Array  # (..., nS, nD)
    d0: Array  # per leading index or scalar
    dd: Array

    @cached_property
    def quads(self) -> Array:
        """Each grid cell's four corners (i, j), (i, j+1), (i+1, j), (i+1, j+1) as one item,
        flat over (..., nS - 1, nD - 1): an interpolation gathers one item per value instead
        of four."""
        v = self.values
        corners = np.stack(
            [v[..., :-1, :-1], v[..., :-1, 1:], v[..., 1:, :-1], v[..., 1:, 1:]], axis=-1
        )
        corners = np.ascontiguousarray(corners).reshape(-1, 4)
        return corners.view(np.dtype((np.void, 4 * v.itemsize))).reshape(-1)


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


#: One computation of a population's grids at a time: a thread that needs them while another
#: computes them waits for those instead of computing them again.
_GRIDS_LOCK = threading.Lock()


def truth_grids(population: Population) -> tuple[_Grid, _Grid, _Grid]:
    """Grids of pd_12m and 2-month default probability (per segment of the population) and of
    p_3m (per segment, product and first eligible month k0 in 1..3). Computed once per process
    and population (~1 s for the business population)."""
    with _GRIDS_LOCK:
        return _truth_grids(population)


@lru_cache(maxsize=4)
def _truth_grids(population: Population) -> tuple[_Grid, _Grid, _Grid]:
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


#: Cells of one grid in ``_Grid.quads``.
_QUAD_CELLS = (_S_GRID.size - 1) * (_N_D - 1)


def _s_place(s: Array) -> tuple[Array, Array]:
    """The row of static log-odds ``s`` in ``_S_GRID`` (in 0 .. nS - 2) and the weight of the
    next row."""
    fs = np.clip((s - _S_GRID[0]) / (_S_GRID[1] - _S_GRID[0]), 0.0, _S_GRID.size - 1.001)
    i = fs.astype(np.int32)
    return i, fs - i


def _bilinear(grid: _Grid, cell: Array, a: Array, b: Array) -> Array:
    """Interpolate ``grid`` in the quad cells ``cell`` (``_QUAD_CELLS`` per grid, then
    ``(nD - 1)`` per S row) with weights ``a`` (next S row) and ``b`` (next D column)."""
    q = np.take(grid.quads, cell).view(grid.values.dtype).reshape(*cell.shape, 4)
    low = q[..., 0] + (q[..., 1] - q[..., 0]) * b
    high = q[..., 2] + (q[..., 3] - q[..., 2]) * b
    high -= low
    high *= a
    high += low
    out: Array = high
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
    population's own segment index; ``s_prod`` and ``held_hist`` cover its products. Both
    tables hold one Arrow chunk per block of clients (``_BLOCK_CLIENTS``)."""
    history = _History(status_hist == 1, held_hist, seg, founded_abs, s_def, s_prod, Y)
    n = status_hist.shape[1]
    pd_parts: list[tuple[Array, Array, Array]] = []
    cross_parts: list[tuple[Array, Array, Array, Array]] = []
    for lo in range(0, n, _BLOCK_CLIENTS):
        pd_part, cross_part = _block(
            population, bank.start_abs, history, lo, min(n, lo + _BLOCK_CLIENTS)
        )
        pd_parts.append(pd_part)
        cross_parts.append(cross_part)
    days = bank.month_days
    pd_table = pa.table(
        {
            "client_id": pa.chunked_array([coded(c, ids) for c, _, _ in pd_parts]),
            "month": pa.chunked_array([dates(days[m]) for _, m, _ in pd_parts]),
            "pd_12m": pa.chunked_array([pa.array(p, type=pa.float64()) for _, _, p in pd_parts]),
        }
    )
    codes = pa.array(population.codes)
    cross_table = pa.table(
        {
            "client_id": pa.chunked_array([coded(part[0], ids) for part in cross_parts]),
            "month": pa.chunked_array([dates(days[part[1]]) for part in cross_parts]),
            "product_code": pa.chunked_array([coded(part[2], codes) for part in cross_parts]),
            "p_3m": pa.chunked_array([pa.array(p, type=pa.float32()) for *_, p in cross_parts]),
        }
    )
    return pd_table, cross_table


#: Clients whose truth is computed together: about a million (client, month, product) cells,
#: so that the dozen passes over them work in the processor's cache rather than through memory
#: (the chunk as a whole would be a dozen times that).
_BLOCK_CLIENTS = 2048


@dataclass(frozen=True)
class _History:
    """What the truth of a chunk's clients is computed from (see :func:`truth_tables`);
    histories month-major, as ``lifecycle.Life`` keeps them."""

    performing: Array  # (M, n)
    held_hist: Array  # (M, n, P)
    seg: Array
    founded_abs: Array
    s_def: Array
    s_prod: Array  # (n, P)
    Y: Array  # (M, n, 4)


def _block(
    population: Population, start_abs: int, history: _History, lo: int, hi: int
) -> tuple[tuple[Array, Array, Array], tuple[Array, Array, Array, Array]]:
    """The truth rows of clients ``lo`` to ``hi - 1``, in client, month (and product) order:
    (client, month, pd_12m) and (client, month, product, p_3m), clients as their row in the
    chunk. Computed densely over the block's (client, month[, product]) cells, by bilinear
    interpolation in the grids of the client's segment (and product and first eligible month),
    and kept where the truth is defined."""
    pd_grid, pd2_grid, grid = truth_grids(population)
    P, M = population.n_products, history.performing.shape[0]
    block = slice(lo, hi)
    seg = history.seg[block]
    # the block's histories by client, then month (views)
    performing = history.performing[:, block].T
    held = history.held_hist[:, block].transpose(1, 0, 2)
    Y = history.Y[:, block].transpose(1, 0, 2)

    # credit: one place in the default grids per client-month serves pd_12m and survival
    i, a = _s_place(history.s_def[block])
    fd = np.clip(
        (-DEFAULT_SLOPE * Y[:, :, 0] - pd_grid.d0[0]) / pd_grid.dd[0],
        0.0,
        _N_D - 1.001,
    )
    j = fd.astype(np.int32)
    fd -= j
    cell = (seg * _QUAD_CELLS + i * (_N_D - 1)).astype(np.int32)[:, None] + j
    pd12 = _bilinear(pd_grid, cell, a[:, None], fd)
    # Adoption stops while in default: the chance to still be performing in the middle of the
    # 3-month window (2 months) multiplies the adoption probability (docs: why this is close).
    survive = (1.0 - _bilinear(pd2_grid, cell, a[:, None], fd)).astype(np.float32)
    rows = np.flatnonzero(performing).astype(np.int32)
    client = rows // np.int32(M)
    credit = (
        client + np.int32(lo),
        rows - client * np.int32(M),
        np.clip(pd12.reshape(-1)[rows], 0.0, 1.0),
    )

    # cross-sell: months until the product's minimum age is reached, counted from t + 1
    age = (start_abs - history.founded_abs[block, None] + np.arange(M)[None, :]).astype(np.int16)
    wait = population.min_age.astype(np.int16)[None, None, :] - age[:, :, None]
    wait -= 1
    np.clip(wait, 0, CROSS_SELL_HORIZON, out=wait)
    keep = wait < CROSS_SELL_HORIZON
    keep &= performing[:, :, None]
    keep &= ~held
    keep &= population.seg_eligible[seg][:, None, :]

    i, a = _s_place(history.s_prod[block])  # (b, P)
    first = (seg[:, None] * P + np.arange(P)[None, :]) * (CROSS_SELL_HORIZON * _QUAD_CELLS)
    first = (first + i * (_N_D - 1)).astype(np.int32)
    # dynamic log-odds in D-grid steps: one product of the latent state with the loadings
    inv_dd = (1.0 / grid.dd).astype(np.float32)
    weights = (population.lat_w * inv_dd[None, :]).astype(np.float32)
    fd = np.ascontiguousarray((history.Y[:, block] @ weights).transpose(1, 0, 2))
    fd -= (grid.d0 * inv_dd).astype(np.float32)
    np.clip(fd, 0.0, _N_D - 1.001, out=fd)
    j = fd.astype(np.int32)
    fd -= j  # the weight between D-grid points j and j + 1
    # (a cell whose product opens too late reads the last grid instead; it is not kept)
    cell = np.minimum(wait, CROSS_SELL_HORIZON - 1).astype(np.int32)
    cell *= np.int32(_QUAD_CELLS)
    cell += first[:, None, :]
    cell += j
    p3 = _bilinear(grid, cell, a.astype(np.float32)[:, None, :], fd)
    p3 *= survive[:, :, None]
    np.clip(p3, 0.0, 1.0, out=p3)
    rows = np.flatnonzero(keep).astype(np.int32)
    product = rows % np.int32(P)
    client_month = rows // np.int32(P)
    client = client_month // np.int32(M)
    month = client_month - client * np.int32(M)
    client += np.int32(lo)
    return credit, (client, month, product, p3.reshape(-1)[rows])
