"""The synthetic bank: a seeded generator of every contract table plus the ground truth.

This module owns the generative process documented in ``docs/synthetic-bank.md``: latent firm
health and needs, the account history they show through, defaults, product adoption, and the
exact probabilities behind them (``truth/credit_pd`` and ``truth/cross_sell``). Output is streamed
chunk by chunk of clients into one Parquet file per table, so a million clients fit in bounded
memory; a writer thread encodes chunk k while chunk k + 1 is being simulated.

Determinism: every random draw comes from ``np.random.SeedSequence(seed, spawn_key=...)`` with a
fixed key per purpose (common factors, client frame, RMs, chunk k). Same arguments (including
``chunk_clients``) give byte-identical files.
"""

from __future__ import annotations

import math
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from rmreco.data.synthetic_catalog import CATALOG, PRODUCT_CODES
from rmreco.domain.contract import (
    ACCOUNT_MONTHS,
    CLIENTS,
    CREDIT_EVENTS,
    FINANCIALS,
    HOLDINGS,
    PRODUCTS,
    RELATIONSHIP_MANAGERS,
    TRUTH_CREDIT_PD,
    TRUTH_CROSS_SELL,
    TRUTH_DIR,
    EventType,
    ProductKind,
    RmRole,
    Segment,
)

Array = npt.NDArray[Any]

DEFAULT_CHUNK_CLIENTS = 25_000
MIN_MONTHS = 13
CURRENCY = "EUR"

#: Truth file columns (not part of the contract: the truth is never an input table).
TRUTH_PD_COLUMNS = ("client_id", "month", "pd_12m")
TRUTH_CROSS_SELL_COLUMNS = ("client_id", "month", "product_code", "p_3m")
PD_HORIZON = 12
CROSS_SELL_HORIZON = 3

# ---------------------------------------------------------------------------------------------
# Parameters of the generative process (docs/synthetic-bank.md explains each one).
# ---------------------------------------------------------------------------------------------

SEGMENTS = (Segment.SME, Segment.CORPORATE)
CORPORATE_SHARE = 0.10
REGIONS = ("North", "South", "East", "West", "Capital")
REGION_WEIGHTS = (0.18, 0.20, 0.17, 0.15, 0.30)
BRM_PORTFOLIO = 170  # SMEs per business RM
CRM_PORTFOLIO = 40  # corporates per corporate RM

#: NACE sections used and, per section: SME weight, corporate weight, default log-odds shift,
#: seasonality amplitude, log transaction intensity, card-share logit, international orientation,
#: monthly salary, revenue per employee, assets / revenue, EBITDA margin.
SECTORS: dict[
    str, tuple[float, float, float, float, float, float, float, float, float, float, float]
] = {
    "A": (0.04, 0.03, 0.15, 0.25, 1.9, -3.0, -0.3, 2400.0, 180e3, 1.5, 0.12),
    "C": (0.11, 0.28, 0.00, 0.05, 2.1, -3.5, 0.6, 3400.0, 220e3, 0.9, 0.10),
    "F": (0.13, 0.09, 0.45, 0.15, 1.9, -3.5, -0.6, 3200.0, 160e3, 0.7, 0.07),
    "G": (0.20, 0.17, 0.10, 0.10, 3.3, -0.9, 0.3, 2600.0, 350e3, 0.5, 0.05),
    "H": (0.07, 0.09, 0.10, 0.05, 2.3, -2.5, 0.5, 3000.0, 200e3, 1.0, 0.09),
    "I": (0.09, 0.03, 0.35, 0.25, 3.7, -0.1, -0.5, 2200.0, 90e3, 1.1, 0.11),
    "J": (0.06, 0.10, -0.15, 0.03, 2.2, -2.2, 0.4, 4800.0, 200e3, 0.8, 0.15),
    "L": (0.05, 0.08, -0.15, 0.02, 1.9, -3.5, -0.8, 3500.0, 400e3, 4.0, 0.35),
    "M": (0.12, 0.06, -0.25, 0.05, 2.1, -2.6, 0.2, 4200.0, 150e3, 0.6, 0.14),
    "N": (0.07, 0.04, 0.20, 0.05, 2.2, -2.6, -0.2, 2600.0, 110e3, 0.6, 0.09),
    "Q": (0.06, 0.03, -0.45, 0.02, 2.9, -1.2, -1.0, 3600.0, 100e3, 0.9, 0.12),
}
SECTOR_CODES = tuple(SECTORS)
_SECTOR_TABLE = np.array(list(SECTORS.values()), dtype=np.float64)
(S_W_SME, S_W_CORP, S_RISK, S_SEASON, S_TX, S_CARD, S_INTL, S_SALARY, S_RPE, S_ASSETS, S_MARGIN) = (
    range(11)
)

# Latent dynamics: every dynamic factor is AR(1) with the same persistence, so any linear
# combination of them is again AR(1) and each hazard's truth is a two-dimensional function.
PHI = 0.95
SD_IDIO = 0.55  # firm-specific health deviation (stationary sd)
SD_SECTOR = 0.15  # sector health factor
SD_MACRO = 0.06  # common macro factor
SD_NEED = 1.0  # growth, international and cash-surplus drivers
SD_FIRM_HEALTH = 0.85  # firm mean health across firms
HEALTH_MEAN = (0.0, 0.45)  # sme, corporate
YOUNG_HEALTH_SHIFT = -0.4  # businesses under two years old at onboarding
YOUNG_MONTHS = 24

# Monthly default hazard: logit = intercept[segment] + sector shift - DEFAULT_SLOPE * health.
DEFAULT_INTERCEPT = (-7.1, -7.6)
DEFAULT_SLOPE = 1.7
RESTRUCTURING_INTERCEPT = -8.3
WRITE_OFF_SHARE = (0.6, 0.45)  # of defaults: written off (history ends) vs cured
INSOLVENCY_SHARE = 0.5  # of write-offs: an insolvency event during the workout
WORKOUT_MONTHS = (3, 9)  # months in default before write-off or cure (inclusive range)
ATTRITION = (0.0045, 0.0025)  # monthly probability a performing client leaves, by segment
ONBOARDING_RATE = 0.006  # new clients per month, as a share of the book at the start
INITIAL_YOUNG_SHARE = (0.10, 0.03)
LATE_YOUNG_SHARE = 0.35

