"""The synthetic bank: a seeded generator of every contract table plus the ground truth.

This package owns the generative process documented in ``docs/synthetic-bank.md``. Its modules,
from the bottom up: ``catalog`` (the products and how clients come to need them), ``arrays``
(shared numeric and Arrow helpers), ``parameters`` (the numbers of the process and the two
populations, firms and persons), ``bank`` (the bank-wide frame: common factors, segments,
relationship managers), ``truth`` (the exact probabilities behind defaults and adoptions),
``observed`` (what the bank's books show of firms, and any client's spells and events),
``lifecycle`` (a chunk of one population, month by month), ``personal`` (persons: traits,
accounts, tables), ``names`` (the clients' names: firms' legal names, persons' names),
``simulation`` (one chunk: firms and persons, merged in client order, named) and
``generator`` (the entry point: arguments, the atomic output folder, the streaming Parquet
writer). Beside them, the shapes of extract banks send, written from the same bank:
``shape_options`` (their names and knobs), ``ratios`` (the statements' extra ratio columns),
``extracts`` (month-end dates, one row per account), ``applications`` (an application sample's
client attributes) and ``shapes`` (:func:`~rmreco.synthetic.shapes.write_shape`; imported from
there, not from this package, as it needs pandas).
"""

from __future__ import annotations

from rmreco.synthetic.catalog import (
    BUSINESS_PRODUCT_CODES,
    CATALOG,
    PERSONAL_PRODUCT_CODES,
    PRODUCT_CODES,
    ProductSpec,
)
from rmreco.synthetic.generator import (
    DEFAULT_CHUNK_CLIENTS,
    MIN_MONTHS,
    GenerationSummary,
    generate_bank,
)
from rmreco.synthetic.truth import TRUTH_CROSS_SELL_COLUMNS, TRUTH_PD_COLUMNS

__all__ = [
    "BUSINESS_PRODUCT_CODES",
    "CATALOG",
    "DEFAULT_CHUNK_CLIENTS",
    "MIN_MONTHS",
    "PERSONAL_PRODUCT_CODES",
    "PRODUCT_CODES",
    "TRUTH_CROSS_SELL_COLUMNS",
    "TRUTH_PD_COLUMNS",
    "GenerationSummary",
    "ProductSpec",
    "generate_bank",
]
