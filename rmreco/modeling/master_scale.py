"""The master scale: PD bands to grades, and back to a grade's PD range."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_GRADE = "D"


@dataclass(frozen=True)
class MasterScale:
    """Grades with increasing upper PD bounds; the last grade is open-ended, D is default."""

    grades: tuple[str, ...]
    upper_bounds: tuple[float, ...]  # one fewer than grades

    def __post_init__(self) -> None:
        if len(self.upper_bounds) != len(self.grades) - 1:
            raise ValueError("a master scale needs one bound fewer than grades")
        if list(self.upper_bounds) != sorted(set(self.upper_bounds)):
            raise ValueError("master scale bounds must increase strictly")

    @classmethod
    def from_bands(cls, bands: Sequence[tuple[str, float | None]]) -> MasterScale:
        return cls(
            grades=tuple(g for g, _ in bands),
            upper_bounds=tuple(float(b) for _, b in bands[:-1] if b is not None),
        )

    def grade(self, pd_values: np.ndarray | Sequence[float]) -> np.ndarray:
        """The grade of each PD: the first band whose upper bound exceeds it."""
        values = np.asarray(pd_values, dtype=float)
        index = np.searchsorted(np.asarray(self.upper_bounds), values, side="right")
        return np.asarray(self.grades, dtype=object)[index]

    def rank(self, grade: str) -> int:
        """0 for the best grade; the default grade ranks after every other."""
        if grade == DEFAULT_GRADE:
            return len(self.grades)
        return self.grades.index(grade)

    def band(self, grade: str) -> tuple[float, float]:
        """The PD range [low, high) of a grade."""
        i = self.rank(grade)
        if i >= len(self.grades):
            return (1.0, 1.0)
        low = 0.0 if i == 0 else self.upper_bounds[i - 1]
        high = self.upper_bounds[i] if i < len(self.upper_bounds) else 1.0
        return (low, high)
