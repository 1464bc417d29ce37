"""This module owns the metrics of the models: discrimination of a score with bootstrap
confidence intervals, calibration of a PD model per grade (with the Jeffreys test), population
stability (PSI) of a score or a feature between two windows, ranking quality of cross-sell
lists, and the tables behind their charts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import beta
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score, roc_curve

#: PSI bands: below the first stable, between the two watch, above the second shifted.
PSI_BANDS = (0.1, 0.25)
#: A bin's share below this is taken as this, so that an empty bin gives a finite PSI.
PSI_FLOOR = 1e-4
#: Version of the profile format a run stores (``reference_profile.json``).
PROFILE_VERSION = 1
#: Bootstrap weights drawn at once (replicates x rows), to bound memory on a large book.
_BOOTSTRAP_CELLS = 4_000_000


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
    """Adoption rate among the top ``share`` of rows by score, against the overall rate.

    Rows tied at the cut share the places left (the expected rate under a random order of
    ties), so a constant score has a lift of exactly 1 whatever the rows' order.
    """
    y = np.asarray(y, dtype=float)
    if len(y) == 0 or y.sum() == 0:
        return float("nan")
    scores = np.asarray(scores, dtype=float)
    n = max(1, round(share * len(y)))
    cut = np.sort(scores)[::-1][n - 1]
    above, tied = scores > cut, scores == cut
    places = n - int(above.sum())
    caught = y[above].sum() + y[tied].sum() * places / max(int(tied.sum()), 1)
    return float(caught / n / y.mean())


# --- discrimination with bootstrap confidence intervals --------------------------------------


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval."""

    value: float
    low: float
    high: float

    def text(self, digits: int = 3) -> str:
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class Discrimination:
    """AUC, Gini and KS of a score with bootstrap intervals, and the replicates behind them."""

    auc: Interval
    gini: Interval
    ks: Interval
    confidence: float
    resamples: int
    seed: int
    #: what was resampled: clients (a cluster bootstrap) or rows
    unit: str
    replicates: dict[str, np.ndarray] = field(default_factory=dict)

    def metrics(self, prefix: str) -> dict[str, float]:
        """Point values and bounds as flat metric names (``oot_auc_ci_low`` ...)."""
        out: dict[str, float] = {}
        for name in ("auc", "gini", "ks"):
            interval: Interval = getattr(self, name)
            out[f"{prefix}{name}_ci_low"] = interval.low
            out[f"{prefix}{name}_ci_high"] = interval.high
        return out

    def intervals(self) -> dict[str, Interval]:
        return {"auc": self.auc, "gini": self.gini, "ks": self.ks}

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {"metric": name, "value": iv.value, "ci_low": iv.low, "ci_high": iv.high}
                for name, iv in self.intervals().items()
            ]
        ).set_index("metric")


