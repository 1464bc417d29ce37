"""This module owns the numbers of the synthetic bank's generative process: segments, regions
and sectors, the latent dynamics, the default and attrition hazards, the streams of the seed
sequence, and the catalog seen as arrays (one entry per product, in catalog order).

``docs/synthetic-bank.md`` explains each one.
"""

from __future__ import annotations

import numpy as np

from rmreco.domain.contract import ProductKind, Segment
from rmreco.synthetic.catalog import CATALOG, PRODUCT_CODES

SEGMENTS = (Segment.SME, Segment.CORPORATE)
CURRENCY = "EUR"  # of every client
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

# Streams of the seed sequence.
STREAM_COMMON, STREAM_CLIENTS, STREAM_RMS, STREAM_CHUNK = range(4)

# Catalog arrays.
N_PRODUCTS = len(CATALOG)
PRODUCT_INDEX = {code: i for i, code in enumerate(PRODUCT_CODES)}
IS_FINANCING = np.array([p.kind == ProductKind.FINANCING for p in CATALOG])
FACILITY = np.array([PRODUCT_INDEX["overdraft"], PRODUCT_INDEX["revolving_credit"]])
IS_FACILITY = np.isin(np.arange(N_PRODUCTS), FACILITY)
MIN_AGE = np.array([p.min_age_months or 0 for p in CATALOG], dtype=np.int64)
CHURN = np.array([0.0 if p.tenors else p.churn for p in CATALOG])
SEG_ELIGIBLE = np.array([[s.value in p.segments.split("|") for p in CATALOG] for s in SEGMENTS])
LAT_W = np.array([p.latent for p in CATALOG], dtype=np.float64).T  # (4, P)
STATIC_W = np.array([p.static for p in CATALOG], dtype=np.float64).T  # (5, P)
INTERCEPT = np.array([p.intercept for p in CATALOG], dtype=np.float64).T  # (2, P)
PREVALENCE = np.array([p.prevalence for p in CATALOG], dtype=np.float64).T  # (2, P)
SECTOR_SHIFT = np.array([[p.sector.get(s, 0.0) for p in CATALOG] for s in SECTOR_CODES])
OPEN_ENDED = np.iinfo(np.int64).max
#: Tenors of maturing products, padded with zeros; N_TENORS[p] of them are real (1 when none).
TENORS = np.array([list(p.tenors) + [0] * (5 - len(p.tenors)) for p in CATALOG], dtype=np.int64)
N_TENORS = np.array([max(1, len(p.tenors)) for p in CATALOG])
#: Spell amount = turnover * (base + span * u): a credit limit up to limit_turnover_share of
#: turnover; a deposit or fund balance of 0.3 to 2 months of turnover; NaN (none) otherwise.
IS_DEPOSIT = np.isin(PRODUCT_CODES, ("term_deposit", "investment_fund"))
LIMIT_SHARE = np.array([p.limit_turnover_share or 0.0 for p in CATALOG])
AMOUNT_BASE = np.where(IS_FINANCING, 0.3 * LIMIT_SHARE, np.where(IS_DEPOSIT, 0.3 / 12, np.nan))
AMOUNT_SPAN = np.where(IS_FINANCING, 0.7 * LIMIT_SHARE, np.where(IS_DEPOSIT, 1.7 / 12, np.nan))
