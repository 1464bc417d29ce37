"""This module owns the numbers of the synthetic bank's generative process: segments, regions
and sectors, the latent dynamics, the default and attrition hazards, the streams of the seed
sequence, and the two populations of clients (businesses and persons), each with its products
seen as arrays (one entry per product, in catalog order).

``docs/synthetic-bank.md`` explains each one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rmreco.domain.contract import ProductKind, Segment
from rmreco.synthetic.arrays import Array
from rmreco.synthetic.catalog import BUSINESS_CATALOG, PERSONAL_CATALOG, ProductSpec

#: Segments of the bank-wide client frame, by code (``Bank.segment``).
SEGMENTS = (Segment.SME, Segment.CORPORATE, Segment.PERSONAL)
SME, CORPORATE, PERSONAL = range(3)
CURRENCY = "EUR"  # of every client
CORPORATE_SHARE = 0.10
PERSONAL_SHARE = 0.0
REGIONS = ("North", "South", "East", "West", "Capital")
REGION_WEIGHTS = (0.18, 0.20, 0.17, 0.15, 0.30)
BRM_PORTFOLIO = 170  # SMEs per business RM
CRM_PORTFOLIO = 40  # corporates per corporate RM
PRM_PORTFOLIO = 250  # personal clients per personal RM

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
SECTOR_TABLE = np.array(list(SECTORS.values()), dtype=np.float64)
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

# Personal clients: age in years when their history starts (uniform), declared annual income
# (lognormal, rising with age up to 55), mean financial health (higher with income, lower under
# 25) and their default hazard (see the Population below).
PERSON_AGE_YEARS = (21, 80)
ADULT_AGE_YEARS = 18  # a relationship starts at 18 at the earliest
INCOME_LOG_MEAN = math.log(38_000.0)
INCOME_AGE_SLOPE = 0.012  # log income per year of age, up to INCOME_PEAK_AGE
INCOME_PEAK_AGE = 55
INCOME_LOG_SD = 0.45
INCOME_RANGE = (12_000.0, 400_000.0)
PERSON_HEALTH_MEAN = 0.3
PERSON_HEALTH_SD = 0.8
PERSON_HEALTH_INCOME = 0.25  # mean health per sd of log income
YOUNG_ADULT_YEARS = 25
YOUNG_ADULT_HEALTH_SHIFT = -0.2

# Streams of the seed sequence.
STREAM_COMMON, STREAM_CLIENTS, STREAM_RMS, STREAM_CHUNK, STREAM_PERSONAL_CHUNK = range(5)
#: The stream of the shapes a bank is rewritten into (``rmreco.synthetic.shapes``), keyed further
#: by shape: never drawn from when the bank is written as generated.
STREAM_SHAPES = 5
#: The stream of the clients' names (``rmreco.synthetic.names``), keyed further by chunk: names
#: draw nothing from the other streams, so every other column is what it was without them.
STREAM_NAMES = 6
OPEN_ENDED = np.iinfo(np.int64).max
#: Width of the tenor table (the most tenors a product draws from).
MAX_TENORS = 5


@dataclass(frozen=True, eq=False)
class Population:
    """One kind of client the generator simulates, and the products it can take.

    ``segments`` maps the population's own segment index (0, 1, ...) to contract segments;
    every per-segment tuple and the rows of ``intercept``, ``prevalence`` and ``seg_eligible``
    follow it. The product arrays have one entry per product of ``catalog``, in its order.
    Compared by identity: the truth grids are cached per population.
    """

    name: str
    segments: tuple[Segment, ...]
    catalog: tuple[ProductSpec, ...]
    #: monthly default log-odds of a client of average health (before sector), by segment
    default_intercept: tuple[float, ...]
    #: of defaults: written off (history ends) vs cured, by segment
    write_off_share: tuple[float, ...]
    #: monthly probability a performing client leaves, by segment
    attrition: tuple[float, ...]
    #: stationary sd of the client-specific health deviation
    sd_idio: float
    #: stationary sd of the sector health factor; 0 for a population without sectors
    sd_sector: float
    codes: tuple[str, ...] = field(init=False)
    n_products: int = field(init=False)
    index: dict[str, int] = field(init=False)
    is_financing: Array = field(init=False)
    #: products whose limit is the current account's overdraft limit
    facility: Array = field(init=False)
    #: credit lines cancelled when the client defaults
    cancelled_on_default: Array = field(init=False)
    min_age: Array = field(init=False)
    churn: Array = field(init=False)
    seg_eligible: Array = field(init=False)  # (segments, P)
    lat_w: Array = field(init=False)  # (4, P)
    static_w: Array = field(init=False)  # (5, P)
    intercept: Array = field(init=False)  # (segments, P)
    prevalence: Array = field(init=False)  # (segments, P)
    sector_shift: Array = field(init=False)  # (sectors, P)
    #: tenors of maturing products, padded with zeros; n_tenors[p] of them are real (1 if none)
    tenors: Array = field(init=False)
    n_tenors: Array = field(init=False)
    #: spell amount = size (turnover or income) * (base + span * u): a credit limit up to
    #: limit_turnover_share of it; a deposit or fund balance of balance_months of it; NaN
    #: (none) otherwise
    amount_base: Array = field(init=False)
    amount_span: Array = field(init=False)
    #: months a product held when the window starts may have been held: less than its
    #: shortest tenor (a maturing product), else without bound
    longest_back: Array = field(init=False)

    def __post_init__(self) -> None:
        catalog = self.catalog
        is_financing = np.array([p.kind == ProductKind.FINANCING for p in catalog])
        limit_share = np.array([p.limit_turnover_share or 0.0 for p in catalog])
        is_deposit = np.array([p.balance_months is not None for p in catalog])
        months = np.array([p.balance_months or (np.nan, np.nan) for p in catalog]).reshape(-1, 2)
        values: dict[str, object] = {
            "codes": tuple(p.code for p in catalog),
            "n_products": len(catalog),
            "index": {p.code: i for i, p in enumerate(catalog)},
            "is_financing": is_financing,
            "facility": np.flatnonzero([p.is_overdraft_facility for p in catalog]),
            "cancelled_on_default": np.array([p.is_cancelled_on_default for p in catalog]),
            "min_age": np.array([p.min_age_months or 0 for p in catalog], dtype=np.int64),
            "churn": np.array([0.0 if p.tenors else p.churn for p in catalog]),
            "seg_eligible": np.array(
                [[s.value in p.segments.split("|") for p in catalog] for s in self.segments]
            ),
            "lat_w": np.ascontiguousarray(
                np.array([p.latent for p in catalog], dtype=np.float64).T
            ),
            "static_w": np.ascontiguousarray(
                np.array([p.static for p in catalog], dtype=np.float64).T
            ),
            "intercept": np.ascontiguousarray(
                np.array([p.intercept for p in catalog], dtype=np.float64).T
            ),
            "prevalence": np.ascontiguousarray(
                np.array([p.prevalence for p in catalog], dtype=np.float64).T
            ),
            "sector_shift": np.array(
                [[p.sector.get(s, 0.0) for p in catalog] for s in SECTOR_CODES]
            ),
            "tenors": np.array(
                [list(p.tenors) + [0] * (MAX_TENORS - len(p.tenors)) for p in catalog],
                dtype=np.int64,
            ),
            "n_tenors": np.array([max(1, len(p.tenors)) for p in catalog]),
            "amount_base": np.where(
                is_financing, 0.3 * limit_share, np.where(is_deposit, months[:, 0] / 12, np.nan)
            ),
            "amount_span": np.where(
                is_financing, 0.7 * limit_share, np.where(is_deposit, months[:, 1] / 12, np.nan)
            ),
            "longest_back": np.array([min(p.tenors) - 1 if p.tenors else 10**6 for p in catalog]),
        }
        # (the transposed tables are stored C-contiguous: BLAS multiplies a transposed view
        # many times slower, and the month loop multiplies by lat_w every month)
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def health_sd(self) -> float:
        """Stationary sd of the health deviation y = idiosyncratic + sector + macro."""
        return math.sqrt(self.sd_idio**2 + self.sd_sector**2 + SD_MACRO**2)


#: SMEs (segment 0) and corporates (segment 1), and the business products.
BUSINESS = Population(
    name="business",
    segments=(Segment.SME, Segment.CORPORATE),
    catalog=BUSINESS_CATALOG,
    default_intercept=DEFAULT_INTERCEPT,
    write_off_share=WRITE_OFF_SHARE,
    attrition=ATTRITION,
    sd_idio=SD_IDIO,
    sd_sector=SD_SECTOR,
)
#: Personal clients and the personal products. Persons have no sector: their idiosyncratic
#: health deviation carries the sector factor's variance, so health has the same spread.
PERSONAL_POPULATION = Population(
    name="personal",
    segments=(Segment.PERSONAL,),
    catalog=PERSONAL_CATALOG,
    default_intercept=(-7.5,),
    write_off_share=(0.5,),
    attrition=(0.004,),
    sd_idio=math.sqrt(SD_IDIO**2 + SD_SECTOR**2),
    sd_sector=0.0,
)
