"""This module owns the synthetic bank's product catalog: what each product is (the ``products``
table) and how the synthetic clients come to need it (intercepts and loadings of its adoption
hazard). Business products (:data:`BUSINESS_CATALOG`) are offered to SMEs and corporates,
personal products (:data:`PERSONAL_CATALOG`) to personal clients.

The contract columns are the bank's view of a product; the behaviour fields are the generator's
secret: they never reach an output table except through the ground truth. The generative process
they feed is documented in ``docs/synthetic-bank.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rmreco.domain.contract import ProductKind, Segment

#: The latent drivers a business product's adoption hazard loads on, in this order (see
#: ``ProductSpec.latent``): health (firm mean plus its deviation), growth, international
#: activity, cash surplus.
LATENT_DRIVERS: tuple[str, ...] = ("health", "growth", "international", "cash")
#: The static firm traits a business product's adoption hazard loads on, in this order
#: (``ProductSpec.static``): size (log turnover, standardised within segment), international
#: orientation, cash richness, card-payment share of the business, payroll size (log employees,
#: standardised).
STATIC_TRAITS: tuple[str, ...] = ("size", "intl", "cash_rich", "card_share", "staff")
#: The same slots for a personal product: financial health, spending need, housing need (a move,
#: a family), cash surplus.
PERSONAL_LATENT_DRIVERS: tuple[str, ...] = ("health", "spending", "housing", "cash")
#: The same slots for a personal product: income (log declared income, standardised), youth
#: (younger is higher), wealth, card affinity, household (settling, children).
PERSONAL_STATIC_TRAITS: tuple[str, ...] = (
    "income",
    "youth",
    "wealth",
    "card_affinity",
    "household",
)

BOTH_SEGMENTS = f"{Segment.SME}|{Segment.CORPORATE}"
PERSONAL_SEGMENT = str(Segment.PERSONAL)


@dataclass(frozen=True)
class ProductSpec:
    """One product: its catalog row and the parameters of its synthetic adoption."""

    code: str
    name: str
    kind: ProductKind
    segments: str = BOTH_SEGMENTS
    lgd: float | None = None
    margin_rate: float | None = None
    annual_fee: float | None = None
    min_age_months: int | None = None
    max_tenor_months: int | None = None
    limit_turnover_share: float | None = None
    # ---- behaviour (not written to the catalog) ----
    #: monthly adoption log-odds intercept for an average client, by segment of the product's
    #: population: (sme, corporate) for business products, (personal,) for personal ones
    intercept: tuple[float, ...] = (-6.0, -6.0)
    #: share of clients holding the product when their history starts, by segment as above
    prevalence: tuple[float, ...] = (0.1, 0.1)
    #: loadings on LATENT_DRIVERS (business) or PERSONAL_LATENT_DRIVERS (personal)
    latent: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    #: loadings on STATIC_TRAITS (business) or PERSONAL_STATIC_TRAITS (personal)
    static: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)
    #: log-odds shift by NACE section
    sector: dict[str, float] = field(default_factory=dict)
    #: tenors (months) a spell is drawn from when the product matures; empty: open-ended
    tenors: tuple[int, ...] = ()
    #: monthly probability that an open-ended spell is closed by the client
    churn: float = 0.005
    #: a deposit or fund: its balance at the start is (base + span x U(0, 1)) months of the
    #: client's turnover or income; None for other products
    balance_months: tuple[float, float] | None = None
    #: a credit line the bank cancels when the client defaults
    is_cancelled_on_default: bool = False
    #: a current-account facility whose limit is the account's ``overdraft_limit``
    is_overdraft_facility: bool = False


FINANCING = ProductKind.FINANCING
SERVICE = ProductKind.SERVICE

#: Capital-intensive sections, where growth turns into investment loans and leases.
CAPITAL_INTENSIVE = ("A", "C", "F", "H")

BUSINESS_CATALOG: tuple[ProductSpec, ...] = (
    ProductSpec(
        "overdraft",
        "Business overdraft",
        FINANCING,
        lgd=0.45,
        margin_rate=0.025,
        min_age_months=6,
        max_tenor_months=12,
        limit_turnover_share=0.10,
        intercept=(-5.9, -6.6),
        prevalence=(0.32, 0.25),
        latent=(-0.35, 0.45, 0.0, -0.3),
        static=(0.0, 0.0, -0.3, 0.0, 0.0),
        sector={"G": 0.3, "F": 0.3, "I": 0.2},
        churn=0.004,
        is_cancelled_on_default=True,
        is_overdraft_facility=True,
    ),
    ProductSpec(
        "revolving_credit",
        "Revolving credit facility",
        FINANCING,
        lgd=0.40,
        margin_rate=0.018,
        min_age_months=12,
        max_tenor_months=36,
        limit_turnover_share=0.15,
        intercept=(-6.8, -5.5),
        prevalence=(0.06, 0.40),
        latent=(0.35, 0.6, 0.0, -0.2),
        static=(0.6, 0.0, 0.0, 0.0, 0.0),
        sector={"C": 0.3, "G": 0.2},
        churn=0.004,
        is_cancelled_on_default=True,
        is_overdraft_facility=True,
    ),
    ProductSpec(
        "term_loan",
        "Term loan",
        FINANCING,
        lgd=0.40,
        margin_rate=0.020,
        min_age_months=24,
        max_tenor_months=84,
        limit_turnover_share=0.30,
        intercept=(-6.6, -6.3),
        prevalence=(0.22, 0.35),
        latent=(0.4, 0.9, 0.0, -0.2),
        static=(0.2, 0.0, 0.0, 0.0, 0.0),
        sector={**dict.fromkeys(CAPITAL_INTENSIVE, 0.5), "I": 0.3},
        tenors=(24, 36, 48, 60, 84),
    ),
    ProductSpec(
        "invoice_finance",
        "Invoice finance (factoring)",
        FINANCING,
        lgd=0.30,
        margin_rate=0.022,
        min_age_months=12,
        max_tenor_months=12,
        limit_turnover_share=0.15,
        intercept=(-6.7, -6.8),
        prevalence=(0.06, 0.10),
        latent=(-0.6, 0.8, 0.0, -0.5),
        static=(0.0, 0.0, -0.3, 0.0, 0.0),
        sector={"C": 0.5, "G": 0.4, "N": 0.5, "J": 0.3, "M": 0.3, "I": -1.0, "Q": -0.5},
        churn=0.006,
    ),
    ProductSpec(
        "equipment_leasing",
        "Equipment leasing",
        FINANCING,
        lgd=0.35,
        margin_rate=0.020,
        min_age_months=12,
        max_tenor_months=72,
        limit_turnover_share=0.10,
        intercept=(-7.0, -6.8),
        prevalence=(0.10, 0.18),
        latent=(0.3, 0.9, 0.0, 0.0),
        static=(0.0, 0.0, 0.0, 0.0, 0.0),
        sector={**dict.fromkeys(CAPITAL_INTENSIVE, 0.9), "N": 0.3, "Q": 0.3},
        tenors=(24, 36, 48, 60, 72),
    ),
    ProductSpec(
        "trade_finance",
        "Trade finance (letters of credit, guarantees)",
        FINANCING,
        lgd=0.25,
        margin_rate=0.015,
        min_age_months=12,
        max_tenor_months=12,
        limit_turnover_share=0.20,
        intercept=(-7.6, -6.8),
        prevalence=(0.03, 0.22),
        latent=(0.2, 0.3, 1.3, 0.0),
        static=(0.3, 1.0, 0.0, 0.0, 0.0),
        sector={"C": 0.4, "G": 0.4, "H": 0.2, "Q": -1.0, "L": -1.0},
        churn=0.006,
    ),
    ProductSpec(
        "commercial_mortgage",
        "Commercial mortgage",
        FINANCING,
        lgd=0.25,
        margin_rate=0.012,
        min_age_months=24,
        max_tenor_months=300,
        limit_turnover_share=0.60,
        intercept=(-7.4, -7.4),
        prevalence=(0.06, 0.10),
        latent=(0.6, 0.5, 0.0, 0.4),
        static=(0.2, 0.0, 0.3, 0.0, 0.0),
        sector={"L": 1.2, "I": 0.5, "C": 0.3, "Q": 0.3},
        tenors=(120, 180, 240, 300),
    ),
    ProductSpec(
        "cash_management",
        "Cash management and liquidity pooling",
        SERVICE,
        annual_fee=2400.0,
        intercept=(-7.0, -5.8),
        prevalence=(0.06, 0.55),
        latent=(0.2, 0.4, 0.3, 0.3),
        static=(0.9, 0.2, 0.0, 0.0, 0.2),
        churn=0.003,
    ),
    ProductSpec(
        "fx_hedging",
        "FX forwards and options",
        SERVICE,
        annual_fee=3500.0,
        min_age_months=12,
        intercept=(-7.4, -6.6),
        prevalence=(0.04, 0.30),
        latent=(0.1, 0.2, 1.4, 0.0),
        static=(0.3, 1.2, 0.0, 0.0, 0.0),
        sector={"C": 0.3, "G": 0.3, "J": 0.2},
        churn=0.006,
    ),
    ProductSpec(
        "payroll",
        "Payroll services",
        SERVICE,
        annual_fee=900.0,
        intercept=(-6.3, -6.2),
        prevalence=(0.25, 0.45),
        latent=(0.2, 0.4, 0.0, 0.0),
        static=(0.0, 0.0, 0.0, 0.0, 1.3),
        sector={"Q": 0.3, "I": 0.3},
        churn=0.004,
    ),
    ProductSpec(
        "business_card",
        "Business credit card",
        SERVICE,
        annual_fee=300.0,
        intercept=(-5.9, -6.0),
        prevalence=(0.35, 0.45),
        latent=(0.3, 0.3, 0.4, 0.0),
        static=(0.0, 0.3, 0.0, 0.0, 0.4),
        sector={"M": 0.3, "J": 0.3},
        churn=0.006,
    ),
    ProductSpec(
        "card_acquiring",
        "Card acquiring (POS terminals, e-commerce)",
        SERVICE,
        annual_fee=1500.0,
        intercept=(-7.3, -7.6),
        prevalence=(0.14, 0.10),
        latent=(0.1, 0.3, 0.0, 0.0),
        static=(0.0, 0.0, 0.0, 1.6, 0.0),
        sector={"G": 0.9, "I": 1.1, "Q": 0.4, "C": -0.8, "F": -0.8, "L": -0.5},
        churn=0.004,
    ),
    ProductSpec(
        "term_deposit",
        "Term deposit",
        SERVICE,
        annual_fee=600.0,
        max_tenor_months=24,
        intercept=(-7.0, -6.9),
        prevalence=(0.10, 0.20),
        latent=(0.5, -0.2, 0.0, 1.4),
        static=(0.2, 0.0, 1.0, 0.0, 0.0),
        churn=0.010,
        balance_months=(0.3, 1.7),
    ),
    ProductSpec(
        "investment_fund",
        "Treasury investment funds",
        SERVICE,
        annual_fee=1800.0,
        intercept=(-7.8, -7.2),
        prevalence=(0.04, 0.15),
        latent=(0.5, 0.0, 0.0, 1.3),
        static=(0.4, 0.0, 1.2, 0.0, 0.0),
        churn=0.006,
        balance_months=(0.3, 1.7),
    ),
    ProductSpec(
        "insurance",
        "Business insurance",
        SERVICE,
        annual_fee=800.0,
        intercept=(-6.3, -6.6),
        prevalence=(0.18, 0.25),
        latent=(0.1, 0.5, 0.2, 0.0),
        static=(0.2, 0.0, 0.0, 0.0, 0.3),
        sector={"F": 0.5, "C": 0.4, "A": 0.5, "H": 0.4, "I": 0.2},
        churn=0.005,
    ),
)

PERSONAL_CATALOG: tuple[ProductSpec, ...] = (
    ProductSpec(
        "credit_card",
        "Personal credit card",
        FINANCING,
        segments=PERSONAL_SEGMENT,
        # unsecured revolving retail credit: a high loss given default, a wide margin
        lgd=0.80,
        margin_rate=0.06,
        max_tenor_months=12,
        limit_turnover_share=0.15,
        intercept=(-5.4,),
        prevalence=(0.35,),
        latent=(0.3, 0.9, 0.0, -0.3),
        static=(0.3, 0.3, 0.0, 1.1, 0.0),
        churn=0.004,
        is_cancelled_on_default=True,
    ),
    ProductSpec(
        "savings_account",
        "Savings account",
        SERVICE,
        segments=PERSONAL_SEGMENT,
        annual_fee=120.0,
        intercept=(-5.6,),
        prevalence=(0.40,),
        latent=(0.4, -0.3, 0.3, 1.4),
        static=(0.2, 0.0, 0.9, 0.0, 0.0),
        churn=0.006,
        balance_months=(1.0, 11.0),
    ),
    ProductSpec(
        "personal_investment_fund",
        "Investment funds",
        SERVICE,
        segments=PERSONAL_SEGMENT,
        annual_fee=450.0,
        intercept=(-7.0,),
        prevalence=(0.12,),
        latent=(0.5, 0.0, -0.3, 1.2),
        static=(0.8, -0.5, 1.3, 0.0, 0.0),
        churn=0.005,
        balance_months=(3.0, 21.0),
    ),
    ProductSpec(
        "residential_mortgage",
        "Residential mortgage",
        FINANCING,
        segments=PERSONAL_SEGMENT,
        # secured on the home: a low loss given default and a thin margin; the limit is a
        # multiple of annual income (loan-to-income caps of 4 to 4.5 are common)
        lgd=0.15,
        margin_rate=0.010,
        max_tenor_months=360,
        limit_turnover_share=4.0,
        intercept=(-7.3,),
        prevalence=(0.25,),
        latent=(0.6, 0.2, 1.5, 0.2),
        static=(0.5, 0.7, 0.3, 0.0, 0.8),
        tenors=(180, 240, 300, 360),
    ),
)

#: Every product of the synthetic bank: the business products, then the personal ones. A bank
#: generated without personal clients offers (and lists) the business products only.
CATALOG: tuple[ProductSpec, ...] = BUSINESS_CATALOG + PERSONAL_CATALOG
PRODUCT_CODES: tuple[str, ...] = tuple(p.code for p in CATALOG)
BUSINESS_PRODUCT_CODES: tuple[str, ...] = tuple(p.code for p in BUSINESS_CATALOG)
PERSONAL_PRODUCT_CODES: tuple[str, ...] = tuple(p.code for p in PERSONAL_CATALOG)