# Grids of the exact truth (see _hazard_grid).
_S_GRID = np.linspace(-16.0, 2.0, 181)
_N_D = 97
_D_SPAN = 5.5  # D grid covers +- this many stationary sd
_N_QUAD = 12

# Streams of the seed sequence.
_STREAM_COMMON, _STREAM_CLIENTS, _STREAM_RMS, _STREAM_CHUNK = range(4)

_FIRST_NAMES = (
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Elena",
    "Felix",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Katrin",
    "Lukas",
    "Marta",
    "Nils",
    "Olga",
    "Paul",
    "Rosa",
    "Simon",
    "Tara",
    "Victor",
)
_LAST_NAMES = (
    "Keller",
    "Moreau",
    "Rossi",
    "Novak",
    "Jansen",
    "Berg",
    "Costa",
    "Weber",
    "Dubois",
    "Larsen",
    "Fischer",
    "Silva",
    "Horvat",
    "Meyer",
    "Nowak",
    "Vidal",
    "Brandt",
    "Laurent",
    "Ricci",
    "Olsen",
)

# Catalog arrays.
_P = len(CATALOG)
_PI = {code: i for i, code in enumerate(PRODUCT_CODES)}
_IS_FINANCING = np.array([p.kind == ProductKind.FINANCING for p in CATALOG])
_FACILITY = np.array([_PI["overdraft"], _PI["revolving_credit"]])
_IS_FACILITY = np.isin(np.arange(_P), _FACILITY)
_MIN_AGE = np.array([p.min_age_months or 0 for p in CATALOG], dtype=np.int64)
_CHURN = np.array([0.0 if p.tenors else p.churn for p in CATALOG])
_SEG_ELIGIBLE = np.array([[s.value in p.segments.split("|") for p in CATALOG] for s in SEGMENTS])
_LAT_W = np.array([p.latent for p in CATALOG], dtype=np.float64).T  # (4, P)
_STATIC_W = np.array([p.static for p in CATALOG], dtype=np.float64).T  # (5, P)
_INTERCEPT = np.array([p.intercept for p in CATALOG], dtype=np.float64).T  # (2, P)
_PREVALENCE = np.array([p.prevalence for p in CATALOG], dtype=np.float64).T  # (2, P)
_SECTOR_SHIFT = np.array([[p.sector.get(s, 0.0) for p in CATALOG] for s in SECTOR_CODES])
_OPEN_ENDED = np.iinfo(np.int64).max
#: Tenors of maturing products, padded with zeros; _N_TENORS[p] of them are real (1 when none).
_TENORS = np.array([list(p.tenors) + [0] * (5 - len(p.tenors)) for p in CATALOG], dtype=np.int64)
_N_TENORS = np.array([max(1, len(p.tenors)) for p in CATALOG])
#: Spell amount = turnover * (base + span * u): a credit limit up to limit_turnover_share of
#: turnover; a deposit or fund balance of 0.3 to 2 months of turnover; NaN (none) otherwise.
_IS_DEPOSIT = np.isin(PRODUCT_CODES, ("term_deposit", "investment_fund"))
_LIMIT_SHARE = np.array([p.limit_turnover_share or 0.0 for p in CATALOG])
_AMOUNT_BASE = np.where(_IS_FINANCING, 0.3 * _LIMIT_SHARE, np.where(_IS_DEPOSIT, 0.3 / 12, np.nan))
_AMOUNT_SPAN = np.where(_IS_FINANCING, 0.7 * _LIMIT_SHARE, np.where(_IS_DEPOSIT, 1.7 / 12, np.nan))


