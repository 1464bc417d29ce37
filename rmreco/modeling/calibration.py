"""Probability calibration of raw model scores (log-odds), fitted on a period of its own.

Platt scaling (a logistic regression on the raw log-odds) keeps the ranking exactly and corrects
the level and slope; isotonic regression corrects any monotone shape but ties neighbouring scores.
Both are stored as plain numbers so that the model travels as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

Method = Literal["platt", "isotonic"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


@dataclass(frozen=True)
class Calibrator:
    """Maps raw log-odds to calibrated probabilities."""

    method: Method
    slope: float = 1.0
    intercept: float = 0.0
    x_points: tuple[float, ...] = ()
    y_points: tuple[float, ...] = ()

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray, method: Method = "platt") -> Calibrator:
        """Fit on raw scores of the calibration period and their outcomes (0/1).

        Raises:
            ValueError: the outcomes hold a single class, so nothing can be calibrated.
        """
        raw = np.asarray(raw, dtype=float)
        y = np.asarray(y, dtype=int)
        if len(np.unique(y)) < 2:
            raise ValueError("the calibration period holds a single outcome class")
        if method == "platt":
            # a very weak penalty: two parameters on tens of thousands of rows
            lr = LogisticRegression(C=1e6, max_iter=1000)
            lr.fit(raw.reshape(-1, 1), y)
            return cls(
                method="platt", slope=float(lr.coef_[0, 0]), intercept=float(lr.intercept_[0])
            )
        iso = IsotonicRegression(y_min=1e-6, y_max=1 - 1e-6, out_of_bounds="clip")
        iso.fit(raw, y)
        return cls(
            method="isotonic",
            x_points=tuple(float(v) for v in iso.X_thresholds_),
            y_points=tuple(float(v) for v in iso.y_thresholds_),
        )

    def transform(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        if self.method == "platt":
            return sigmoid(self.slope * raw + self.intercept)
        return np.interp(raw, np.asarray(self.x_points), np.asarray(self.y_points))

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "slope": self.slope,
            "intercept": self.intercept,
            "x_points": list(self.x_points),
            "y_points": list(self.y_points),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        return cls(
            method=data["method"],
            slope=data["slope"],
            intercept=data["intercept"],
            x_points=tuple(data["x_points"]),
            y_points=tuple(data["y_points"]),
        )
