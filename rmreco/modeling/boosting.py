"""This module owns the one way rmreco fits a LightGBM binary classifier (deterministic, on the
encoder's matrix, early-stopped on a validation period when it holds both outcomes), and the
checks of a fit set's size and of a fitted model's trees that keep a small book from
degenerating in silence.

A fit set held elsewhere (on the workers of a Dask cluster: ``rmreco.training.distributed``) is
described to the estimators by a :class:`HeldFitSet`: its size, its categorical levels and a
function that fits the booster there with the same parameters (:func:`booster_params`) and the
same early-stopping rule (:class:`ValidationStopping`). Nothing here imports Dask.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np

from rmreco.modeling.encoding import FeatureEncoder
from rmreco.modeling.metrics import auc


def booster_params(
    params: dict[str, Any], *, seed: int, monotone: Sequence[int] | None = None
) -> dict[str, Any]:
    """LightGBM's parameters of a binary classifier: rmreco's defaults (binary objective, log
    loss then AUC, deterministic, seeded), the monotone directions, then ``params`` (the
    spec's), which override them."""
    return {
        "objective": "binary",
        "metric": ["binary_logloss", "auc"],
        "verbosity": -1,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        **({"monotone_constraints": list(monotone)} if monotone is not None else {}),
        **params,
    }


def stops_early(y_val: np.ndarray, early_stopping_rounds: int | None) -> bool:
    """Whether a fit stops early on a validation set of labels ``y_val``: it must hold both
    outcomes (a log loss of one class only says nothing about ranking)."""
    return bool(early_stopping_rounds) and len(np.unique(y_val)) > 1


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
    full = booster_params(params, seed=seed, monotone=monotone)
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
    if early_stopping_rounds and stops_early(y_val, early_stopping_rounds):  # (narrows the type)
        valid = [lgb.Dataset(X_val, label=y_val, reference=fit_set)]
        callbacks.append(
            lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)
        )
    return lgb.train(
        full, fit_set, num_boost_round=num_boost_round, valid_sets=valid, callbacks=callbacks
    )


class ValidationStopping:
    """LightGBM's early stopping (``lgb.early_stopping(rounds, first_metric_only=True)``: stop
    when the first metric has not improved for ``rounds`` rounds, keep the best round) measured
    on a validation matrix the callback holds, not on a validation set of the booster.

    A fit spread over several machines (``lightgbm.dask``) evaluates its validation sets on each
    worker's share of them only; this callback, copied to every worker with the whole
    validation set, gives every worker the same measure of the same model, so they all stop at
    the same round. Each round adds the new tree's raw scores to a running total: one tree's
    prediction per round. The measure is the first metric of ``params["metric"]`` as
    :func:`booster_params` resolves it: ``binary_logloss`` (LightGBM's, with its clipping) or
    ``auc``.

    Raises:
        ValueError: at construction, a first metric other than those two.
    """

    #: after the round's evaluation, as ``lgb.early_stopping``
    order = 30
    before_iteration = False

    def __init__(
        self, X_val: np.ndarray, y_val: np.ndarray, rounds: int, metric: str = "binary_logloss"
    ) -> None:
        if metric not in ("binary_logloss", "auc"):
            raise ValueError(
                f"early stopping on a cluster measures binary_logloss or auc; the first metric "
                f"of the spec's params is {metric!r}"
            )
        self.X_val = np.asarray(X_val, dtype=np.float64)
        self.y_val = np.asarray(y_val, dtype=np.float64)
        self.rounds = rounds
        self.metric = metric
        self._raw = np.zeros(len(self.y_val))
        self._best = math.inf
        self._best_round = 0

    @classmethod
    def for_params(
        cls, X_val: np.ndarray, y_val: np.ndarray, rounds: int, params: dict[str, Any]
    ) -> ValidationStopping:
        """The callback measuring the first metric of ``params`` (resolved LightGBM params)."""
        metric = params.get("metric", "binary_logloss")
        first = metric[0] if isinstance(metric, list | tuple) else str(metric).split(",")[0]
        return cls(X_val, y_val, rounds, {"binary": "binary_logloss"}.get(first, first))

    def _loss(self) -> float:
        """The measure to minimise: log loss, or minus the AUC."""
        if self.metric == "auc":
            return -auc(self.y_val.astype(int), self._raw)
        p = 1.0 / (1.0 + np.exp(-self._raw))
        # LightGBM's BinaryLoglossMetric: log(eps) where the probability is below its epsilon
        eps = float(np.float32(1e-15))
        positive = self.y_val > 0
        point = np.where(
            positive,
            -np.log(np.where(p > eps, p, eps)),
            -np.log(np.where(1.0 - p > eps, 1.0 - p, eps)),
        )
        return float(point.mean())

    def __call__(self, env: lgb.callback.CallbackEnv) -> None:
        if env.iteration == env.begin_iteration:
            self._raw = np.zeros(len(self.y_val))
            self._best, self._best_round = math.inf, env.iteration
        model = env.model
        assert isinstance(model, lgb.Booster)
        self._raw += np.asarray(
            model.predict(
                self.X_val, raw_score=True, start_iteration=env.iteration, num_iteration=1
            )
        )
        loss = self._loss()
        if env.iteration == env.begin_iteration or loss < self._best:
            self._best, self._best_round = loss, env.iteration
        value = -self._best if self.metric == "auc" else self._best
        result = [lgb.EvalResult("validation", self.metric, value, self.metric == "auc")]
        if (
            env.iteration - self._best_round >= self.rounds
            or env.iteration == env.end_iteration - 1
        ):
            raise lgb.callback.EarlyStopException(self._best_round, result)


