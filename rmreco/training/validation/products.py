"""This module owns the cross-sell report per product: the model's AUC with its interval and
its top-decile lift over popularity, and the rule that ranks a product the model ranks no better
than chance by its popularity rate instead (:func:`choose_rankers`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rmreco.modeling.metrics import auc, bootstrap_discrimination, lift_at
from rmreco.modeling.propensity import Ranker


def product_table(
    y: np.ndarray,
    model: np.ndarray,
    popularity: np.ndarray,
    codes: np.ndarray,
    clients: np.ndarray,
    products: Sequence[str],
    *,
    resamples: int = 300,
    confidence: float = 0.95,
    seed: int = 0,
    share: float = 0.1,
) -> pd.DataFrame:
    """Per product on the test window: rows, adoptions, adoption rate, mean propensity, the
    model's AUC with its bootstrap interval (clients resampled), the popularity baseline's AUC,
    both top-decile lifts and the model's lift over popularity's (ties shared, see
    :func:`~rmreco.modeling.metrics.lift_at`). A product the model does not score (NaN) or
    without both outcomes has NaN figures."""
    codes = np.asarray(codes, dtype=object)
    y = np.asarray(y, dtype=float)
    rows = []
    for n, code in enumerate(products):
        mask = codes == code
        row: dict[str, Any] = {"product_code": code, "rows": int(mask.sum())}
        yy, pm, pp = y[mask], np.asarray(model)[mask], np.asarray(popularity)[mask]
        row["adoptions"] = int(yy.sum())
        row["adoption_rate"] = float(yy.mean()) if mask.any() else float("nan")
        scored = bool(mask.any()) and not np.isnan(pm).any()
        row["mean_propensity"] = float(pm.mean()) if scored else float("nan")
        nan = float("nan")
        row.update(auc=nan, auc_low=nan, auc_high=nan, popularity_auc=nan)
        row.update(lift_top10=nan, popularity_lift_top10=nan, lift_vs_popularity=nan)
        if scored and 0 < yy.sum() < len(yy):
            found = bootstrap_discrimination(
                yy,
                pm,
                groups=np.asarray(clients)[mask],
                resamples=resamples,
                confidence=confidence,
                seed=seed + n,
            )
            lift, pop_lift = lift_at(yy, pm, share), lift_at(yy, pp, share)
            row.update(
                auc=found.auc.value,
                auc_low=found.auc.low,
                auc_high=found.auc.high,
                popularity_auc=auc(yy, pp),
                lift_top10=lift,
                popularity_lift_top10=pop_lift,
                lift_vs_popularity=lift / pop_lift if pop_lift > 0 else nan,
            )
        rows.append(row)
    return pd.DataFrame(rows).set_index("product_code")


@dataclass(frozen=True)
class RankerChoice:
    """Which ranker serves a product, and why."""

    ranker: Ranker
    reason: str


def choose_rankers(
    table: pd.DataFrame, min_auc: float, confidence: float
) -> dict[str, RankerChoice]:
    """The ranker of every product the model scores: its model when the lower bound of its
    test-window AUC interval lies above ``min_auc`` (the model ranks that product's clients
    better than chance), else its popularity rate, constant across clients. A product without
    an adoption (or a non-adoption), or without rows, in the test window cannot show it and
    falls back too. Products the model does not score are left out."""
    out: dict[str, RankerChoice] = {}
    level = f"{confidence:.0%}"
    for code, row in table.iterrows():
        if row["rows"] and math.isnan(row["mean_propensity"]):
            continue  # the model does not score it: nothing to fall back from
        if math.isnan(row["auc"]):
            out[str(code)] = RankerChoice(
                "popularity",
                f"{row['adoptions']} adoptions in {row['rows']} test rows: "
                "the model cannot be shown better than chance",
            )
        elif row["auc_low"] > min_auc:
            out[str(code)] = RankerChoice(
                "model",
                f"AUC {row['auc']:.3f}, {level} interval [{row['auc_low']:.3f}, "
                f"{row['auc_high']:.3f}] lies above {min_auc:.2f}",
            )
        else:
            out[str(code)] = RankerChoice(
                "popularity",
                f"AUC {row['auc']:.3f}, {level} interval [{row['auc_low']:.3f}, "
                f"{row['auc_high']:.3f}] does not lie above {min_auc:.2f}: "
                "no better than chance",
            )
    return out
