"""Early stopping measured by the callback a cluster fit sends to every worker
(``ValidationStopping``) stops at the round LightGBM's own early stopping does, keeps the same
best round and score, and refuses a metric it does not measure."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from rmreco.modeling.boosting import ValidationStopping, booster_params


def _data(seed: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 5))
    p = 1 / (1 + np.exp(-(1.5 * X[:, 0] - X[:, 1] - 2 + rng.normal(size=rows))))
    return X, (rng.random(rows) < p).astype(int)


@pytest.mark.parametrize("metric", ["binary_logloss", "auc"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_it_stops_where_lightgbm_early_stopping_stops(seed: int, metric: str) -> None:
    X, y = _data(seed, 3000)
    X_val, y_val = _data(seed + 100, 800)
    params = booster_params(
        {"learning_rate": 0.3, "num_leaves": 15, "num_threads": 1, "metric": [metric]}, seed=seed
    )
    fit = lgb.Dataset(X, label=y)
    own = lgb.train(
        params,
        fit,
        num_boost_round=300,
        valid_sets=[lgb.Dataset(X_val, label=y_val, reference=fit)],
        callbacks=[lgb.early_stopping(10, first_metric_only=True, verbose=False)],
    )
    ours = lgb.train(
        params,
        lgb.Dataset(X, label=y),
        num_boost_round=300,
        callbacks=[ValidationStopping.for_params(X_val, y_val, 10, params)],
    )
    assert own.best_iteration < 300, "the case must stop early to test anything"
    assert ours.best_iteration == own.best_iteration
    assert ours.best_score["validation"][metric] == pytest.approx(
        own.best_score["valid_0"][metric], abs=1e-9
    )
    np.testing.assert_allclose(ours.predict(X_val), own.predict(X_val))


def test_without_improvement_to_the_last_round_it_keeps_the_best_one() -> None:
    X, y = _data(3, 2000)
    X_val, y_val = _data(103, 500)
    params = booster_params({"learning_rate": 0.01, "num_threads": 1}, seed=3)
    booster = lgb.train(
        params,
        lgb.Dataset(X, label=y),
        num_boost_round=25,
        callbacks=[ValidationStopping.for_params(X_val, y_val, 50, params)],
    )
    assert booster.best_iteration == 25  # still improving at a slow rate: every round kept


def test_a_metric_it_does_not_measure_is_refused() -> None:
    X, y = _data(0, 10)
    with pytest.raises(ValueError, match=r"binary_logloss or auc.*'rmse'"):
        ValidationStopping.for_params(X, y, 5, {"metric": ["rmse", "auc"]})
