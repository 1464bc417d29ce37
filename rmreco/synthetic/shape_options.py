"""This module owns the names of the shapes of extract the synthetic bank is written in
(:class:`Shape`), a line on each, and their knobs (:class:`ShapeOptions`). It imports no data
library, so that the command line can offer the shapes without loading one;
``rmreco.synthetic.shapes`` writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from rmreco.synthetic.ratios import RATIO_COLUMNS


class Shape(StrEnum):
    """A shape of bank extract the generator writes."""

    FULL = "full"
    MONTH_END = "month_end"
    ACCOUNTS = "accounts"
    SINGLE_COHORT = "single_cohort"
    STATEMENTS_ONLY = "statements_only"
    ATTRIBUTES_ONLY = "attributes_only"
    RARE_PRODUCT = "rare_product"
    SMALL_BOOK = "small_book"


@dataclass(frozen=True)
class ShapeOptions:
    """The knobs of the shapes (each read by the shapes named)."""

    #: single_cohort: account months kept from the start of the window ("six statements" and
    #: the month they describe).
    cohort_months: int = 7
    #: single_cohort and attributes_only: months of outcome after the last month observed.
    outcome_months: int = 12
    #: attributes_only: the observation month (a first of month); None for the last month
    #: with ``outcome_months`` of history after it.
    observation_month: date | None = None
    #: rare_product: the product made rare, and how many adoptions of it are kept.
    rare_product: str = "fx_hedging"
    rare_adopters: int = 3
    #: small_book: clients kept (the first ones by id; the bank must have more).
    small_book_clients: int = 1300


#: The shapes whose data holds one outcome window (a few months or statements, then the
#: outcome): too few outcome months for an out-of-time split, so a spec trained on them sets
#: ``split.kind: client`` (``rmreco data check`` says the same of a bank's own extract).
ONE_OUTCOME_WINDOW: frozenset[Shape] = frozenset(
    {Shape.SINGLE_COHORT, Shape.STATEMENTS_ONLY, Shape.ATTRIBUTES_ONLY}
)

_DEFAULTS = ShapeOptions()
#: One line per shape: what it writes with the default options (the CLI's help lists them).
SHAPE_HELP: dict[Shape, str] = {
    Shape.FULL: "every contract table as generated",
    Shape.MONTH_END: "every month column dated on the month's last day",
    Shape.ACCOUNTS: "account_months as 2-3 accounts per client-month, with account_id",
    Shape.SINGLE_COHORT: f"the first {_DEFAULTS.cohort_months} account months, then "
    f"{_DEFAULTS.outcome_months} months of credit events",
    Shape.STATEMENTS_ONLY: "no account_months; every firm's statements with "
    f"{len(RATIO_COLUMNS)} extra ratios",
    Shape.ATTRIBUTES_ONLY: "clients with the bank's attributes at one month, an undated "
    "default status",
    Shape.RARE_PRODUCT: f"{_DEFAULTS.rare_product} kept for {_DEFAULTS.rare_adopters} adopters",
    Shape.SMALL_BOOK: f"the first {_DEFAULTS.small_book_clients:,} clients of the bank",
}
