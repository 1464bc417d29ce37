"""This module owns the WoE scorecard's tables as a credit officer reads them: the binning table
(count, events, event rate, WoE and information value per bin) and the points table."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from rmreco.modeling.scorecard import WoeScorecard


def _bin_labels(card: WoeScorecard, j: int, levels: Sequence[str] | None, size: int) -> list[str]:
    """Names of the scorecard's bins of column j: ``missing``, then the value ranges (the
    scorecard cuts at its edges, a value equal to an edge going up) or the levels."""
    labels = ["missing"]
    if levels is not None:
        labels += [levels[i] if i < len(levels) else f"level {i}" for i in range(size - 1)]
        return labels
    edges = card.edges_[j]
    if not edges:
        labels.append("all values")
    else:
        labels.append(f"< {edges[0]:.4g}")
        labels += [f"[{lo:.4g}, {hi:.4g})" for lo, hi in itertools.pairwise(edges)]
        labels.append(f">= {edges[-1]:.4g}")
    return labels + ["(unused)"] * max(0, size - len(labels))


def _bin_index(card: WoeScorecard, X: np.ndarray, j: int) -> np.ndarray:
    """The scorecard's bin of every value of column j (0 missing, as the scorecard bins)."""
    column = X[:, j]
    missing = np.isnan(column)
    if j in card.categorical_:
        index = np.nan_to_num(column, nan=0).astype(int) + 1
    else:
        index = np.searchsorted(np.asarray(card.edges_[j]), np.nan_to_num(column), side="right")
        index = index + 1
    return np.where(missing, 0, index).astype(int)


def scorecard_bins(
    card: WoeScorecard,
    X: np.ndarray,
    y: np.ndarray,
    features: Sequence[str],
    categories: Mapping[str, Sequence[str]],
) -> pd.DataFrame:
    """The binning table of a fitted scorecard on the rows it was fitted on: per feature and
    bin, rows, events, event rate, the stored WoE and the bin's part of the feature's
    information value, (events share - non-events share) x WoE; ``iv`` repeats the feature's
    total on each of its rows."""
    y = np.asarray(y, dtype=float)
    total_bad, total_good = max(y.sum(), 1.0), max(len(y) - y.sum(), 1.0)
    rows = []
    for j, name in enumerate(features):
        woe = np.asarray(card.woe_[j], dtype=float)
        index = _bin_index(card, X, j)
        count = np.bincount(index, minlength=len(woe))[: len(woe)]
        bad = np.bincount(index, weights=y, minlength=len(woe))[: len(woe)]
        part = (bad / total_bad - (count - bad) / total_good) * woe
        labels = _bin_labels(card, j, categories.get(name), len(woe))
        for b in range(len(woe)):
            rows.append(
                {
                    "feature": name,
                    "bin": labels[b],
                    "count": int(count[b]),
                    "events": int(bad[b]),
                    "event_rate": float(bad[b] / count[b]) if count[b] else float("nan"),
                    "woe": float(woe[b]),
                    "iv_part": float(part[b]),
                    "iv": float(part.sum()),
                }
            )
    return pd.DataFrame(rows)


def scorecard_points(
    card: WoeScorecard,
    bins: pd.DataFrame,
    features: Sequence[str],
    *,
    base_score: float = 600.0,
    base_odds: float = 50.0,
    pdo: float = 20.0,
) -> pd.DataFrame:
    """The points table: per feature and bin, the log-odds of default it adds (coefficient x
    WoE, the scorecard's own reason contribution) and scaled points, higher safer, on the usual
    scale (``base_score`` points at good:bad odds ``base_odds``, ``pdo`` points to double the
    odds). Points are on the scorecard's log-odds before calibration; the intercept is spread
    evenly over the features so that a client's points add up to its score."""
    factor = pdo / math.log(2.0)
    offset = base_score - factor * math.log(base_odds)
    share = (offset - factor * card.intercept_) / max(len(features), 1)
    coef = dict(zip(features, card.coef_, strict=True))
    out = bins[["feature", "bin", "woe"]].copy()
    out["coefficient"] = out["feature"].map(coef).astype(float)
    out["log_odds"] = out["coefficient"] * out["woe"]
    out["points"] = share - factor * out["log_odds"]
    return out