@dataclass(frozen=True)
class FitRows:
    """The rows of a held fit set a booster is fitted on: those whose ``column`` holds one of
    ``values`` (the cross-sell job's per-product models, or its stacked model without the
    products left out of the run)."""

    column: str
    values: tuple[str, ...]


class BoosterFitter(Protocol):
    """Fits a booster on a fit set it holds itself, as :func:`fit_binary_booster` fits one on
    the rows it is given: the same parameters, stopped early on (X_val, y_val) by the same rule,
    on the rows ``rows`` selects (all of them when None), each weighted as the set says.
    """

    def __call__(
        self,
        X_val: np.ndarray,
        y_val: np.ndarray,
        *,
        encoder: FeatureEncoder,
        params: dict[str, Any],
        num_boost_round: int,
        early_stopping_rounds: int | None,
        seed: int,
        monotone: Sequence[int] | None = None,
        rows: FitRows | None = None,
    ) -> lgb.Booster: ...


@dataclass(frozen=True)
class GroupCount:
    """The rows of one group of a held fit set (one product's), and its positive labels."""

    rows: int
    positives: int


@dataclass(frozen=True)
class HeldFitSet:
    """A fit set an estimator does not hold (it stays on a cluster's workers), of which the fit
    frame the estimator is given is a sample (whole clients): what the estimator reads of the
    whole set, and the function that fits LightGBM on it. The models fitted on the frame (the
    scorecard, the baselines) see the sample; LightGBM sees every row."""

    #: the whole set's rows, and those of its rarer outcome
    rows: int
    events: int
    #: the sorted levels of each text column over the whole set (the encoder's categories)
    levels: Mapping[str, tuple[str, ...]]
    fit_booster: BoosterFitter
    #: the rows and positive labels of each value of the column the set is grouped by (the
    #: cross-sell job's products); empty when the set is not grouped
    groups: Mapping[str, GroupCount] = field(default_factory=dict)

    def encoder(self, sample: FeatureEncoder) -> FeatureEncoder:
        """``sample`` (an encoder fitted on the sample) with the whole set's levels.

        Raises:
            ValueError: a categorical feature of ``sample`` has no levels recorded here.
        """
        missing = [name for name in sample.categories if name not in self.levels]
        if missing:
            raise ValueError(f"the fit set records no levels of {', '.join(missing)}")
        return FeatureEncoder(
            features=sample.features,
            categories={name: tuple(self.levels[name]) for name in sample.categories},
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
