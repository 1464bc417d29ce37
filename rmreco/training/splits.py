"""A train / calibrate / test split of snapshot rows, shared by the training jobs."""

from __future__ import annotations

from collections.abc import Sequence
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


def require_segments(clients: pd.DataFrame, segments: Sequence[str]) -> None:
    """Refuse data with no client of the spec's ``segments``, naming what it has.

    Raises:
        TrainingDataError: no client of those segments (the message counts the clients of
            each segment the data has, and names the spec setting to change).
    """
    counts = clients["segment"].astype(str).value_counts()
    if counts.reindex(list(segments)).fillna(0).sum() > 0:
        return
    has = ", ".join(f"{segment} {n:,}" for segment, n in counts.items()) or "no clients"
    raise TrainingDataError(
        f"the data has no client of the spec's segments ({', '.join(segments)}); its clients "
        f"are: {has}. Set `segments` in the spec to segments the data has."
    )
