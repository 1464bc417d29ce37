"""A logistic-regression scorecard on weight-of-evidence bins: the baseline credit model.

Each numeric feature is cut at quantiles of the fitting data, each categorical level is its own
bin, and a missing value is a bin of its own. A bin's weight of evidence is the log of its
defaulters' share over its non-defaulters' share (smoothed), so higher means riskier; a
logistic regression on the WoE values gives log-odds whose per-feature terms are the reasons.

A feature with a monotone direction keeps it: adjacent value bins whose default rates run
against the direction are pooled (isotonic regression of the bins' default rates, weighted by
their counts) before their WoE is computed, and a feature whose coefficient comes out negative
(which would turn its WoE around) is left out of the regression, which is refitted without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression


class WoeScorecard:
    """scikit-learn style: ``__init__`` stores parameters, ``fit`` learns and returns ``self``."""

    def __init__(self, bins: int = 8, C: float = 1.0, random_state: int = 0) -> None:
        self.bins = bins
        self.C = C
        self.random_state = random_state

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        categorical: Sequence[int] = (),
        monotone: Sequence[int] = (),
    ) -> WoeScorecard:
        """Learn bins, WoE values and the regression from a float matrix and 0/1 outcomes;
        ``monotone`` gives each column's direction (+1 the risk never falls as the value rises,
        -1 never rises, 0 free; empty: all free)."""
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=int)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError("X must be a 2-d matrix with one row per outcome")
        if len(np.unique(y)) < 2:
            raise ValueError("the fitting data holds a single outcome class")
        directions = list(monotone) or [0] * X.shape[1]
        if len(directions) != X.shape[1]:
            raise ValueError("monotone needs one direction per column")
        self.categorical_ = tuple(sorted(set(categorical)))
        self.edges_: list[list[float]] = []
        self.woe_: list[list[float]] = []
        for j in range(X.shape[1]):
            edges = self._edges(X[:, j], j in self.categorical_)
            self.edges_.append(edges)
            index = self._bin(X[:, j], j, edges)
            direction = 0 if j in self.categorical_ else int(np.sign(directions[j]))
            self.woe_.append(self._woe(index, y, len(edges) + 2, direction))
        W = self.woe_matrix(X)
        used = np.ones(X.shape[1], dtype=bool)
        constrained = np.asarray(directions) != 0
        while True:
            model = LogisticRegression(C=self.C, max_iter=2000, random_state=self.random_state)
            model.fit(W[:, used], y)
            coef = np.zeros(X.shape[1])
            coef[used] = model.coef_[0]
            wrong = used & constrained & (coef < 0)
            if not wrong.any() or not (used & ~wrong).any():
                coef[wrong] = 0.0
                break
            used &= ~wrong
        self.coef_ = coef.astype(float)
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
    def _woe(index: np.ndarray, y: np.ndarray, n_bins: int, direction: int = 0) -> list[float]:
        size = max(n_bins, int(index.max()) + 1)
        bad = np.bincount(index, weights=y, minlength=size)
        total = np.bincount(index, minlength=size).astype(float)
        good = total - bad
        woe = np.log((bad + 0.5) / (bad.sum() + 0.5)) - np.log((good + 0.5) / (good.sum() + 0.5))
        woe[total == 0] = 0.0  # a bin never seen carries no evidence
        if direction:
            woe = _monotone(woe, bad, total, direction)
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


def _monotone(woe: np.ndarray, bad: np.ndarray, total: np.ndarray, direction: int) -> np.ndarray:
    """WoE of the value bins (all but bin 0, missing) following ``direction``: runs of adjacent
    bins whose default rates go against it are pooled (pool adjacent violators, weighted by
    count) and share the WoE of their pooled counts; a bin never seen takes its neighbour's."""
    out = woe.copy()
    seen = np.flatnonzero(total[1:] > 0) + 1
    if len(seen) < 2:
        return out
    iso = IsotonicRegression(increasing=direction > 0)
    rate = iso.fit_transform(seen.astype(float), bad[seen] / total[seen], sample_weight=total[seen])
    blocks = np.r_[0, np.cumsum(np.diff(rate) != 0)]
    b_all, g_all = bad.sum() + 0.5, (total - bad).sum() + 0.5
    for block in np.unique(blocks):
        bins = seen[blocks == block]
        b, n = bad[bins].sum(), total[bins].sum()
        out[bins] = np.log((b + 0.5) / b_all) - np.log((n - b + 0.5) / g_all)
    # smoothing can nudge two nearly equal pools out of order; bins never seen follow the
    # nearest seen bin below them (or above, before the first)
    values = out[1:]
    filled = pd.Series(np.where(total[1:] > 0, values, np.nan)).ffill().bfill().to_numpy()
    accumulate = np.maximum.accumulate if direction > 0 else np.minimum.accumulate
    out[1:] = accumulate(filled)
    return out
