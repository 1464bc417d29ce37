"""This module owns the one way rmreco fits a LightGBM binary classifier (deterministic, on the
encoder's matrix, early-stopped on a validation period when it holds both outcomes), and the
checks of a fit set's size and of a fitted model's trees that keep a small book from
degenerating in silence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightgbm as lgb
import numpy as np

from rmreco.modeling.encoding import FeatureEncoder


def fit_binary_booster(
    X_fit: np.ndarray,
    y_fit: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    encoder: FeatureEncoder,
    params: dict[str, Any],
    num_boost_round: int,
    early_stopping_rounds: int | None,
    seed: int,
    weight: np.ndarray | None = None,
    monotone: Sequence[int] | None = None,
) -> lgb.Booster:
    """Fit on (X_fit, y_fit), stopping early on (X_val, y_val) by log loss.

    ``params`` (the spec's) override the defaults here; ``monotone`` gives each feature's
    direction (+1 never lowers the score, -1 never raises it, 0 free).
    """
    full: dict[str, Any] = {
        "objective": "binary",
        "metric": ["binary_logloss", "auc"],
        "verbosity": -1,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        **({"monotone_constraints": list(monotone)} if monotone is not None else {}),
        **params,
    }
    fit_set = lgb.Dataset(
        X_fit,
        label=y_fit,
        weight=weight,
        feature_name=list(encoder.features),
        categorical_feature=encoder.categorical_indices,
        free_raw_data=True,
    )
    callbacks: list[Any] = []
    valid: list[lgb.Dataset] = []
    if early_stopping_rounds and len(np.unique(y_val)) > 1:
        valid = [lgb.Dataset(X_val, label=y_val, reference=fit_set)]
        callbacks.append(
            lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)
        )
    return lgb.train(
        full, fit_set, num_boost_round=num_boost_round, valid_sets=valid, callbacks=callbacks
    )


#: A fit set with fewer rows than this is tiny: the model card and the CLI warn about it
TINY_FIT_ROWS = 1000
#: ... or with fewer outcomes of its rarer class (defaults, adoptions) than this
TINY_FIT_EVENTS = 30


def fit_set_warnings(rows: int, events: int, min_data_in_leaf: int, what: str) -> list[str]:
    """Warnings about a fit set of ``rows`` rows holding ``events`` outcomes of its rarer class
    for a LightGBM model whose leaves need ``min_data_in_leaf`` rows (``what`` names the model
    in the words of the warning): a tiny fit set (fewer than :data:`TINY_FIT_ROWS` rows or
    :data:`TINY_FIT_EVENTS` events), and leaves too large for the tree to split at all."""
    out = []
    if rows < TINY_FIT_ROWS or events < TINY_FIT_EVENTS:
        out.append(
            f"{what}: tiny fit set ({rows:,} rows, {events:,} events; warned below "
            f"{TINY_FIT_ROWS:,} rows or {TINY_FIT_EVENTS} events): its measures are noisy"
        )
    if rows < 2 * min_data_in_leaf:
        out.append(
            f"{what}: min_data_in_leaf {min_data_in_leaf:,} is more than half the {rows:,} fit "
            "rows, so no tree can split; state it as a share (min_data_in_leaf_share)"
        )
    return out


def has_split(booster: lgb.Booster) -> bool:
    """Whether any tree the booster predicts with (up to its best iteration) has a split; a
    booster whose every tree is a single leaf gives every row the same score."""
    trees = booster.dump_model(num_iteration=booster.best_iteration or None)["tree_info"]
    return any(int(tree.get("num_leaves", 1)) > 1 for tree in trees)
