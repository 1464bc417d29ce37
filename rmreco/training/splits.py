"""A train / calibrate / test split of snapshot rows, shared by the training jobs."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from rmreco.domain.errors import RmrecoError


class TrainingDataError(RmrecoError):
    """The data cannot support the requested training (too short a history, no defaults...)."""


@dataclass(frozen=True)
class Split:
    fit: pd.DataFrame
    calibration: pd.DataFrame
    test: pd.DataFrame

    def describe(self) -> dict[str, str]:
        """The months each part spans, as YYYY-MM..YYYY-MM."""

        def span(frame: pd.DataFrame) -> str:
            return f"{frame['month'].min():%Y-%m}..{frame['month'].max():%Y-%m}"

        return {
            "fit_period": span(self.fit),
            "calibration_period": span(self.calibration),
            "test_period": span(self.test),
        }