def _by_score(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row order by score and the start of each run of equal scores in that order."""
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ordered) != 0) + 1]
    return order, starts


def _auc_ks(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUC and KS of each row of weight sums per distinct score (ascending), ties counted half.

    ``positives[b, g]``: the weight of outcome-1 rows with the g-th smallest score in replicate
    b. NaN where a replicate holds a single class.
    """
    pos_total = positives.sum(axis=1)
    neg_total = negatives.sum(axis=1)
    below = np.cumsum(negatives, axis=1) - negatives
    with np.errstate(invalid="ignore", divide="ignore"):
        area = (positives * (below + 0.5 * negatives)).sum(axis=1) / (pos_total * neg_total)
        gap = (
            np.cumsum(negatives, axis=1) / neg_total[:, None]
            - np.cumsum(positives, axis=1) / pos_total[:, None]
        )
        ks = np.maximum(gap.max(axis=1), 0.0)
    bad = (pos_total <= 0) | (neg_total <= 0)
    area[bad] = np.nan
    ks[bad] = np.nan
    return area, ks


def bootstrap_discrimination(
    y: np.ndarray,
    scores: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    resamples: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
) -> Discrimination:
    """AUC, Gini (2 AUC - 1) and KS of ``scores`` against 0/1 outcomes ``y``, with percentile
    bootstrap intervals.

    ``groups`` (e.g. client ids) resamples whole groups: a client's snapshots share its
    outcome, so resampling rows would understate the spread. The AUC is rank-based (ties count
    half, as ``roc_auc_score``) and all replicates are computed at once from weight sums per
    distinct score.

    Raises:
        ValueError: the outcomes hold a single class, or the arrays differ in length.
    """
    y = np.asarray(y, dtype=float)
    scores = np.asarray(scores, dtype=float)
    if len(y) != len(scores):
        raise ValueError("outcomes and scores differ in length")
    if len(np.unique(y)) < 2:
        raise ValueError("the evaluation rows hold a single outcome class")
    order, starts = _by_score(scores)
    y_sorted = y[order]
    if groups is None:
        cluster = np.arange(len(y))
        unit = "rows"
    else:
        cluster = pd.factorize(pd.Series(np.asarray(groups)[order]))[0]
        unit = "clients"
    n_clusters = int(cluster.max()) + 1

    def sums(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = np.add.reduceat(weights * y_sorted, starts, axis=1)
        neg = np.add.reduceat(weights * (1.0 - y_sorted), starts, axis=1)
        return pos, neg

    point_auc, point_ks = _auc_ks(*sums(np.ones((1, len(y)))))
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, _BOOTSTRAP_CELLS // max(len(y), 1)))
    aucs, kss = [], []
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        counts = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=size)
        a, k = _auc_ks(*sums(counts[:, cluster].astype(float)))
        aucs.append(a)
        kss.append(k)
        done += size
    auc_r, ks_r = np.concatenate(aucs), np.concatenate(kss)
    tail = (1.0 - confidence) / 2.0

    def interval(point: float, values: np.ndarray) -> Interval:
        low, high = np.nanquantile(values, [tail, 1.0 - tail])
        return Interval(float(point), float(low), float(high))

    area = interval(float(point_auc[0]), auc_r)
    return Discrimination(
        auc=area,
        gini=Interval(2 * area.value - 1, 2 * area.low - 1, 2 * area.high - 1),
        ks=interval(float(point_ks[0]), ks_r),
        confidence=confidence,
        resamples=resamples,
        seed=seed,
        unit=unit,
        replicates={"auc": auc_r, "gini": 2 * auc_r - 1, "ks": ks_r},
    )


# --- calibration per grade -------------------------------------------------------------------


def calibration_by_grade(
    y: np.ndarray,
    pd_values: np.ndarray,
    grades: np.ndarray,
    order: Sequence[str],
    *,
    level: float = 0.05,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per grade: clients, defaults, mean predicted PD, observed default rate, the Jeffreys
    interval of the default rate, and the Jeffreys test that the grade's PD is not
    underestimated.

    With d defaults among n, the default rate's Jeffreys posterior is Beta(d + 1/2, n - d + 1/2);
    the one-sided p-value is its probability below the grade's mean PD. A p-value below
    ``level`` says more defaults were seen than the PD allows: the grade is flagged
    (``underestimated``). Grades without clients are left out.
    """
    frame = pd.DataFrame(
        {
            "y": np.asarray(y, dtype=float),
            "pd": np.asarray(pd_values, dtype=float),
            "grade": np.asarray(grades, dtype=object).astype(str),
        }
    )
    table = frame.groupby("grade").agg(
        clients=("y", "size"), defaults=("y", "sum"), mean_pd=("pd", "mean")
    )
    table = table.reindex([g for g in order if g in table.index])
    n, d = table["clients"].to_numpy(float), table["defaults"].to_numpy(float)
    a, b = d + 0.5, n - d + 0.5
    tail = (1.0 - confidence) / 2.0
    table["defaults"] = d.astype(int)
    table["default_rate"] = d / n
    table["jeffreys_low"] = np.where(d > 0, beta.ppf(tail, a, b), 0.0)
    table["jeffreys_high"] = np.where(d < n, beta.ppf(1.0 - tail, a, b), 1.0)
    table["p_value"] = beta.cdf(table["mean_pd"].to_numpy(float), a, b)
    table["underestimated"] = table["p_value"] < level
    table.index.name = "grade"
    return table


# --- population stability --------------------------------------------------------------------


def _numeric(values: Any) -> np.ndarray:
    """Values as floats, NaN where missing or not a number."""
    series = pd.to_numeric(pd.Series(values).reset_index(drop=True), errors="coerce")
    return np.asarray(series.to_numpy(dtype=float, na_value=np.nan))


def _text(values: Any) -> tuple[pd.Series, np.ndarray]:
    """Values as text, and whether each is present (not None or NaN)."""
    series = pd.Series(values).reset_index(drop=True).astype(object)
    present = series.notna().to_numpy()
    return series.where(present, "").astype(str), present


def profile(
    values: Any, *, categorical: bool, weights: np.ndarray | None = None, bins: int = 10
) -> dict[str, Any]:
    """The binned distribution of one variable, as plain JSON: numeric values in bins cut at
    quantiles (``edges``: a value at most ``edges[i]`` falls in bin i, above the last in the
    last), categorical values one bin per ``level`` and one for levels not seen here; missing
    values in a bin of their own, last. ``shares`` add up to one."""
    w = np.ones(len(values)) if weights is None else np.asarray(weights, dtype=float)
    if categorical:
        text, present = _text(values)
        levels = sorted(set(text[present]))
        out: dict[str, Any] = {"kind": "categorical", "levels": levels}
    else:
        numbers = _numeric(values)
        present = ~np.isnan(numbers)
        cuts = np.linspace(0, 1, bins + 1)[1:-1]
        edges = np.unique(np.quantile(numbers[present], cuts)) if present.any() else np.zeros(0)
        out = {"kind": "numeric", "edges": [float(e) for e in edges]}
    out["shares"] = [float(s) for s in _shares(out, values, w)]
    return out


def _shares(prof: Mapping[str, Any], values: Any, weights: np.ndarray) -> np.ndarray:
    """Weighted shares of ``values`` in the bins of a profile (missing last)."""
    if prof["kind"] == "categorical":
        text, present = _text(values)
        levels = list(prof["levels"])
        known = pd.Index(levels).get_indexer(pd.Index(text))
        # a level not in the profile: the bin after the levels; missing: the last bin
        index = np.where(present, np.where(known >= 0, known, len(levels)), len(levels) + 1)
        size = len(levels) + 2
    else:
        numbers = _numeric(values)
        edges = np.asarray(prof["edges"], dtype=float)
        # a value within float noise above an edge counts as on it: scores of tree models take
        # few distinct values, many of them edges, and two exact ways of computing the same
        # score (raw, or the sum of its contributions) must not move a client across
        edges = edges + 1e-9 * np.maximum(np.abs(edges), 1e-9)
        index = np.searchsorted(edges, np.nan_to_num(numbers), side="left")
        index = np.where(np.isnan(numbers), len(edges) + 1, index)
        size = len(edges) + 2
    total = np.bincount(index, weights=weights, minlength=size)
    return total / max(float(total.sum()), 1e-12)


def psi(expected: Mapping[str, Any], actual: Any, weights: np.ndarray | None = None) -> float:
    """Population stability index of ``actual`` values against a :func:`profile`:
    sum over bins of (actual - expected) x ln(actual / expected), shares floored at
    :data:`PSI_FLOOR`."""
    w = np.ones(len(actual)) if weights is None else np.asarray(weights, dtype=float)
    e = np.maximum(np.asarray(expected["shares"], dtype=float), PSI_FLOOR)
    a = np.maximum(_shares(expected, actual, w), PSI_FLOOR)
    if len(a) != len(e):
        raise ValueError("the profile's shares do not match its bins")
    return float(np.sum((a - e) * np.log(a / e)))


def score_psi(table: pd.DataFrame, column: str = "psi") -> float:
    """The score's PSI in a :func:`psi_table` (NaN when the table has none)."""
    return float(np.asarray(table[column].reindex([SCORE]), dtype=float)[0])


def psi_band(value: float) -> str:
    """``stable`` below 0.1, ``watch`` up to 0.25, ``shift`` above; empty when unknown."""
    if value is None or math.isnan(value):
        return ""
    return "stable" if value < PSI_BANDS[0] else "watch" if value <= PSI_BANDS[1] else "shift"


#: The score's name in a profile and a PSI table.
SCORE = "(score)"


def profile_frame(
    frame: pd.DataFrame,
    features: Sequence[str],
    categorical: Sequence[str],
    *,
    score: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    window: str = "",
    bins: int = 10,
) -> dict[str, Any]:
    """The profile of every feature of a window (and of the model's score), stored with a run
    so that a later run can measure how far its data lies from this one's."""
    variables = {
        name: profile(frame[name], categorical=name in categorical, weights=weights, bins=bins)
        for name in features
    }
    if score is not None:
        variables[SCORE] = profile(score, categorical=False, weights=weights, bins=bins)
    return {"version": PROFILE_VERSION, "window": window, "variables": variables}


def psi_table(
    reference: Mapping[str, Any],
    frame: pd.DataFrame,
    *,
    score: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> pd.DataFrame:
    """PSI and band of every variable of a reference profile (:func:`profile_frame`) against
    the same variables of ``frame`` (and ``score``). A variable the frame lacks is NaN."""
    rows = []
    for name, prof in reference["variables"].items():
        if name == SCORE:
            values: Any = score
        else:
            values = frame[name] if name in frame.columns else None
        value = float("nan") if values is None else psi(prof, values, weights)
        rows.append({"variable": name, "psi": value, "band": psi_band(value)})
    return pd.DataFrame(rows, columns=["variable", "psi", "band"]).set_index("variable")
