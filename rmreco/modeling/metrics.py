"""Discrimination and calibration metrics of a PD model, and the tables behind its charts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score, roc_curve


def credit_metrics(y: np.ndarray, pd_values: np.ndarray, prefix: str = "oot_") -> dict[str, float]:
    """AUC, Gini, KS, Brier score and log loss, under names with ``prefix``.

    Raises:
        ValueError: the outcomes hold a single class (no AUC exists).
    """
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(pd_values, dtype=float), 1e-9, 1 - 1e-9)
    if len(np.unique(y)) < 2:
        raise ValueError("the evaluation rows hold a single outcome class")
    auc = float(roc_auc_score(y, p))
    fpr, tpr, _ = roc_curve(y, p)
    return {
        f"{prefix}auc": auc,
        f"{prefix}gini": 2 * auc - 1,
        f"{prefix}ks": float(np.max(tpr - fpr)),
        f"{prefix}brier": float(brier_score_loss(y, p)),
        f"{prefix}logloss": float(log_loss(y, p, labels=[0, 1])),
        f"{prefix}mean_pd": float(p.mean()),
        f"{prefix}default_rate": float(y.mean()),
        f"{prefix}rows": float(len(y)),
    }


def auc(y: np.ndarray, scores: np.ndarray) -> float:
    return float(roc_auc_score(np.asarray(y, dtype=int), np.asarray(scores, dtype=float)))


def gains_table(y: np.ndarray, scores: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Share of defaulters caught by the riskiest 10%, 20%, ... of clients."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    y_sorted = np.asarray(y, dtype=float)[order]
    cuts = np.linspace(0, len(y_sorted), bins + 1).astype(int)[1:]
    caught = np.cumsum(y_sorted)[cuts - 1] / max(y_sorted.sum(), 1.0)
    share = cuts / len(y_sorted)
    return pd.DataFrame(
        {"population_share": share, "defaulters_caught": caught, "lift": caught / share}
    )


def grade_table(
    y: np.ndarray, pd_values: np.ndarray, grades: np.ndarray, order: list[str]
) -> pd.DataFrame:
    """Per grade: clients, mean predicted PD, observed default rate."""
    frame = pd.DataFrame({"y": np.asarray(y, dtype=float), "pd": pd_values, "grade": grades})
    table = frame.groupby("grade", observed=True).agg(
        clients=("y", "size"), mean_pd=("pd", "mean"), default_rate=("y", "mean")
    )
    return table.reindex([g for g in order if g in table.index])
