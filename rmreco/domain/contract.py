"""The data contract: every input table, its columns, types, ranges, keys and references.

This is the one place the contract is spelled. Validation (``rmreco.data.contract``), the
relational schema (``rmreco.db.schema``, checked against this by a test), the synthetic bank and
``docs/data-format.md`` all follow it.

Money columns are amounts in the bank's one currency (the optional ``clients.currency`` column
or the ``RMRECO_CURRENCY`` setting says which). Months (columns ``month`` and ``*_month``) may be
given as any date within the month -- the month's last day is the common bank convention -- and
mean that month; they are read as the month's first day.
Identifiers are strings; integer identifiers in input files are read as their decimal text.

Only ``clients`` is required: every other table may be left out of a folder (a statements-only
book has no account months, an application sample no holdings) and then reads as an empty table.
``clients`` and ``financials`` may carry the bank's own columns beyond the contract (features:
numeric or categorical, declared in the manifest or inferred); ``products`` keeps its own as
catalog parameters. ``clients.name`` (a firm's legal name, a person's name) is a contract column
so that it is never one of those: it is for people to read and search, and no model learns from
it. An optional ``manifest.yaml`` beside the tables states what the tables cannot: the extract
date (undated credit status), the observation month (clients without account history) and the
kinds of the bank's own columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

Kind = Literal["str", "date", "int", "float", "bool"]
#: Kind of a bank's own column of ``clients`` or ``financials`` (beyond the contract).
ExtraKind = Literal["numeric", "categorical"]
EXTRA_KINDS: tuple[ExtraKind, ...] = ("numeric", "categorical")
#: Names a bank's own column must have: LightGBM feature names and JSON keys need plain names.
EXTRA_COLUMN_NAME = r"^[a-z][a-z0-9_]{0,62}$"
#: A categorical column with more distinct values than this is kept, with a warning: it is
#: probably an identifier, which no model can learn from.
EXTRA_CATEGORICAL_LEVELS_WARNING = 200

#: The optional manifest beside the tables of an input folder (see ``rmreco.data.manifest``).
MANIFEST_FILE = "manifest.yaml"
#: Manifest keys that fill empty month cells (``Column.filled_from``).
MANIFEST_EXTRACT_DATE = "extract_date"
MANIFEST_OBSERVATION_MONTH = "observation_month"
#: What happens to a table's columns the contract does not know.
ExtraPolicy = Literal["ignored", "params", "features"]
#: How rows finer than a table's grain (e.g. one per account) are combined into one row.
Aggregation = Literal["sum", "max", "min"]

#: Version of this contract. A trained model records the version it was trained on; a change
#: that alters what a column means (not one that adds an optional column) raises it.
CONTRACT_VERSION = "1"


class Segment(StrEnum):
    SME = "sme"
    CORPORATE = "corporate"
    PERSONAL = "personal"


class RmRole(StrEnum):
    BRM = "brm"
    CRM = "crm"
    PRM = "prm"


class EventType(StrEnum):
    DEFAULT = "default"
    RESTRUCTURING = "restructuring"
    WRITE_OFF = "write_off"
    INSOLVENCY = "insolvency"


class ProductKind(StrEnum):
    FINANCING = "financing"
    SERVICE = "service"


#: NACE Rev. 2 sections, the sector code of ``clients.sector``.
NACE_SECTIONS: tuple[str, ...] = tuple("ABCDEFGHIJKLMNOPQRSTU")
#: Longest client name (``clients.name``), in characters: room for the longest registered legal
#: names (a firm's name with its legal form spelled out) and a person's full name.
CLIENT_NAME_MAX_LENGTH = 200


@dataclass(frozen=True)
class Column:
    """One column of an input table."""

    name: str
    kind: Kind
    description: str
    required: bool = True
    nullable: bool = False
    ge: float | None = None
    le: float | None = None
    levels: tuple[str, ...] | None = None
    is_money: bool = False
    #: A month column whose empty cells are set to the month of this manifest key when the
    #: manifest gives it (e.g. ``credit_events.month`` from ``extract_date``). A column that is
    #: not ``nullable`` may then be empty only when the manifest gives the key.
    filled_from: str | None = None
    #: Why the manifest key fills an empty cell, for the documentation.
    fill_rule: str | None = None
    #: Longest text a ``str`` column holds, in characters (the database column's length); a
    #: longer value is refused when loaded. None: no limit.
    max_length: int | None = None


@dataclass(frozen=True)
class Reference:
    """``column`` of this table must name an existing ``target_table.target_column``."""

    column: str
    target_table: str
    target_column: str


@dataclass(frozen=True)
class Table:
    """One input table: file ``<name>.parquet`` or ``<name>.csv`` in the input folder."""

    name: str
    grain: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    references: tuple[Reference, ...] = ()
    is_optional: bool = False
    #: (start, end) column pairs where end, when present, must not be before start.
    ordered: tuple[tuple[str, str], ...] = field(default=())
    #: Optional identifier columns of a grain finer than the table's (``account_id``: one row
    #: per account and month). When the file has one, its rows are aggregated to the table's
    #: grain by ``aggregation`` as they are read; the column is neither stored nor a feature.
    detail_columns: tuple[Column, ...] = field(default=())
    #: For every column outside the key: (column, how, why) finer rows are aggregated.
    aggregation: tuple[tuple[str, Aggregation, str], ...] = field(default=())
    #: Columns the contract does not know: "ignored" (dropped with a warning), "params" (kept
    #: as parameters in the JSON column ``extras_column``, e.g. the catalog's pricing terms) or
    #: "features" (kept as the bank's own numeric or categorical features, stored in the JSON
    #: column ``extras_column``).
    extras: ExtraPolicy = "ignored"
    #: The database's JSON column holding the kept extra columns of a row ({name: value}).
    extras_column: str | None = None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _money(
    name: str, description: str, *, required: bool = False, ge: float | None = 0.0
) -> Column:
    return Column(
        name,
        "float",
        description,
        required=required,
        nullable=not required,
        ge=ge,
        is_money=True,
    )


def _count(name: str, description: str, *, le: float | None = None) -> Column:
    return Column(name, "int", description, required=False, nullable=True, ge=0, le=le)


CLIENTS = Table(
    name="clients",
    grain="one row per client",
    key=("client_id",),
    columns=(
        Column("client_id", "str", "the bank's client identifier"),
        Column(
            "name",
            "str",
            "the client's legal name (a firm) or personal name (a person), free text of at most "
            f"{CLIENT_NAME_MAX_LENGTH} characters, as RMs know the client; shown and searched, "
            "never a model feature; where empty, the client is shown by its id",
            required=False,
            nullable=True,
            max_length=CLIENT_NAME_MAX_LENGTH,
        ),
        Column("segment", "str", "business segment", levels=tuple(Segment)),
        Column(
            "sector",
            "str",
            "NACE Rev. 2 section letter (A-U); unknown when empty",
            required=False,
            nullable=True,
            levels=NACE_SECTIONS,
        ),
        Column("region", "str", "the client's region, free text", nullable=True, required=False),
        Column("founded", "date", "date the business was founded", nullable=True, required=False),
        Column("employees", "int", "number of employees", nullable=True, ge=0, required=False),
        Column(
            "turnover",
            "float",
            "declared annual turnover",
            required=False,
            nullable=True,
            ge=0,
            is_money=True,
        ),
        Column(
            "rm_id",
            "str",
            "the client's primary relationship manager",
            nullable=True,
            required=False,
        ),
        Column(
            "onboarded",
            "date",
            "month the banking relationship began",
            required=False,
            nullable=True,
        ),
        Column(
            "currency",
            "str",
            "ISO 4217 code of the client's figures; one per bank",
            required=False,
            nullable=True,
        ),
        Column(
            "as_of_month",
            "date",
            "the month the client's attributes and statements describe (any date within it): "
            "the snapshot month of a client without account history, as in application and "
            "scorecard-development samples",
            required=False,
            nullable=True,
            filled_from=MANIFEST_OBSERVATION_MONTH,
            fill_rule="an empty cell is the manifest's observation month",
        ),
    ),
    references=(Reference("rm_id", "relationship_managers", "rm_id"),),
    extras="features",
    extras_column="extra",
)

RELATIONSHIP_MANAGERS = Table(
    name="relationship_managers",
    grain="one row per relationship manager",
    is_optional=True,
    key=("rm_id",),
    columns=(
        Column("rm_id", "str", "the RM's identifier"),
        Column("name", "str", "display name"),
        Column(
            "role",
            "str",
            "brm serves SMEs, crm corporates, prm personal clients",
            levels=tuple(RmRole),
        ),
        Column("team", "str", "team or branch", required=False, nullable=True),
        Column("region", "str", "region the RM covers", required=False, nullable=True),
    ),
)

_SUM_FLOW = "sum over the accounts"
_SUM_BOUND = (
    "sum over the accounts: the accounts' extremes need not fall on the same day, so the sum "
    "approximates the extreme of the client's total balance (the sum of minima is at most the "
    "lowest total, the sum of maxima at least the highest)"
)

ACCOUNT_MONTHS = Table(
    name="account_months",
    grain="one row per client and calendar month (or per account and month, with account_id)",
    is_optional=True,
    key=("client_id", "month"),
    columns=(
        Column("client_id", "str", "the client"),
        Column(
            "month",
            "date",
            "the month the row describes: any date within it (e.g. its last day) means that month",
        ),
        _money(
            "balance_avg",
            "average end-of-day balance over all current accounts (negative when overdrawn)",
            required=True,
            ge=None,
        ),
        _money("balance_min", "lowest end-of-day balance in the month", ge=None),
        _money("balance_max", "highest end-of-day balance in the month", ge=None),
        _money("credit_turnover", "sum of incoming payments (inflows)", required=True),
        _money("debit_turnover", "sum of outgoing payments (outflows)", required=True),
        _count("n_credit_tx", "number of incoming transactions"),
        _count("n_debit_tx", "number of outgoing transactions"),
        _money("overdraft_limit", "overdraft limit in force at month end"),
        _money("overdraft_peak_use", "largest overdraft drawn in the month"),
        _count("days_in_overdraft", "days the account was overdrawn", le=31),
        _count("dpd_max", "largest days past due on any credit facility at any day of the month"),
        _count("returned_payments", "payments returned unpaid (bounced) in the month"),
        _money("intl_payments", "sum of cross-border payments, in and out"),
        _money("payroll_outflow", "sum of salary payments"),
        _money("card_spend", "spending on the client's cards (business or personal)"),
        _money("acquiring_inflow", "card-acquiring settlements received"),
    ),
    references=(Reference("client_id", "clients", "client_id"),),
    detail_columns=(
        Column(
            "account_id",
            "str",
            "the account the row describes, when the extract has one row per account and month "
            "(current, card, loan accounts); rows are aggregated to the client-month, see "
            "'Several accounts per client'",
            required=False,
        ),
    ),
    aggregation=(
        ("balance_avg", "sum", "sum over the accounts (the client's average total balance)"),
        ("balance_min", "sum", _SUM_BOUND),
        ("balance_max", "sum", _SUM_BOUND),
        ("credit_turnover", "sum", _SUM_FLOW),
        ("debit_turnover", "sum", _SUM_FLOW),
        ("n_credit_tx", "sum", _SUM_FLOW),
        ("n_debit_tx", "sum", _SUM_FLOW),
        ("overdraft_limit", "sum", "sum over the accounts (the client's total limit)"),
        (
            "overdraft_peak_use",
            "sum",
            "sum over the accounts (the peaks need not fall on the same day: at least the "
            "client's largest total overdraft)",
        ),
        (
            "days_in_overdraft",
            "max",
            "largest over the accounts (at least this many days some account was overdrawn)",
        ),
        ("dpd_max", "max", "largest over the accounts (the worst arrears)"),
        ("returned_payments", "sum", _SUM_FLOW),
        ("intl_payments", "sum", _SUM_FLOW),
        ("payroll_outflow", "sum", _SUM_FLOW),
        ("card_spend", "sum", _SUM_FLOW),
        ("acquiring_inflow", "sum", _SUM_FLOW),
    ),
)

PRODUCTS = Table(
    name="products",
    grain="one row per product of the catalog",
    is_optional=True,
    key=("product_code",),
    columns=(
        Column("product_code", "str", "the product's code"),
        Column("name", "str", "display name"),
        Column("kind", "str", "financing (credit) or service", levels=tuple(ProductKind)),
        Column(
            "segments",
            "str",
            "segments the product is offered to, separated by '|' (e.g. 'sme|corporate')",
        ),
        Column(
            "lgd",
            "float",
            "loss given default of a financing product (0-1)",
            required=False,
            nullable=True,
            ge=0,
            le=1,
        ),
        Column(
            "margin_rate",
            "float",
            "annual operating margin of a financing product, as a rate",
            required=False,
            nullable=True,
            ge=0,
            le=1,
        ),
        Column(
            "annual_fee",
            "float",
            "expected annual margin of a service per client, in money",
            required=False,
            nullable=True,
            ge=0,
            is_money=True,
        ),
        Column(
            "min_age_months",
            "int",
            "youngest business the product is offered to, in months",
            required=False,
            nullable=True,
            ge=0,
        ),
        Column(
            "max_tenor_months",
            "int",
            "longest tenor of a financing product",
            required=False,
            nullable=True,
            ge=1,
        ),
        Column(
            "limit_turnover_share",
            "float",
            "largest limit of a financing product as a share of annual turnover",
            required=False,
            nullable=True,
            ge=0,
        ),
    ),
    extras="params",
    extras_column="params",
)

HOLDINGS = Table(
    name="holdings",
    grain="one row per spell of a client holding a product",
    is_optional=True,
    key=("client_id", "product_code", "start_month"),
    columns=(
        Column("client_id", "str", "the client"),
        Column("product_code", "str", "the product held"),
        Column("start_month", "date", "first month the product was held (any date within it)"),
        Column(
            "end_month",
            "date",
            "last month the product was held (any date within it); empty while held",
            nullable=True,
        ),
        _money("amount", "limit of a financing product or balance of a deposit at the start"),
    ),
    references=(
        Reference("client_id", "clients", "client_id"),
        Reference("product_code", "products", "product_code"),
    ),
    ordered=(("start_month", "end_month"),),
)

CREDIT_EVENTS = Table(
    name="credit_events",
    grain="one row per client, month and event type",
    is_optional=True,
    key=("client_id", "month", "event_type"),
    columns=(
        Column("client_id", "str", "the client"),
        Column(
            "month",
            "date",
            "month the event happened (any date within it)",
            filled_from=MANIFEST_EXTRACT_DATE,
            fill_rule="an empty cell is a status known at the extract date: the event is dated "
            "the extract date's month",
        ),
        Column(
            "event_type",
            "str",
            "default is 90+ days past due or unlikely to pay",
            levels=tuple(EventType),
        ),
    ),
    references=(Reference("client_id", "clients", "client_id"),),
)

FINANCIALS = Table(
    name="financials",
    grain="one row per client and financial year",
    key=("client_id", "year"),
    is_optional=True,
    columns=(
        Column("client_id", "str", "the client"),
        Column("year", "int", "financial year (calendar year it ends in)", ge=1900, le=2200),
        _money("revenue", "revenue of the year"),
        _money("ebitda", "earnings before interest, tax, depreciation and amortisation", ge=None),
        _money("total_assets", "total assets at year end"),
        _money("total_debt", "financial debt at year end"),
        _money("equity", "equity at year end (negative when liabilities exceed assets)", ge=None),
        _money("current_assets", "current assets at year end"),
        _money("current_liabilities", "current liabilities at year end"),
    ),
    references=(Reference("client_id", "clients", "client_id"),),
    extras="features",
    extras_column="extra",
)

#: Tables in load order: a table comes after every table it references.
TABLES: tuple[Table, ...] = (
    RELATIONSHIP_MANAGERS,
    PRODUCTS,
    CLIENTS,
    ACCOUNT_MONTHS,
    HOLDINGS,
    CREDIT_EVENTS,
    FINANCIALS,
)
TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}

#: Ground-truth files of the synthetic bank, written under ``<dir>/truth/``, never read by features.
TRUTH_DIR = "truth"
TRUTH_CREDIT_PD = "credit_pd"
TRUTH_CROSS_SELL = "cross_sell"
