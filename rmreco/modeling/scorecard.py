"""A logistic-regression scorecard on weight-of-evidence bins: the baseline credit model.

Each numeric feature is cut at quantiles of the fitting data, each categorical level is its own
bin, and a missing value is a bin of its own. A bin's weight of evidence is the log of its
defaulters' share over its non-defaulters' share (smoothed), so higher means riskier; a
logistic regression on the WoE values gives log-odds whose per-feature terms are the reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression


class WoeScorecard:
    """scikit-learn style: ``__init__`` stores parameters, ``fit`` learns and returns ``self``."""

    def __init__(self, bins: int = 8, C: float = 1.0, random_state: int = 0) -> None:
        self.bins = bins
        self.C = C
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray, categorical: Sequence[int] = ()) -> WoeScorecard:
        """Learn bins, WoE values and the regression from a float matrix and 0/1 outcomes."""
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=int)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError("X must be a 2-d matrix with one row per outcome")
        if len(np.unique(y)) < 2:
            raise ValueError("the fitting data holds a single outcome class")
        self.categorical_ = tuple(sorted(set(categorical)))
        self.edges_: list[list[float]] = []
        self.woe_: list[list[float]] = []
        for j in range(X.shape[1]):
            edges = self._edges(X[:, j], j in self.categorical_)
            self.edges_.append(edges)
            index = self._bin(X[:, j], j, edges)
            self.woe_.append(self._woe(index, y, len(edges) + 2))
        W = self.woe_matrix(X)
        model = LogisticRegression(C=self.C, max_iter=2000, random_state=self.random_state)
        model.fit(W, y)
        self.coef_ = model.coef_[0].astype(float)
        self.intercept_ = float(model.intercept_[0])
        return self

    def _edges(self, column: np.ndarray, is_categorical: bool) -> list[float]:
        present = column[~np.isnan(column)]
        if is_categorical or present.size == 0:
            return []
        qs = np.nanquantile(present, np.linspace(0, 1, self.bins + 1)[1:-1])
        return [float(v) for v in np.unique(qs)]

    def _bin(self, column: np.ndarray, j: int, edges: Sequence[float]) -> np.ndarray:
        """Bin index of each value: 0 is missing, then the quantile bins or category codes."""
        missing = np.isnan(column)
        if j in self.categorical_:
            index = np.where(missing, 0, np.nan_to_num(column, nan=0).astype(int) + 1)
        else:
            index = np.searchsorted(np.asarray(edges), np.nan_to_num(column), side="right") + 1
            index = np.where(missing, 0, index)
        return index.astype(int)

    @staticmethod
    def _woe(index: np.ndarray, y: np.ndarray, n_bins: int) -> list[float]:
        size = max(n_bins, int(index.max()) + 1)
        bad = np.bincount(index, weights=y, minlength=size)
        total = np.bincount(index, minlength=size).astype(float)
        good = total - bad
        woe = np.log((bad + 0.5) / (bad.sum() + 0.5)) - np.log((good + 0.5) / (good.sum() + 0.5))
        woe[total == 0] = 0.0  # a bin never seen carries no evidence
        return [float(v) for v in woe]

    def woe_matrix(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        W = np.zeros_like(X)
        for j in range(X.shape[1]):
            index = self._bin(X[:, j], j, self.edges_[j])
            table = np.asarray(self.woe_[j])
            W[:, j] = np.where(index < len(table), table[np.minimum(index, len(table) - 1)], 0.0)
        return W

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature log-odds terms, with the intercept as the last column (like LightGBM)."""
        terms = self.woe_matrix(X) * self.coef_
        return np.hstack([terms, np.full((len(terms), 1), self.intercept_)])

    def raw_score(self, X: np.ndarray) -> np.ndarray:
        """Log-odds of default."""
        return self.contributions(X).sum(axis=1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bins": self.bins,
            "C": self.C,
            "categorical": list(self.categorical_),
            "edges": self.edges_,
            "woe": self.woe_,
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WoeScorecard:
        card = cls(bins=data["bins"], C=data["C"])
        card.categorical_ = tuple(data["categorical"])
        card.edges_ = [list(e) for e in data["edges"]]
        card.woe_ = [list(w) for w in data["woe"]]
        card.coef_ = np.asarray(data["coef"], dtype=float)
        card.intercept_ = float(data["intercept"])
        return card
