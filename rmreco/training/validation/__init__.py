"""This module owns the validation report of a retrain: what the training jobs measure on the
test window beyond their metrics, the checks that can veto a promotion, and the sections the
model cards quote, one module per part. Pure functions over models, arrays and frames; no MLflow,
no files.

- credit (:func:`validate_credit`): AUC, Gini and KS with bootstrap intervals, calibration per
  grade with the Jeffreys test, PSI of the score and every feature (fit window against test
  window, and against the champion's fit window: :func:`psi_against`), the post-training
  monotonicity check (:func:`monotonicity_check`) whose violations veto promotion
  (:func:`monotonicity_veto`), and the scorecard's binning and points tables;
- cross-sell (:func:`product_validation`): per product the model's AUC with its interval and its
  top-decile lift against popularity, and the rule that ranks a product the model ranks no
  better than chance by its popularity rate instead (:func:`choose_rankers`).

The statistics themselves (bootstrap, Jeffreys, PSI) are :mod:`rmreco.modeling.metrics`.
"""

from __future__ import annotations

from rmreco.training.validation.credit import (
    CreditValidation,
    credit_card_section,
    psi_against,
    validate_credit,
)
from rmreco.training.validation.cross_sell import (
    CrossSellValidation,
    cross_sell_card_section,
    product_validation,
    validate_cross_sell,
)
from rmreco.training.validation.monotone import (
    MonotoneSweep,
    monotonicity_check,
    monotonicity_table,
    monotonicity_veto,
)
from rmreco.training.validation.products import Ranker, RankerChoice, choose_rankers, product_table
from rmreco.training.validation.scorecard_tables import scorecard_bins, scorecard_points
from rmreco.training.validation.window import TestWindow, WindowKind, psi_summary, split_window

__all__ = [
    "CreditValidation",
    "CrossSellValidation",
    "MonotoneSweep",
    "Ranker",
    "RankerChoice",
    "TestWindow",
    "WindowKind",
    "choose_rankers",
    "credit_card_section",
    "cross_sell_card_section",
    "monotonicity_check",
    "monotonicity_table",
    "monotonicity_veto",
    "product_table",
    "product_validation",
    "psi_against",
    "psi_summary",
    "scorecard_bins",
    "scorecard_points",
    "split_window",
    "validate_credit",
    "validate_cross_sell",
]
