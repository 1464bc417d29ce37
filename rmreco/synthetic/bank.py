"""This module owns the bank-wide frame of the synthetic bank: the common sector and macro
factors, each client's segment and region, the relationship managers and their portfolios,
and the product catalog table (the business products, and the personal ones when the bank has
personal clients).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa

from rmreco.domain.contract import PRODUCTS, RELATIONSHIP_MANAGERS, RmRole
from rmreco.synthetic.arrays import Array, month_days, spawn_rng
from rmreco.synthetic.catalog import BUSINESS_CATALOG, CATALOG, ProductSpec
from rmreco.synthetic.parameters import (
    BRM_PORTFOLIO,
    CORPORATE,
    CORPORATE_SHARE,
    CRM_PORTFOLIO,
    PERSONAL,
    PERSONAL_SHARE,
    PHI,
    PRM_PORTFOLIO,
    REGION_WEIGHTS,
    REGIONS,
    SD_MACRO,
    SD_SECTOR,
    SECTOR_CODES,
    SME,
    STREAM_CLIENTS,
    STREAM_COMMON,
    STREAM_RMS,
)

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


@dataclass(frozen=True)
class Statements:
    """What the firms' annual statements hold. The defaults are the bank as it always was: about
    nine in ten corporates and two in three SMEs file, with the contract's seven fields."""

    #: Every firm present at a year end files that year's statement (a statements-only book).
    every_firm_files: bool = False
    #: The statements carry the bank's 40 extra ratio columns (``rmreco.synthetic.ratios``).
    with_ratios: bool = False


@dataclass(frozen=True)
class Bank:
    """What every chunk of clients shares: the window, the common factors, each client's
    segment, region and RM, and the catalog the bank offers."""

    seed: int
    n_clients: int
    n_months: int
    start_abs: int
    month_days: Array  # (M,) date32 days of each window month
    sector_factor: Array  # (n_sectors, M)
    macro_factor: Array  # (M,)
    segment: Array  # (n_clients,) 0 sme, 1 corporate, 2 personal (parameters.SEGMENTS)
    region: Array  # (n_clients,)
    rm_index: Array  # (n_clients,) row in rm table
    rm_ids: pa.Array
    id_width: int
    #: the products the bank offers, in the order of the products table
    catalog: tuple[ProductSpec, ...]
    #: who files annual statements and what they hold
    statements: Statements = Statements()

    @property
    def product_codes(self) -> tuple[str, ...]:
        return tuple(p.code for p in self.catalog)


def _ar1_paths(rng: np.random.Generator, n: int, months: int, sd: float) -> Array:
    path = np.empty((n, months))
    path[:, 0] = rng.normal(0.0, sd, n)
    innov = sd * math.sqrt(1.0 - PHI**2)
    for m in range(1, months):
        path[:, m] = PHI * path[:, m - 1] + rng.normal(0.0, innov, n)
    return path


def build_bank(
    n_clients: int,
    n_months: int,
    seed: int,
    start_month: date,
    corporate_share: float = CORPORATE_SHARE,
    personal_share: float = PERSONAL_SHARE,
) -> tuple[Bank, pa.Table]:
    """The bank-wide frame and the ``relationship_managers`` table: RMs per segment and
    region, each with a portfolio of about BRM_PORTFOLIO SMEs, CRM_PORTFOLIO corporates or
    PRM_PORTFOLIO personal clients. A bank without personal clients (``personal_share`` 0)
    has no PRM and offers no personal product."""
    common = spawn_rng(seed, STREAM_COMMON)
    sector_factor = _ar1_paths(common, len(SECTOR_CODES), n_months, SD_SECTOR)
    macro_factor = _ar1_paths(common, 1, n_months, SD_MACRO)[0]

    frame = spawn_rng(seed, STREAM_CLIENTS)
    # one uniform decides the segment: corporate below corporate_share, personal in the next
    # personal_share, SME above
    draw = frame.random(n_clients)
    segment = (draw < corporate_share).astype(np.int64)
    has_personal = personal_share > 0
    if has_personal:
        personal = (draw >= corporate_share) & (draw < corporate_share + personal_share)
        segment[personal] = PERSONAL
    region = np.searchsorted(np.cumsum(REGION_WEIGHTS), frame.random(n_clients) * 0.999999)

    rms = spawn_rng(seed, STREAM_RMS)
    rm_index = np.zeros(n_clients, dtype=np.int64)
    roles: list[str] = []
    rm_regions: list[int] = []
    teams: list[str] = []
    books = [
        (SME, RmRole.BRM, BRM_PORTFOLIO, "Business Banking"),
        (CORPORATE, RmRole.CRM, CRM_PORTFOLIO, "Corporate Banking"),
    ]
    if has_personal:
        books.append((PERSONAL, RmRole.PRM, PRM_PORTFOLIO, "Personal Banking"))
    for seg, role, portfolio, label in books:
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
    bank = Bank(
        seed=seed,
        n_clients=n_clients,
        n_months=n_months,
        start_abs=start_abs,
        month_days=month_days(start_abs + np.arange(n_months)),
        sector_factor=sector_factor,
        macro_factor=macro_factor,
        segment=segment,
        region=region,
        rm_index=rm_index,
        rm_ids=rm_ids,
        id_width=max(7, len(str(n_clients))),
        catalog=CATALOG if has_personal else BUSINESS_CATALOG,
    )
    return bank, rm_table


def products_table(catalog: tuple[ProductSpec, ...]) -> pa.Table:
    """The ``products`` table: the contract columns of ``catalog``."""

    def opt_float(values: list[float | None]) -> pa.Array:
        return pa.array(values, type=pa.float64())

    def opt_int(values: list[int | None]) -> pa.Array:
        return pa.array(values, type=pa.int64())

    table = pa.table(
        {
            "product_code": pa.array([p.code for p in catalog]),
            "name": pa.array([p.name for p in catalog]),
            "kind": pa.array([p.kind.value for p in catalog]),
            "segments": pa.array([p.segments for p in catalog]),
            "lgd": opt_float([p.lgd for p in catalog]),
            "margin_rate": opt_float([p.margin_rate for p in catalog]),
            "annual_fee": opt_float([p.annual_fee for p in catalog]),
            "min_age_months": opt_int([p.min_age_months for p in catalog]),
            "max_tenor_months": opt_int([p.max_tenor_months for p in catalog]),
            "limit_turnover_share": opt_float([p.limit_turnover_share for p in catalog]),
        }
    )
    assert table.column_names == list(PRODUCTS.column_names)
    return table
