"""Metrics of the models: discrimination and calibration of a PD model, ranking quality of
cross-sell lists, and the tables behind their charts."""

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


# --- ranking (cross-sell) --------------------------------------------------------------------


def ranking_metrics(
    groups: np.ndarray, y: np.ndarray, scores: np.ndarray, *, k: int = 5
) -> dict[str, float]:
    """MAP@k, NDCG@k and precision@1 of ranking each group's rows by score.

    A group is one client at one snapshot month; its rows are the products it could be offered
    (eligible, not held). Groups with no adoption (``y`` all 0) are left out, as usual for MAP:
    they have no relevant item to find.

    - AP@k of a group with R adoptions: sum over ranks i <= k of precision@i x rel_i, divided
      by min(R, k); MAP@k is its mean over groups.
    - NDCG@k: sum of rel_i / log2(i + 1) over ranks i <= k, divided by the same sum of the ideal
      order (min(R, k) adoptions on top).
    - precision@1: share of groups whose top-ranked product was adopted.

    Ties are broken by the rows' input order, so results are deterministic.

    Returns:
        ``map_at_k``, ``ndcg_at_k``, ``precision_at_1`` and ``groups`` (groups counted).
    """
    codes, _ = pd.factorize(pd.Series(groups))
    y = np.asarray(y, dtype=float)
    scores = np.asarray(scores, dtype=float)
    order = np.lexsort((np.arange(len(y)), -scores, codes))
    g, rel = codes[order], y[order]
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    sizes = np.diff(np.r_[starts, len(g)])
    rank = np.arange(len(g)) - np.repeat(starts, sizes) + 1
    n_groups = len(starts)
    relevant = np.bincount(g, weights=rel, minlength=n_groups)
    group_index = np.repeat(np.arange(n_groups), sizes)
    hits = np.cumsum(rel) - np.repeat(np.cumsum(rel)[starts] - rel[starts], sizes)
    top = rank <= k
    ap = np.bincount(group_index, weights=np.where(top, rel * hits / rank, 0.0), minlength=n_groups)
    dcg = np.bincount(
        group_index, weights=np.where(top, rel / np.log2(rank + 1), 0.0), minlength=n_groups
    )
    discounts = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
    keep = relevant > 0
    ideal = discounts[np.minimum(relevant[keep], k).astype(int) - 1]
    first = rel[starts]
    if not keep.any():
        return {f"map_at_{k}": 0.0, f"ndcg_at_{k}": 0.0, "precision_at_1": 0.0, "groups": 0.0}
    return {
        f"map_at_{k}": float(np.mean(ap[keep] / np.minimum(relevant[keep], k))),
        f"ndcg_at_{k}": float(np.mean(dcg[keep] / ideal)),
        "precision_at_1": float(np.mean(first[keep])),
        "groups": float(keep.sum()),
    }


def lift_at(y: np.ndarray, scores: np.ndarray, share: float = 0.1) -> float:
    """Adoption rate among the top ``share`` of rows by score, against the overall rate."""
    y = np.asarray(y, dtype=float)
    if len(y) == 0 or y.sum() == 0:
        return float("nan")
    n = max(1, round(share * len(y)))
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    return float(y[order[:n]].mean() / y.mean())