@dataclass(frozen=True)
class GenerationSummary:
    """What a generation wrote: the folder, rows per table (truth as ``truth/<name>``), time."""

    out_dir: Path
    rows: dict[str, int]
    seconds: float


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def generate_bank(
    out_dir: Path,
    *,
    n_clients: int,
    n_months: int,
    seed: int,
    start_month: date = date(2022, 1, 1),
    chunk_clients: int = DEFAULT_CHUNK_CLIENTS,
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
        on_progress: called after each chunk with the number of clients just finished.

    Raises:
        ValueError: an argument is out of range, or ``out_dir`` exists and is not an empty
            folder.
    """
    _check_arguments(n_clients, n_months, seed, start_month, chunk_clients)
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"output folder {out_dir} exists and is not empty; choose a new folder")
    parent = out_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=parent))
    try:
        os.chmod(tmp, 0o755)
        rows = _generate_into(
            tmp, n_clients, n_months, seed, start_month, chunk_clients, on_progress
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


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _sigmoid(x: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: Array) -> Array:
    return np.log(p / (1.0 - p))


def _month_days(abs_month: Array) -> Array:
    """Days since 1970-01-01 of the first day of absolute months (year * 12 + month - 1)."""
    months = np.asarray(abs_month, dtype=np.int64) - 1970 * 12
    return months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int32)


def _dates(days: Array) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32), type=pa.date32())


def _ints(values: Array, null: Array | None = None) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.int64), type=pa.int64(), mask=null)


def _floats(values: Array, null: Array | None = None) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.float64), type=pa.float64(), mask=null)


def _coded(codes: Array, dictionary: pa.Array) -> pa.Array:
    """A dictionary array: Parquet stores it as plain strings without hashing every row."""
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)), dictionary)


def _geometric(u: Array, mean: Array) -> Array:
    """Counts 0, 1, 2, ... with the given mean (geometric law), from uniforms ``u``."""
    q = mean / (1.0 + mean)
    return np.floor(np.log1p(-u) / np.log(q)).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Exact truth: survival recursions on a (static, dynamic) grid
# ---------------------------------------------------------------------------------------------


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
    hazard = _sigmoid(_S_GRID[:, None, None] + d_next[None, :, :])  # (nS, nD, Q)
    value = np.zeros((_S_GRID.size, _N_D))
    for is_eligible in reversed(eligible):
        later = value[:, i0] * (1.0 - frac) + value[:, i0 + 1] * frac
        h = hazard if is_eligible else 0.0
        value = ((h + (1.0 - h) * (1.0 - alpha) * later) * weights).sum(axis=2)
    return (1.0 - alpha) * value


def _health_sd() -> float:
    """Stationary sd of the health deviation y = idiosyncratic + sector + macro."""
    return math.sqrt(SD_IDIO**2 + SD_SECTOR**2 + SD_MACRO**2)


@lru_cache(maxsize=1)
def _truth_grids() -> tuple[_Grid, _Grid, _Grid]:
    """Grids of pd_12m and 2-month default probability (per segment) and of p_3m (per segment,
    product and first eligible month k0 in 1..3). Computed once per process (~1 s)."""
    sd_def = DEFAULT_SLOPE * _health_sd()
    pd12 = np.stack([_hazard_grid(a, sd_def, (True,) * PD_HORIZON) for a in ATTRITION])
    pd2 = np.stack([_hazard_grid(0.0, sd_def, (True, True)) for _ in ATTRITION])
    d_def = np.full(2, -_D_SPAN * sd_def)
    dd_def = np.full(2, 2 * _D_SPAN * sd_def / (_N_D - 1))
    sd_p = _product_sd()
    schedules = [
        tuple(k >= k0 for k in range(1, CROSS_SELL_HORIZON + 1))
        for k0 in range(1, CROSS_SELL_HORIZON + 1)
    ]
    cross = np.stack(
        [
            np.stack(
                [
                    np.stack([_hazard_grid(alpha, float(sd_p[p]), sch) for sch in schedules])
                    for p in range(_P)
                ]
            )
            for alpha in ATTRITION
        ]
    )  # (2, P, 3, nS, nD)
    return (
        _Grid(pd12.astype(np.float64), d_def, dd_def),
        _Grid(pd2.astype(np.float64), d_def, dd_def),
        _Grid(cross.astype(np.float32), -_D_SPAN * sd_p, 2 * _D_SPAN * sd_p / (_N_D - 1)),
    )


def _product_sd() -> Array:
    """Stationary sd of each product's dynamic log-odds D = w . (y, g, f, c)."""
    var = _LAT_W[0] ** 2 * _health_sd() ** 2 + (_LAT_W[1:] ** 2).sum(axis=0) * SD_NEED**2
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


# ---------------------------------------------------------------------------------------------
# Bank-wide frame: common factors, segments, regions, relationship managers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bank:
    seed: int
    n_clients: int
    n_months: int
    start_abs: int
    month_days: Array  # (M,) date32 days of each window month
    sector_factor: Array  # (n_sectors, M)
    macro_factor: Array  # (M,)
    segment: Array  # (n_clients,) 0 sme, 1 corporate
    region: Array  # (n_clients,)
    rm_index: Array  # (n_clients,) row in rm table
    rm_ids: pa.Array
    id_width: int


def _ar1_paths(rng: np.random.Generator, n: int, months: int, sd: float) -> Array:
    path = np.empty((n, months))
    path[:, 0] = rng.normal(0.0, sd, n)
    innov = sd * math.sqrt(1.0 - PHI**2)
    for m in range(1, months):
        path[:, m] = PHI * path[:, m - 1] + rng.normal(0.0, innov, n)
    return path


def _build_bank(
    n_clients: int, n_months: int, seed: int, start_month: date
) -> tuple[_Bank, pa.Table]:
    common = _rng(seed, _STREAM_COMMON)
    sector_factor = _ar1_paths(common, len(SECTOR_CODES), n_months, SD_SECTOR)
    macro_factor = _ar1_paths(common, 1, n_months, SD_MACRO)[0]

    frame = _rng(seed, _STREAM_CLIENTS)
    segment = (frame.random(n_clients) < CORPORATE_SHARE).astype(np.int64)
    region = np.searchsorted(np.cumsum(REGION_WEIGHTS), frame.random(n_clients) * 0.999999)

    rms = _rng(seed, _STREAM_RMS)
    rm_index = np.zeros(n_clients, dtype=np.int64)
    roles: list[str] = []
    rm_regions: list[int] = []
    teams: list[str] = []
    for seg, role, portfolio, label in (
        (0, RmRole.BRM, BRM_PORTFOLIO, "Business Banking"),
        (1, RmRole.CRM, CRM_PORTFOLIO, "Corporate Banking"),
    ):
        first_of_role = len(roles)
        for r in range(len(REGIONS)):
            members = np.flatnonzero((segment == seg) & (region == r))
            if members.size == 0:
                continue
            count = max(1, round(members.size / portfolio))
            base = len(roles)
            rm_index[members] = base + rms.integers(0, count, members.size)
            for k in range(count):
                roles.append(role.value)
                rm_regions.append(r)
                teams.append(f"{REGIONS[r]} {label} {k // 8 + 1}")
        if len(roles) == first_of_role:  # a tiny bank still has one RM of each role
            roles.append(role.value)
            rm_regions.append(0)
            teams.append(f"{REGIONS[0]} {label} 1")
    n_rm = len(roles)
    rm_width = max(4, len(str(n_rm)))
    rm_ids = pa.array([f"RM{i + 1:0{rm_width}d}" for i in range(n_rm)])
    first = rms.integers(0, len(_FIRST_NAMES), n_rm)
    last = rms.integers(0, len(_LAST_NAMES), n_rm)
    names = [f"{_FIRST_NAMES[a]} {_LAST_NAMES[b]}" for a, b in zip(first, last, strict=True)]
    rm_table = pa.table(
        {
            "rm_id": rm_ids,
            "name": pa.array(names),
            "role": pa.array(roles),
            "team": pa.array(teams),
            "region": pa.array([REGIONS[r] for r in rm_regions]),
        }
    )
    assert rm_table.column_names == list(RELATIONSHIP_MANAGERS.column_names)

    start_abs = start_month.year * 12 + start_month.month - 1
    bank = _Bank(
        seed=seed,
        n_clients=n_clients,
        n_months=n_months,
        start_abs=start_abs,
        month_days=_month_days(start_abs + np.arange(n_months)),
        sector_factor=sector_factor,
        macro_factor=macro_factor,
        segment=segment,
        region=region,
        rm_index=rm_index,
        rm_ids=rm_ids,
        id_width=max(7, len(str(n_clients))),
    )
    return bank, rm_table


def _products_table() -> pa.Table:
    def opt_float(values: list[float | None]) -> pa.Array:
        return pa.array(values, type=pa.float64())

    def opt_int(values: list[int | None]) -> pa.Array:
        return pa.array(values, type=pa.int64())

    table = pa.table(
        {
            "product_code": pa.array([p.code for p in CATALOG]),
            "name": pa.array([p.name for p in CATALOG]),
            "kind": pa.array([p.kind.value for p in CATALOG]),
            "segments": pa.array([p.segments for p in CATALOG]),
            "lgd": opt_float([p.lgd for p in CATALOG]),
            "margin_rate": opt_float([p.margin_rate for p in CATALOG]),
            "annual_fee": opt_float([p.annual_fee for p in CATALOG]),
            "min_age_months": opt_int([p.min_age_months for p in CATALOG]),
            "max_tenor_months": opt_int([p.max_tenor_months for p in CATALOG]),
            "limit_turnover_share": opt_float([p.limit_turnover_share for p in CATALOG]),
        }
    )
    assert table.column_names == list(PRODUCTS.column_names)
    return table


# ---------------------------------------------------------------------------------------------
# One chunk of clients
# ---------------------------------------------------------------------------------------------


@dataclass
class _Spells:
    """Closed and open holding spells collected during a chunk's simulation."""

    client: list[Array]
    product: list[Array]
    start: list[Array]
    end: list[Array]
    amount: list[Array]

    def add(self, client: Array, product: Array, start: Array, end: Array, amount: Array) -> None:
        self.client.append(client)
        self.product.append(product)
        self.start.append(start)
        self.end.append(end)
        self.amount.append(amount)


def _simulate_chunk(bank: _Bank, chunk: int, lo: int, hi: int) -> dict[str, pa.Table]:
    rng = _rng(bank.seed, _STREAM_CHUNK, chunk)
    n, M = hi - lo, bank.n_months
    seg = bank.segment[lo:hi]
    corp = seg == 1
    t = _SECTOR_TABLE

    # --- firmographics and static traits -------------------------------------------------
    weights = np.where(corp[:, None], t[:, S_W_CORP][None, :], t[:, S_W_SME][None, :])
    cum = np.cumsum(weights, axis=1)
    sector = (rng.random(n)[:, None] * cum[:, -1:] > cum).sum(axis=1)
    late_share = ONBOARDING_RATE * (M - 1) / (1.0 + ONBOARDING_RATE * (M - 1))
    late = rng.random(n) < late_share
    onboard = np.where(late, rng.integers(1, M, n), 0)
    young_share = np.where(late, LATE_YOUNG_SHARE, np.take(INITIAL_YOUNG_SHARE, seg))
    young = rng.random(n) < young_share
    old_age = np.exp(rng.normal(np.log(np.where(corp, 300.0, 110.0)), 0.6))
    age_at_onboard = np.where(
        young, rng.integers(0, YOUNG_MONTHS, n), np.clip(old_age, YOUNG_MONTHS, 900)
    ).astype(np.int64)
    onboard_abs = bank.start_abs + onboard
    founded_abs = onboard_abs - age_at_onboard
    rel_back = np.where(late, 0, np.floor(rng.random(n) * (np.minimum(age_at_onboard, 180) + 1)))
    rel_abs = onboard_abs - rel_back.astype(np.int64)

    log10_turnover = np.where(
        corp,
        np.clip(rng.normal(8.3, 0.4, n), math.log10(5e7), math.log10(2e9)),
        np.clip(rng.normal(6.1, 0.5, n) - 0.3 * young, 5.0, math.log10(5e7)),
    )
    turnover = np.round(10.0**log10_turnover, -3)
    employees = np.round(turnover / t[sector, S_RPE] * np.exp(rng.normal(0.0, 0.4, n)))
    mu = _firm_health(rng, seg, sector, young, late)
    size_z = np.where(corp, (log10_turnover - 8.3) / 0.4, (log10_turnover - 6.1) / 0.5)
    intl = t[sector, S_INTL] + 0.5 * corp + rng.normal(0.0, 1.0, n)
    cash_rich = rng.normal(0.0, 1.0, n)
    card_logit = t[sector, S_CARD] + rng.normal(0.0, 0.7, n)
    card_z = (card_logit + 2.3) / 1.4
    staff_z = np.where(corp, (np.log1p(employees) - 6.8) / 0.8, (np.log1p(employees) - 2.0) / 1.2)
    statics = np.column_stack([size_z, intl, cash_rich, card_z, staff_z])
    wallet = rng.beta(5.0, 2.0, n)  # share of the firm's flows that run through this bank
    level_noise = rng.normal(0.0, 0.15, n)
    payroll_visible = rng.uniform(0.1, 0.6, n)
    alpha = np.take(ATTRITION, seg)

    s_def = np.take(DEFAULT_INTERCEPT, seg) + t[sector, S_RISK] - DEFAULT_SLOPE * mu
    s_prod = (
        _INTERCEPT[seg]
        + _SECTOR_SHIFT[sector]
        + statics @ _STATIC_W
        + mu[:, None] * _LAT_W[0][None, :]
    )
    s_initial = _logit(_PREVALENCE[seg]) + 0.7 * (s_prod - _INTERCEPT[seg])

    # --- monthly simulation ----------------------------------------------------------------
    Y = np.empty((n, M, 4), dtype=np.float32)  # health deviation y, growth g, intl f, cash c
    x = rng.normal(0.0, SD_IDIO, n)
    needs = rng.normal(0.0, SD_NEED, (n, 3))
    innov_idio = SD_IDIO * math.sqrt(1 - PHI**2)
    innov_need = SD_NEED * math.sqrt(1 - PHI**2)

    status = np.zeros(n, dtype=np.int8)  # 0 not yet a client, 1 performing, 2 default, 3 gone
    status_hist = np.zeros((n, M), dtype=np.int8)
    since_default = np.full((n, M), -1, dtype=np.int16)
    default_month = np.full(n, -1, dtype=np.int64)
    workout_end = np.full(n, -1, dtype=np.int64)
    is_write_off = np.zeros(n, dtype=bool)
    insolvency_month = np.full(n, -1, dtype=np.int64)
    held = np.zeros((n, _P), dtype=bool)
    held_hist = np.zeros((n, M, _P), dtype=bool)
    spell_start = np.zeros((n, _P), dtype=np.int64)
    planned_end = np.full((n, _P), _OPEN_ENDED, dtype=np.int64)
    amount = np.full((n, _P), np.nan)
    facility_limit = np.zeros((n, M))
    spells = _Spells([], [], [], [], [])
    ev_client: list[Array] = []
    ev_month: list[Array] = []
    ev_type: list[Array] = []
    event_codes = {e: i for i, e in enumerate(EventType)}

    def open_spells(mask: Array, start: Array | int) -> None:
        ci, pi = np.nonzero(mask)
        starts = start[ci, pi] if isinstance(start, np.ndarray) else np.full(ci.size, start)
        held[ci, pi] = True
        spell_start[ci, pi] = starts
        tenor = _TENORS[pi, (rng.random(ci.size) * _N_TENORS[pi]).astype(np.int64)]
        planned_end[ci, pi] = np.where(tenor > 0, starts + tenor - 1, _OPEN_ENDED)
        share = _AMOUNT_BASE[pi] + _AMOUNT_SPAN[pi] * rng.random(ci.size)
        amount[ci, pi] = np.round(turnover[ci] * share, -3)

    def close_spells(mask: Array, month: int) -> None:
        ci, pi = np.nonzero(mask)
        spells.add(ci, pi, spell_start[ci, pi], np.full(ci.size, month), amount[ci, pi])
        held[mask] = False
        planned_end[mask] = _OPEN_ENDED

    def emit(mask: Array, month: int, event: EventType) -> None:
        ci = np.flatnonzero(mask)
        ev_client.append(ci)
        ev_month.append(np.full(ci.size, month))
        ev_type.append(np.full(ci.size, event_codes[event]))

    for m in range(M):
        if m > 0:
            x = PHI * x + rng.normal(0.0, innov_idio, n)
            needs = PHI * needs + rng.normal(0.0, innov_need, (n, 3))
        y = x + bank.sector_factor[sector, m] + bank.macro_factor[m]
        Y[:, m, 0] = y
        Y[:, m, 1:] = needs
        age = bank.start_abs + m - founded_abs

        new = onboard == m
        if new.any():
            status[new] = 1
            _initial_holdings(
                rng, new, m, s_initial + Y[:, m] @ _LAT_W, seg, age, rel_back, open_spells
            )

        performing = status == 1
        defaulted = performing & (rng.random(n) < _sigmoid(s_def - DEFAULT_SLOPE * y))
        if defaulted.any():
            k = int(defaulted.sum())
            status[defaulted] = 2
            default_month[defaulted] = m
            workout_end[defaulted] = m + rng.integers(WORKOUT_MONTHS[0], WORKOUT_MONTHS[1] + 1, k)
            is_write_off[defaulted] = rng.random(k) < np.take(WRITE_OFF_SHARE, seg[defaulted])
            insolvent = is_write_off[defaulted] & (rng.random(k) < INSOLVENCY_SHARE)
            ins = m + 1 + np.floor(rng.random(k) * (workout_end[defaulted] - m)).astype(np.int64)
            insolvency_month[defaulted] = np.where(insolvent, ins, -1)
            emit(defaulted, m, EventType.DEFAULT)
        ok = performing & ~defaulted
        has_financing = held[:, _IS_FINANCING].any(axis=1)
        restructured = (
            ok
            & has_financing
            & (rng.random(n) < _sigmoid(RESTRUCTURING_INTERCEPT - DEFAULT_SLOPE * (mu + y)))
        )
        if restructured.any():
            emit(restructured, m, EventType.RESTRUCTURING)

        eligible = ok[:, None] & ~held & _SEG_ELIGIBLE[seg] & (age[:, None] >= _MIN_AGE[None, :])
        # One uniform per client and product: it decides adoption where the product is not
        # held and closure where it is (disjoint cells, so draws stay independent).
        u = rng.random((n, _P), dtype=np.float32)
        adopt = eligible & (u < _sigmoid(s_prod + Y[:, m] @ _LAT_W))
        if adopt.any():
            open_spells(adopt, m)

        status_hist[:, m] = status
        in_default = status == 2
        since_default[in_default, m] = m - default_month[in_default]
        held_hist[:, m] = held
        facility_limit[:, m] = np.where(held[:, _FACILITY], amount[:, _FACILITY], 0.0).sum(axis=1)

        # End of month: maturities, closures, leavers, workouts.
        churn = held & (spell_start < m) & (u < _CHURN)
        close = held & ((planned_end == m) | churn | (defaulted[:, None] & _IS_FACILITY))
        leaving = ok & (rng.random(n) < alpha)
        ends = in_default & (workout_end == m)
        written_off = ends & is_write_off
        cured = ends & ~is_write_off
        if (insolvent_now := in_default & (insolvency_month == m)).any():
            emit(insolvent_now, m, EventType.INSOLVENCY)
        if written_off.any():
            emit(written_off, m, EventType.WRITE_OFF)
        close |= held & (leaving | written_off)[:, None]
        if close.any():
            close_spells(close, m)
        status[leaving | written_off] = 3
        status[cured] = 1

    ci, pi = np.nonzero(held)
    spells.add(ci, pi, spell_start[ci, pi], np.full(ci.size, -1), amount[ci, pi])

    # --- tables ----------------------------------------------------------------------------
    ids = pa.array([f"C{i + 1:0{bank.id_width}d}" for i in range(lo, hi)])
    present = (status_hist == 1) | (status_hist == 2)
    out: dict[str, pa.Table] = {}
    out[CLIENTS.name] = pa.table(
        {
            "client_id": ids,
            "segment": pa.array([s.value for s in SEGMENTS]).take(pa.array(seg)),
            "sector": pa.array(SECTOR_CODES).take(pa.array(sector)),
            "region": pa.array(REGIONS).take(pa.array(bank.region[lo:hi])),
            "founded": _dates(_month_days(founded_abs) + rng.integers(0, 28, n)),
            "employees": _ints(employees),
            "turnover": _floats(turnover),
            "rm_id": bank.rm_ids.take(pa.array(bank.rm_index[lo:hi])),
            "onboarded": _dates(_month_days(np.where(late, onboard_abs, rel_abs))),
            "currency": pa.array([CURRENCY] * n),
        }
    )
    observed = _account_months(
        rng,
        bank,
        ids,
        present,
        status_hist,
        since_default,
        Y,
        mu,
        sector,
        turnover,
        employees,
        wallet,
        level_noise,
        payroll_visible,
        cash_rich,
        intl,
        card_logit,
        held_hist,
        facility_limit,
    )
    out[ACCOUNT_MONTHS.name] = observed.table
    out[HOLDINGS.name] = _holdings_table(bank, ids, spells)
    out[CREDIT_EVENTS.name] = _events_table(bank, ids, ev_client, ev_month, ev_type)
    out[FINANCIALS.name] = _financials_table(
        rng, bank, ids, present, seg, sector, turnover, mu, Y, observed.log_level
    )
    pd_table, cross_table = _truth_tables(
        bank, ids, status_hist, held_hist, seg, founded_abs, s_def, s_prod, Y
    )
    out[f"{TRUTH_DIR}/{TRUTH_CREDIT_PD}"] = pd_table
    out[f"{TRUTH_DIR}/{TRUTH_CROSS_SELL}"] = cross_table
    return out


def _firm_health(
    rng: np.random.Generator, seg: Array, sector: Array, young: Array, late: Array
) -> Array:
    """Firm mean health. New clients come from the entry distribution; the book present at the
    start is the survivors' steady state: a firm is kept with probability
    alpha / (alpha + mean monthly default hazard), by rejection, so the default rate does not
    drift down as weak firms leave."""
    mean = np.take(HEALTH_MEAN, seg) + YOUNG_HEALTH_SHIFT * young
    mu = rng.normal(mean, SD_FIRM_HEALTH)
    alpha = np.take(ATTRITION, seg)
    static = np.take(DEFAULT_INTERCEPT, seg) + _SECTOR_TABLE[sector, S_RISK]
    spread = 0.5 * (DEFAULT_SLOPE * _health_sd()) ** 2
    pending = ~late
    for _ in range(50):
        hazard = _sigmoid(static - DEFAULT_SLOPE * mu + spread)
        pending &= rng.random(mu.size) >= alpha / (alpha + hazard)
        if not pending.any():
            break
        mu[pending] = rng.normal(mean[pending], SD_FIRM_HEALTH)
    return mu


def _initial_holdings(
    rng: np.random.Generator,
    new: Array,
    m: int,
    logits: Array,
    seg: Array,
    age: Array,
    rel_back: Array,
    open_spells: Callable[[Array, Array | int], None],
) -> None:
    """Products a client holds when its history starts. Clients present in the first month
    may hold them since before the window (since the relationship began, old enough for the
    product, and, for maturing products, not yet matured)."""
    hold = (
        new[:, None]
        & _SEG_ELIGIBLE[seg]
        & (age[:, None] >= _MIN_AGE[None, :])
        & (rng.random(logits.shape) < _sigmoid(logits))
    )
    if m > 0:
        open_spells(hold, m)
        return
    # A maturing product held at the start has less than its shortest tenor behind it.
    longest_back = np.array([min(p.tenors) - 1 if p.tenors else 10**6 for p in CATALOG])
    span = np.minimum(rel_back[:, None], age[:, None] - _MIN_AGE[None, :])
    span = np.minimum(span, longest_back[None, :])
    back = np.floor(rng.random(logits.shape) * (np.maximum(span, 0) + 1)).astype(np.int64)
    open_spells(hold, -back)


@dataclass(frozen=True)
class _Observed:
    table: pa.Table
    log_level: Array  # (n, M) log of the expected monthly inflow relative to declared turnover


def _account_months(
    rng: np.random.Generator,
    bank: _Bank,
    ids: pa.Array,
    present: Array,
    status_hist: Array,
    since_default: Array,
    Y: Array,
    mu: Array,
    sector: Array,
    turnover: Array,
    employees: Array,
    wallet: Array,
    level_noise: Array,
    payroll_visible: Array,
    cash_rich: Array,
    intl: Array,
    card_logit: Array,
    held_hist: Array,
    facility_limit: Array,
) -> _Observed:
    """The observable account history: latent state seen through the bank's accounts."""
    n, M = present.shape
    t = _SECTOR_TABLE
    f32 = np.float32
    y = Y[:, :, 0]
    h = mu[:, None] + y
    growth, intl_need, cash = Y[:, :, 1], Y[:, :, 2], Y[:, :, 3]
    in_default = status_hist == 2

    def noise(sd: float) -> Array:
        return rng.standard_normal((n, M), dtype=f32) * f32(sd)

    months_of_year = (bank.start_abs + np.arange(M)) % 12
    season = t[sector, S_SEASON][:, None] * np.sin(2 * np.pi * (months_of_year[None, :] - 3) / 12)
    log_level = np.cumsum(0.02 * growth, axis=1) + 0.15 * y
    expected = (turnover / 12.0 * wallet * np.exp(level_noise))[:, None] * np.exp(
        log_level + season
    )
    credit = expected * np.exp(noise(0.08)) * np.where(in_default, 0.6, 1.0)
    net_share = 0.02 + 0.035 * h + noise(0.04)
    debit = credit * np.maximum(1.0 - net_share, 0.0)

    liquidity = expected * np.exp(
        -0.2 + 0.45 * h + 0.45 * cash + 0.35 * cash_rich[:, None] + noise(0.25)
    )
    has_facility = facility_limit > 0
    od_drive = -1.0 - 1.5 * h + noise(0.7)
    od_share = _sigmoid(np.where(has_facility, od_drive, od_drive - 3.0))
    days = np.clip(np.round(31.0 * od_share - 4.0), 0, 31).astype(np.int64)
    days = np.where(in_default, np.maximum(days, 15), days)
    use_share = _sigmoid(0.2 - 1.2 * h + noise(0.5))
    peak = np.where(
        days > 0,
        np.where(has_facility, facility_limit * use_share, expected * 0.05 * use_share),
        0.0,
    )
    balance_avg = liquidity * (1.0 - days / 31.0) - 0.5 * peak * days / 31.0
    swing = expected * np.exp(-1.0 - 0.25 * h + noise(0.3))
    balance_max = balance_avg + 0.6 * swing
    balance_min = np.where(days > 0, -peak, np.maximum(balance_avg - 0.7 * swing, 0.0))

    n_credit = np.round(
        np.exp(
            t[sector, S_TX][:, None]
            + 0.35 * card_logit[:, None]
            + 0.45 * np.log1p(credit / 1e4)
            + noise(0.15)
        )
    )
    n_debit = np.round(
        np.exp(2.2 + 0.4 * np.log1p(debit / 1e4) + 0.1 * np.log1p(employees)[:, None] + noise(0.15))
    )
    returned = _geometric(
        rng.random((n, M), dtype=f32), np.exp(-3.2 - 1.0 * h) * np.where(in_default, 4.0, 1.0)
    )
    has_credit = held_hist[:, :, _IS_FINANCING].any(axis=2)
    late_payer = has_credit & (rng.random((n, M), dtype=f32) < _sigmoid(-3.6 - 1.4 * h))
    arrears = 1 + _geometric(rng.random((n, M), dtype=f32), 8.0 * np.exp(-0.4 * h))
    dpd = np.where(late_payer, np.minimum(arrears, 89), 0)
    dpd = np.where(
        in_default, 90 + 30 * since_default.astype(np.int64) + rng.integers(0, 30, (n, M)), dpd
    )

    intl_pay = (credit + debit) * _sigmoid(-3.0 + intl[:, None] + 0.8 * intl_need + noise(0.3))
    has_payroll = held_hist[:, :, _PI["payroll"]]
    payroll = (
        (employees * t[sector, S_SALARY])[:, None]
        * np.exp(noise(0.05))
        * np.where(has_payroll, 1.0, payroll_visible[:, None])
        * np.where(in_default, 0.8, 1.0)
    )
    card_spend = np.where(
        held_hist[:, :, _PI["business_card"]], credit * np.exp(-5.0 + noise(0.3)), 0.0
    )
    acquiring = np.where(
        held_hist[:, :, _PI["card_acquiring"]],
        credit * _sigmoid(card_logit)[:, None] * np.exp(noise(0.1)),
        0.0,
    )

    # A few missing values, as real extracts have: one uniform decides which column is empty.
    gap = rng.random((n, M), dtype=f32)
    rows = np.nonzero(present)  # C order: sorted by client, then month
    ci, mi = rows

    def col(a: Array) -> Array:
        out: Array = a[rows]
        return out

    g = col(gap)
    table = pa.table(
        {
            "client_id": _coded(ci, ids),
            "month": _dates(bank.month_days[mi]),
            "balance_avg": _floats(np.round(col(balance_avg), 2)),
            "balance_min": _floats(np.round(col(balance_min), 2), g < 0.004),
            "balance_max": _floats(np.round(col(balance_max), 2), g < 0.004),
            "credit_turnover": _floats(np.round(col(credit), 2)),
            "debit_turnover": _floats(np.round(col(debit), 2)),
            "n_credit_tx": _ints(col(n_credit), (g >= 0.004) & (g < 0.014)),
            "n_debit_tx": _ints(col(n_debit), (g >= 0.014) & (g < 0.022)),
            "overdraft_limit": _floats(col(facility_limit)),
            "overdraft_peak_use": _floats(np.round(col(peak), 2)),
            "days_in_overdraft": _ints(col(days)),
            "dpd_max": _ints(col(dpd)),
            "returned_payments": _ints(col(returned), (g >= 0.022) & (g < 0.025)),
            "intl_payments": _floats(np.round(col(intl_pay), 2), (g >= 0.025) & (g < 0.030)),
            "payroll_outflow": _floats(np.round(col(payroll), 2)),
            "card_spend": _floats(np.round(col(card_spend), 2)),
            "acquiring_inflow": _floats(np.round(col(acquiring), 2)),
        }
    )
    assert table.column_names == list(ACCOUNT_MONTHS.column_names)
    return _Observed(table, log_level)


def _holdings_table(bank: _Bank, ids: pa.Array, spells: _Spells) -> pa.Table:
    client = np.concatenate(spells.client)
    product = np.concatenate(spells.product)
    start = np.concatenate(spells.start)
    end = np.concatenate(spells.end)
    amount = np.concatenate(spells.amount)
    order = np.lexsort((start, product, client))
    client, product, start, end, amount = (a[order] for a in (client, product, start, end, amount))
    table = pa.table(
        {
            "client_id": _coded(client, ids),
            "product_code": _coded(product, pa.array(PRODUCT_CODES)),
            "start_month": _dates(_month_days(bank.start_abs + start)),
            "end_month": pa.array(
                _month_days(bank.start_abs + np.maximum(end, 0)), type=pa.date32(), mask=end < 0
            ),
            "amount": _floats(amount, np.isnan(amount)),
        }
    )
    assert table.column_names == list(HOLDINGS.column_names)
    return table


def _events_table(
    bank: _Bank, ids: pa.Array, client: list[Array], month: list[Array], event: list[Array]
) -> pa.Table:
    c = np.concatenate(client) if client else np.zeros(0, dtype=np.int64)
    m = np.concatenate(month) if month else np.zeros(0, dtype=np.int64)
    e = np.concatenate(event) if event else np.zeros(0, dtype=np.int64)
    order = np.lexsort((e, m, c))
    table = pa.table(
        {
            "client_id": _coded(c[order], ids),
            "month": _dates(bank.month_days[m[order]]),
            "event_type": _coded(e[order], pa.array([ev.value for ev in EventType])),
        }
    )
    assert table.column_names == list(CREDIT_EVENTS.column_names)
    return table


def _financials_table(
    rng: np.random.Generator,
    bank: _Bank,
    ids: pa.Array,
    present: Array,
    seg: Array,
    sector: Array,
    turnover: Array,
    mu: Array,
    Y: Array,
    log_level: Array,
) -> pa.Table:
    """Annual statements for each calendar year whose December the client is present in."""
    n, M = present.shape
    t = _SECTOR_TABLE
    files = rng.random(n) < np.where(seg == 1, 0.92, 0.67)
    parts: list[dict[str, Array]] = []
    first_year = bank.start_abs // 12
    for year in range(first_year, (bank.start_abs + M - 1) // 12 + 1):
        dec = year * 12 + 11 - bank.start_abs
        if dec < 0 or dec >= M:
            continue
        months = slice(max(0, dec - 11), dec + 1)
        rows = np.flatnonzero(files & present[:, dec])
        k = rows.size
        h_year = mu[rows] + Y[rows, months, 0].mean(axis=1)
        revenue = turnover[rows] * np.exp(
            log_level[rows, months].mean(axis=1) + rng.normal(0.0, 0.05, k)
        )
        margin = t[sector[rows], S_MARGIN] + 0.05 * h_year + rng.normal(0.0, 0.02, k)
        assets = revenue * t[sector[rows], S_ASSETS] * np.exp(rng.normal(0.0, 0.2, k))
        leverage = _sigmoid(-0.6 - 0.7 * h_year + rng.normal(0.0, 0.3, k))
        debt = assets * leverage * 0.9
        equity = assets - debt - 0.25 * assets
        current_assets = assets * _sigmoid(rng.normal(-0.2, 0.3, k))
        current_liabilities = current_assets / np.exp(
            0.25 + 0.35 * h_year + rng.normal(0.0, 0.2, k)
        )
        parts.append(
            {
                "client": rows,
                "year": np.full(k, year),
                "revenue": revenue,
                "ebitda": revenue * margin,
                "total_assets": assets,
                "total_debt": debt,
                "equity": equity,
                "current_assets": current_assets,
                "current_liabilities": current_liabilities,
            }
        )
    cols = {
        key: (np.concatenate([p[key] for p in parts]) if parts else np.zeros(0))
        for key in (
            "client",
            "year",
            "revenue",
            "ebitda",
            "total_assets",
            "total_debt",
            "equity",
            "current_assets",
            "current_liabilities",
        )
    }
    order = np.lexsort((cols["year"], cols["client"]))
    table = pa.table(
        {
            "client_id": _coded(cols["client"][order], ids),
            "year": _ints(cols["year"][order]),
            **{
                name: _floats(np.round(cols[name][order], 0))
                for name in FINANCIALS.column_names[2:]
            },
        }
    )
    assert table.column_names == list(FINANCIALS.column_names)
    return table


def _truth_tables(
    bank: _Bank,
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
    product the client may take (segment, age by t+3) and does not hold at t."""
    pd_grid, pd2_grid, cross_grid = _truth_grids()
    M = status_hist.shape[1]
    n_cells = _S_GRID.size * _N_D
    performing = status_hist == 1
    d_def = (-DEFAULT_SLOPE * Y[:, :, 0]).astype(np.float64)
    offset = (seg * n_cells)[:, None]
    pd12 = _interpolate(pd_grid.values, offset, s_def[:, None], d_def, pd_grid.d0[0], pd_grid.dd[0])
    ci, mi = np.nonzero(performing)
    pd_table = pa.table(
        {
            "client_id": _coded(ci, ids),
            "month": _dates(bank.month_days[mi]),
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
    wait = np.clip(_MIN_AGE.astype(np.int16)[None, None, :] - age[:, :, None] - 1, 0, 3)
    mask = (
        performing[:, :, None]
        & ~held_hist
        & _SEG_ELIGIBLE[seg][:, None, :]
        & (wait < CROSS_SELL_HORIZON)
    )
    fs = np.clip((s_prod - _S_GRID[0]) / (_S_GRID[1] - _S_GRID[0]), 0.0, _S_GRID.size - 1.001)
    i = fs.astype(np.int32)
    a = np.broadcast_to((fs - i).astype(np.float32)[:, None, :], mask.shape)[mask]
    grid = (seg[:, None] * _P + np.arange(_P)[None, :]) * CROSS_SELL_HORIZON
    base_cp = (grid * n_cells + i * _N_D).astype(np.int32)  # (n, P)
    inv_dd = (1.0 / cross_grid.dd).astype(np.float32)
    fd = Y @ (_LAT_W * inv_dd[None, :]).astype(np.float32)  # (n, M, P), in D-grid steps
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
    pi = np.broadcast_to(np.arange(_P, dtype=np.int32), mask.shape)[mask]
    cross_table = pa.table(
        {
            "client_id": _coded(ci, ids),
            "month": _dates(bank.month_days[mi]),
            "product_code": _coded(pi, pa.array(PRODUCT_CODES)),
            "p_3m": pa.array(np.clip(p3, 0.0, 1.0), type=pa.float32()),
        }
    )
    return pd_table, cross_table


# ---------------------------------------------------------------------------------------------
# Orchestration and writing
# ---------------------------------------------------------------------------------------------

_WRITE_OPTIONS: dict[str, Any] = {
    "compression": "snappy",
    "store_schema": False,  # columns come back as plain strings, not dictionaries
}


class _Writers:
    """One ParquetWriter per table, fed by a background thread so encoding overlaps the
    simulation of the next chunk (numpy and Parquet both release the GIL)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {}
        self.queue: queue.Queue[dict[str, pa.Table] | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="rmreco-writer", daemon=True)
        self.thread.start()

    def _open(self, name: str, schema: pa.Schema) -> pq.ParquetWriter:
        path = self.root / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        dictionary_columns = [f.name for f in schema if not pa.types.is_floating(f.type)]
        return pq.ParquetWriter(path, schema, use_dictionary=dictionary_columns, **_WRITE_OPTIONS)

    def write_now(self, tables: dict[str, pa.Table]) -> None:
        for name, table in tables.items():
            if name not in self.writers:
                self.writers[name] = self._open(name, table.schema)
                self.rows[name] = 0
            self.writers[name].write_table(table)
            self.rows[name] += table.num_rows

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.write_now(item)
                except BaseException as exc:  # handed to the main thread
                    self.error = exc

    def put(self, tables: dict[str, pa.Table]) -> None:
        self._raise_if_failed()
        self.queue.put(tables)

    def close(self) -> dict[str, int]:
        self.queue.put(None)
        self.thread.join()
        for writer in self.writers.values():
            writer.close()
        self._raise_if_failed()
        return dict(self.rows)

    def abort(self) -> None:
        self.queue.put(None)
        self.thread.join()
        for writer in self.writers.values():
            writer.close()

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error


def _generate_into(
    root: Path,
    n_clients: int,
    n_months: int,
    seed: int,
    start_month: date,
    chunk_clients: int,
    on_progress: Callable[[int], None] | None,
) -> dict[str, int]:
    _truth_grids()
    bank, rm_table = _build_bank(n_clients, n_months, seed, start_month)
    writers = _Writers(root)
    try:
        writers.put({RELATIONSHIP_MANAGERS.name: rm_table, PRODUCTS.name: _products_table()})
        for chunk, lo in enumerate(range(0, n_clients, chunk_clients)):
            hi = min(n_clients, lo + chunk_clients)
            writers.put(_simulate_chunk(bank, chunk, lo, hi))
            if on_progress is not None:
                on_progress(hi - lo)
    except BaseException:
        writers.abort()
        raise
    return writers.close()
