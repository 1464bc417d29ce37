"""This module owns the post-training monotonicity check: each feature the spec constrains is
swept over its observed range for a sample of clients, every other feature held, and a PD that
moves against the declared direction vetoes the model's promotion, naming the feature."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class MonotoneSweep:
    """One constrained feature swept over a grid for a sample of clients."""

    feature: str
    #: +1: the PD must not fall as the feature rises; -1: it must not rise
    direction: int
    grid: np.ndarray
    #: predicted PD, one row per client of the sample, one column per grid value
    pd_values: np.ndarray
    tolerance: float

    @property
    def steps_against(self) -> np.ndarray:
        """Per client and step: whether the PD moved against the direction beyond tolerance."""
        if self.pd_values.shape[1] < 2:
            return np.zeros((len(self.pd_values), 0), dtype=bool)
        return np.asarray(self.direction * np.diff(self.pd_values, axis=1) < -self.tolerance)

    @property
    def clients_violating(self) -> int:
        return int(self.steps_against.any(axis=1).sum())

    @property
    def worst_move(self) -> float:
        """The largest move of the PD against the direction (0 when none)."""
        if self.pd_values.shape[1] < 2:
            return 0.0
        return float(max(0.0, np.max(-self.direction * np.diff(self.pd_values, axis=1))))


def monotonicity_check(
    predict: Callable[[np.ndarray], np.ndarray],
    sample: np.ndarray,
    observed: np.ndarray,
    constraints: Mapping[int, tuple[str, int]],
    *,
    grid_points: int = 21,
    tolerance: float = 1e-6,
) -> list[MonotoneSweep]:
    """Sweep each constrained column of ``sample`` (encoded rows of some clients) over the
    range of its values in ``observed`` (the rows whose range matters: their ``grid_points``
    quantiles and as many evenly spaced values), all other columns held, and record
    ``predict`` of every point.

    ``constraints`` maps a column index to the feature's name and direction (+1 increasing, -1
    decreasing). A feature with fewer than two distinct observed values has a one-point grid
    and cannot be violated.
    """
    out = []
    quantiles = np.linspace(0.0, 1.0, grid_points)
    for j, (name, direction) in constraints.items():
        column = observed[:, j]
        present = column[~np.isnan(column)]
        grid = np.zeros(0)
        if present.size:
            # quantiles follow where clients are; an even spacing of the range fills the gaps
            # that zero-inflated counts (days past due) leave between their quantiles
            even = np.linspace(present.min(), present.max(), grid_points)
            grid = np.unique(np.r_[np.quantile(present, quantiles), even])
        if len(grid) == 0 or len(sample) == 0:
            out.append(MonotoneSweep(name, direction, grid, np.zeros((len(sample), 0)), tolerance))
            continue
        swept = np.repeat(sample, len(grid), axis=0)
        swept[:, j] = np.tile(grid, len(sample))
        values = np.asarray(predict(swept), dtype=float).reshape(len(sample), len(grid))
        out.append(MonotoneSweep(name, direction, grid, values, tolerance))
    return out


def monotonicity_table(sweeps: Sequence[MonotoneSweep]) -> pd.DataFrame:
    """Per constrained feature: direction, grid points, clients swept, clients and steps
    against the direction, and the largest move against it."""
    rows = [
        {
            "feature": s.feature,
            "direction": "increasing" if s.direction > 0 else "decreasing",
            "grid_points": len(s.grid),
            "clients": len(s.pd_values),
            "clients_violating": s.clients_violating,
            "steps_violating": int(s.steps_against.sum()),
            "worst_move": s.worst_move,
        }
        for s in sweeps
    ]
    columns = [
        "feature",
        "direction",
        "grid_points",
        "clients",
        "clients_violating",
        "steps_violating",
        "worst_move",
    ]
    return pd.DataFrame(rows, columns=columns).set_index("feature")


def monotonicity_veto(sweeps: Sequence[MonotoneSweep]) -> str | None:
    """Why the gate must refuse the model (None when no constrained feature is violated): the
    features whose PD moves against the spec's direction, by name."""
    broken = [s for s in sweeps if s.clients_violating > 0]
    if not broken:
        return None
    named = ", ".join(
        f"{s.feature} ({'increasing' if s.direction > 0 else 'decreasing'}: "
        f"{s.clients_violating} of {len(s.pd_values)} clients, PD moves up to {s.worst_move:.2e} "
        "against it)"
        for s in broken
    )
    return f"monotone constraint violated by the trained model: {named}"
