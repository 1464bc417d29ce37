"""The synthetic bank: a seeded generator of every contract table plus the ground truth.

This package owns the generative process documented in ``docs/synthetic-bank.md``. Its modules,
from the bottom up: ``catalog`` (the products and how firms come to need them), ``parameters``
(the numbers of the process), ``arrays`` (shared numeric and Arrow helpers), ``bank`` (the
bank-wide frame: common factors, segments, relationship managers), ``truth`` (the exact
probabilities behind defaults and adoptions), ``observed`` (what the bank's books show),
``simulation`` (one chunk of clients, month by month) and ``generator`` (the entry point:
arguments, the atomic output folder, the streaming Parquet writer).
"""

from __future__ import annotations

from rmreco.synthetic.catalog import CATALOG, PRODUCT_CODES, ProductSpec
from rmreco.synthetic.generator import (
    DEFAULT_CHUNK_CLIENTS,
    MIN_MONTHS,
    GenerationSummary,
    generate_bank,
)
from rmreco.synthetic.truth import TRUTH_CROSS_SELL_COLUMNS, TRUTH_PD_COLUMNS

__all__ = [
    "CATALOG",
    "DEFAULT_CHUNK_CLIENTS",
    "MIN_MONTHS",
    "PRODUCT_CODES",
    "TRUTH_CROSS_SELL_COLUMNS",
    "TRUTH_PD_COLUMNS",
    "GenerationSummary",
    "ProductSpec",
    "generate_bank",
]
