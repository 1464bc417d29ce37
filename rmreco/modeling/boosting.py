"""The one way rmreco fits a LightGBM binary classifier: deterministic, on the encoder's matrix,
early-stopped on a validation period when it holds both outcomes."""

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
