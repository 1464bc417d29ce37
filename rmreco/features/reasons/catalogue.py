"""This module owns the catalogue's entries: the code, text template, unit and reason flag of
every feature the builders produce, and the codes of the decision's other reasons (the
client's default, the credit policy's rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rmreco.features.cross_sell import PRODUCT

#: How a feature's number becomes the value an RM reads (see :func:`explain`).
Kind = Literal[
    "count",  # a whole number of something: days, months, payments ("{value}", plural "{s}")
    "decimal",  # a plain number, two decimals
    "money",  # log1p of an amount: shown as the amount, with the currency when known
    "log_count",  # log1p of a count (employees, transactions a month): shown as the count
    "percent",  # a share: 0.85 -> 85%
    "signed_percent",  # a change: 0.12 -> "up 12%", -0.2 -> "down 20%"
    "trend_percent",  # a monthly change as a share: "rising by 4.0%" / "falling by 4.0%"
    "trend_decimal",  # a monthly change in months of inflows: "rising by 0.05"
    "flag",  # 0/1: the template when 1, ``zero`` when 0
    "category",  # a level, with its name where the catalogue knows one
]
#: What a model's score is: the credit model's PD, or the cross-sell model's take-up.
Target = Literal["pd", "take-up"]

#: Code of the reason a client in default gets, in place of any feature.
DEFAULT_CODE = "DEF01"
DEFAULT_TEXT = "the client is in default (90+ days past due or unlikely to pay)"
#: Prefix of the code of a feature the catalogue does not know.
GENERATED_PREFIX = "X_"

#: Codes of the credit policy's reasons (``rmreco.modeling.decisioning.decide``).
POL_DEFAULT = "POL_DEFAULT"
POL_GRADE_REFER = "POL_GRADE_REFER"
POL_GRADE_DECLINE = "POL_GRADE_DECLINE"
POL_DPD3M = "POL_DPD3M"
POL_DPD12M = "POL_DPD12M"
POL_RESTRUCTURED = "POL_RESTRUCTURED"
POL_YOUNG = "POL_YOUNG"
POLICY_REASONS: dict[str, str] = {
    POL_DEFAULT: "the client is in default (grade D): declined",
    POL_GRADE_REFER: "the risk grade is in the policy's refer band: a credit officer reviews it",
    POL_GRADE_DECLINE: "the risk grade is outside the bank's credit appetite: declined",
    POL_DPD3M: "days past due in the last 3 months above the policy's maximum: declined",
    POL_DPD12M: "days past due in the last 12 months above the policy's limit: at best referred",
    POL_RESTRUCTURED: "a credit facility restructured in the last 12 months: at best referred",
    POL_YOUNG: "the business is younger than the policy's minimum age: declined",
}

#: NACE Rev. 2 sections (the contract's ``clients.sector``), as Eurostat names them.
NACE_SECTION_NAMES: dict[str, str] = {
    "A": "agriculture, forestry and fishing",
    "B": "mining and quarrying",
    "C": "manufacturing",
    "D": "electricity, gas, steam and air conditioning supply",
    "E": "water supply, sewerage, waste management and remediation",
    "F": "construction",
    "G": "wholesale and retail trade, repair of motor vehicles",
    "H": "transportation and storage",
    "I": "accommodation and food service",
    "J": "information and communication",
    "K": "financial and insurance activities",
    "L": "real estate activities",
    "M": "professional, scientific and technical activities",
    "N": "administrative and support services",
    "O": "public administration and defence",
    "P": "education",
    "Q": "human health and social work",
    "R": "arts, entertainment and recreation",
    "S": "other service activities",
    "T": "households as employers",
    "U": "extraterritorial organisations",
}
SEGMENT_NAMES: dict[str, str] = {"sme": "SME", "corporate": "corporate", "personal": "personal"}


@dataclass(frozen=True)
class ReasonEntry:
    """One feature of the catalogue.

    ``template`` holds ``{value}`` (the value formatted by ``kind``), and may hold ``{s}`` (a
    plural "s") and ``{years}`` (a number of months in years). ``zero``, ``never`` and
    ``missing`` are the texts for a value of 0, for "never happened" (the builder's ``NEVER``)
    and for an unknown value.
    """

    code: str
    feature: str
    template: str
    unit: str
    kind: Kind
    zero: str | None = None
    never: str | None = None
    missing: str | None = None
    is_reason: bool = True
    #: why the feature is not a reason, or what its figure means
    note: str = ""

    @property
    def is_generated(self) -> bool:
        return self.code.startswith(GENERATED_PREFIX)


def _e(
    code: str,
    feature: str,
    template: str,
    unit: str,
    kind: Kind,
    *,
    zero: str | None = None,
    never: str | None = None,
    missing: str | None = None,
    is_reason: bool = True,
    note: str = "",
) -> ReasonEntry:
    return ReasonEntry(code, feature, template, unit, kind, zero, never, missing, is_reason, note)


_NO_ACCOUNTS = "no annual accounts on file"
AMOUNT = "amount"  # the unit of money when the currency is not known

#: The catalogue, in the builders' feature order.
ENTRIES: tuple[ReasonEntry, ...] = (
    _e(
        "HIS01",
        "history_months",
        "{value} month{s} of account history in the data",
        "months",
        "count",
        is_reason=False,
        note="describes the extract, not the client: it counts the months the data holds, so it "
        "grows with the extract's start date (tenure_months is the relationship's length)",
    ),
    _e("INF01", "inflow_1m_log", "inflows last month: {value}", AMOUNT, "money"),
    _e("INF03", "inflow_3m_log", "inflows over the last 3 months: {value}", AMOUNT, "money"),
    _e("INF12", "inflow_12m_log", "inflows over the last 12 months: {value}", AMOUNT, "money"),
    _e(
        "NFL03",
        "net_flow_ratio_3m",
        "net cash flow over the last 3 months: {value} of inflows",
        "%",
        "percent",
        missing="net cash flow over the last 3 months: not known (no inflows)",
    ),
    _e(
        "NFL12",
        "net_flow_ratio_12m",
        "net cash flow over the last 12 months: {value} of inflows",
        "%",
        "percent",
        missing="net cash flow over the last 12 months: not known (no inflows)",
    ),
    _e(
        "GRW03",
        "inflow_growth_3m",
        "inflows of the last 3 months {value} on the 3 months before",
        "%",
        "signed_percent",
        missing="growth of inflows over 3 months: not known (no inflows in the 3 months before)",
    ),
    _e(
        "GRWYY",
        "inflow_growth_yoy",
        "inflows of the last 3 months {value} on the same months a year earlier",
        "%",
        "signed_percent",
        missing="growth of inflows on a year earlier: not known (no inflows a year earlier)",
    ),
    _e(
        "GRW12",
        "inflow_growth_12m",
        "inflows of the last 12 months {value} on the 12 months before",
        "%",
        "signed_percent",
        missing="growth of inflows over 12 months: not known (no inflows in the 12 months before)",
    ),
    _e(
        "ITR06",
        "inflow_trend_6m",
        "monthly inflows {value} of their average a month over the last 6 months",
        "% a month",
        "trend_percent",
        zero="monthly inflows flat over the last 6 months",
    ),
    _e(
        "IVL12",
        "inflow_volatility_12m",
        "monthly inflows varying by {value} of their average over the last 12 months",
        "%",
        "percent",
        note="standard deviation of monthly inflows against their mean",
    ),
    _e(
        "BAL01",
        "balance_to_inflow_1m",
        "average balance last month: {value} months of inflows",
        "months of inflows",
        "decimal",
    ),
    _e(
        "BAL03",
        "balance_to_inflow_3m",
        "average balance over the last 3 months: {value} months of inflows",
        "months of inflows",
        "decimal",
    ),
    _e(
        "BAL12",
        "balance_to_inflow_12m",
        "average balance over the last 12 months: {value} months of inflows",
        "months of inflows",
        "decimal",
    ),
    _e(
        "BMN03",
        "balance_min_to_inflow_3m",
        "lowest balance over the last 3 months: {value} months of inflows",
        "months of inflows",
        "decimal",
    ),
    _e(
        "BVL06",
        "balance_volatility_6m",
        "balance varying by {value} months of inflows over the last 6 months",
        "months of inflows",
        "decimal",
        note="standard deviation of the monthly average balance",
    ),
    _e(
        "BVL12",
        "balance_volatility_12m",
        "balance varying by {value} months of inflows over the last 12 months",
        "months of inflows",
        "decimal",
        note="standard deviation of the monthly average balance",
    ),
    _e(
        "BTR06",
        "balance_trend_6m",
        "balance {value} months of inflows a month over the last 6 months",
        "months of inflows a month",
        "trend_decimal",
        zero="balance flat over the last 6 months",
    ),
    _e(
        "BTR12",
        "balance_trend_12m",
        "balance {value} months of inflows a month over the last 12 months",
        "months of inflows a month",
        "trend_decimal",
        zero="balance flat over the last 12 months",
    ),
    _e(
        "ODU01",
        "overdraft_use_1m",
        "overdraft peak use last month: {value} of the limit",
        "%",
        "percent",
        missing="no overdraft limit last month",
    ),
    _e(
        "ODU03",
        "overdraft_use_3m",
        "overdraft peak use over the last 3 months: {value} of the limit on average",
        "%",
        "percent",
        missing="no overdraft limit in the last 3 months",
    ),
    _e(
        "ODU12",
        "overdraft_use_12m",
        "overdraft peak use over the last 12 months: {value} of the limit on average",
        "%",
        "percent",
        missing="no overdraft limit in the last 12 months",
    ),
    _e(
        "ODM03",
        "overdraft_months_3m",
        "in overdraft in {value} of the last 3 months",
        "months",
        "count",
        zero="not in overdraft in the last 3 months",
    ),
    _e(
        "ODM06",
        "overdraft_months_6m",
        "in overdraft in {value} of the last 6 months",
        "months",
        "count",
        zero="not in overdraft in the last 6 months",
    ),
    _e(
        "ODM12",
        "overdraft_months_12m",
        "in overdraft in {value} of the last 12 months",
        "months",
        "count",
        zero="not in overdraft in the last 12 months",
    ),
    _e(
        "ODD03",
        "overdraft_days_3m",
        "{value} day{s} in overdraft over the last 3 months",
        "days",
        "count",
        zero="no day in overdraft over the last 3 months",
    ),
    _e(
        "ODD12",
        "overdraft_days_12m",
        "{value} day{s} in overdraft over the last 12 months",
        "days",
        "count",
        zero="no day in overdraft over the last 12 months",
    ),
    _e(
        "DPD01",
        "dpd_1m",
        "payments {value} day{s} past due last month",
        "days",
        "count",
        zero="no payment past due last month",
    ),
    _e(
        "DPD03",
        "dpd_3m",
        "payments {value} day{s} past due in the last 3 months",
        "days",
        "count",
        zero="no payment past due in the last 3 months",
        note="the most days past due on any credit facility in the window",
    ),
    _e(
        "DPD06",
        "dpd_6m",
        "payments {value} day{s} past due in the last 6 months",
        "days",
        "count",
        zero="no payment past due in the last 6 months",
    ),
    _e(
        "DPD12",
        "dpd_12m",
        "payments {value} day{s} past due in the last 12 months",
        "days",
        "count",
        zero="no payment past due in the last 12 months",
    ),
    _e(
        "DPDLS",
        "months_since_dpd",
        "last late payment {value} month{s} ago",
        "months",
        "count",
        zero="a payment past due this month",
        never="no late payment on record",
    ),
    _e(
        "DPD30",
        "months_since_dpd30",
        "last payment 30+ days late {value} month{s} ago",
        "months",
        "count",
        zero="a payment 30+ days late this month",
        never="no payment 30+ days late on record",
    ),
    _e(
        "RET03",
        "returned_payments_3m",
        "{value} returned payment{s} in the last 3 months",
        "payments",
        "count",
        zero="no returned payment in the last 3 months",
    ),
    _e(
        "RET12",
        "returned_payments_12m",
        "{value} returned payment{s} in the last 12 months",
        "payments",
        "count",
        zero="no returned payment in the last 12 months",
    ),
    _e(
        "TRX03",
        "tx_count_3m_log",
        "{value} transaction{s} a month over the last 3 months",
        "transactions a month",
        "log_count",
    ),
    _e(
        "INT03",
        "intl_share_3m",
        "cross-border payments: {value} of payment flows over the last 3 months",
        "%",
        "percent",
    ),
    _e(
        "INTYY",
        "intl_growth_yoy",
        "cross-border payments over the last 3 months {value} on a year earlier",
        "%",
        "signed_percent",
        missing="growth of cross-border payments: not known (none a year earlier)",
    ),
    _e(
        "PAY03",
        "payroll_share_3m",
        "salary payments: {value} of outflows over the last 3 months",
        "%",
        "percent",
    ),
    _e(
        "CRD03",
        "card_spend_share_3m",
        "card spending: {value} of outflows over the last 3 months",
        "%",
        "percent",
    ),
    _e(
        "ACQ03",
        "acquiring_share_3m",
        "card-acquiring receipts: {value} of inflows over the last 3 months",
        "%",
        "percent",
    ),
    _e("SEG01", "segment", "client segment: {value}", "segment", "category"),
    _e("SEC01", "sector", "sector of activity: {value}", "NACE section", "category"),
    _e("REG01", "region", "region: {value}", "region", "category"),
    _e(
        "AGE01",
        "business_age_months",
        "business founded {value} month{s} ago ({years} years)",
        "months",
        "count",
        missing="date the business was founded: not known",
    ),
    _e("EMP01", "employees_log", "{value} employee{s}", "employees", "log_count"),
    _e(
        "TOV01",
        "turnover_log",
        "declared annual turnover: {value}",
        AMOUNT,
        "money",
        missing="no annual turnover declared",
    ),
    _e(
        "ITO01",
        "inflow_to_turnover",
        "account inflows over 12 months: {value} of declared turnover",
        "%",
        "percent",
        missing="account inflows against declared turnover: not known (no turnover declared)",
    ),
    _e(
        "TEN01",
        "tenure_months",
        "client of the bank for {value} month{s} ({years} years)",
        "months",
        "count",
    ),
    _e(
        "PRD01",
        "n_products",
        "holds {value} product{s} with the bank",
        "products",
        "count",
        zero="holds no product with the bank",
    ),
    _e(
        "PRD02",
        "n_credit_products",
        "holds {value} credit product{s} with the bank",
        "products",
        "count",
        zero="holds no credit product with the bank",
    ),
    _e(
        "PRD03",
        "products_opened_12m",
        "{value} product{s} opened in the last 12 months",
        "products",
        "count",
        zero="no product opened in the last 12 months",
    ),
    _e(
        "PRD04",
        "products_closed_12m",
        "{value} product{s} closed in the last 12 months",
        "products",
        "count",
        zero="no product closed in the last 12 months",
    ),
    _e(
        "DEF02",
        "prior_default",
        "an earlier default on record",
        "yes/no",
        "flag",
        zero="no earlier default on record",
    ),
    _e(
        "DEF03",
        "months_since_default",
        "last default {value} month{s} ago",
        "months",
        "count",
        zero="a default this month",
        never="no default on record",
    ),
    _e(
        "RST12",
        "restructured_12m",
        "a credit facility restructured in the last 12 months",
        "yes/no",
        "flag",
        zero="no restructuring in the last 12 months",
    ),
    _e(
        "FIN01",
        "fin_ebitda_margin",
        "EBITDA margin in the latest annual accounts: {value}",
        "%",
        "percent",
        missing=f"{_NO_ACCOUNTS} (EBITDA margin not known)",
    ),
    _e(
        "FIN02",
        "fin_debt_to_assets",
        "debt in the latest annual accounts: {value} of total assets",
        "%",
        "percent",
        missing=f"{_NO_ACCOUNTS} (debt against assets not known)",
    ),
    _e(
        "FIN03",
        "fin_debt_to_ebitda",
        "debt in the latest annual accounts: {value} times EBITDA",
        "times EBITDA",
        "decimal",
        missing="debt against EBITDA: not known (no annual accounts, or EBITDA not positive)",
    ),
    _e(
        "FIN04",
        "fin_equity_ratio",
        "equity in the latest annual accounts: {value} of total assets",
        "%",
        "percent",
        missing=f"{_NO_ACCOUNTS} (equity ratio not known)",
    ),
    _e(
        "FIN05",
        "fin_current_ratio",
        "current assets in the latest annual accounts: {value} times current liabilities",
        "times current liabilities",
        "decimal",
        missing=f"{_NO_ACCOUNTS} (current ratio not known)",
    ),
    _e(
        "FIN06",
        "fin_revenue_growth",
        "revenue in the latest annual accounts {value} on the year before",
        "%",
        "signed_percent",
        missing="revenue growth: not known (no accounts of two consecutive years)",
    ),
    _e(
        "FIN07",
        "fin_age_months",
        "latest annual accounts closed {value} month{s} ago",
        "months",
        "count",
        missing=_NO_ACCOUNTS,
        is_reason=False,
        note="describes the extract, not the client: the contract gives accounts a year, not a "
        "filing date, so this counts the months since that year's end and, for a client who "
        "files every year, only cycles with the snapshot's calendar month",
    ),
    # cross-sell: the candidate product of the row
    _e(
        "XPC12",
        "product_closed_12m",
        "this product was closed in the last 12 months",
        "yes/no",
        "flag",
        zero="this product was not closed in the last 12 months",
    ),
    _e(
        "XPS01",
        "product_months_since_held",
        "this product last held {value} month{s} ago",
        "months",
        "count",
        zero="this product held until this month",
        never="this product never held",
    ),
    _e(
        "XPR01",
        PRODUCT,
        "product offered: {value}",
        "product",
        "category",
        is_reason=False,
        note="the product offered, not a fact about the client",
    ),
)

#: Patterned cross-sell features, one per catalog product: ``holds_<code>``, ``months_held_<code>``.
HOLDS_PREFIX = "holds_"
MONTHS_HELD_PREFIX = "months_held_"
