"""Charts of credit-risk and cross-sell runs, drawn with matplotlib's object API (no pyplot, no
display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve


def roc_chart(y: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> Path:
    """ROC curves of several scores on the same rows."""
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    for label, scores in curves.items():
        fpr, tpr, _ = roc_curve(y, scores)
        ax.plot(fpr, tpr, label=label)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC, out-of-time test window")
    ax.legend(loc="lower right")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def calibration_by_grade_chart(table: pd.DataFrame, path: Path) -> Path:
    """Mean predicted PD against observed default rate per grade (log scale)."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["mean_pd"], width=0.4, label="mean predicted PD")
    ax.bar(x + 0.2, table["default_rate"], width=0.4, label="observed default rate")
    ax.set_xticks(x, [str(g) for g in table.index])
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("grade")
    ax.set_title("Calibration by grade, out-of-time test window")
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def gains_chart(tables: dict[str, pd.DataFrame], path: Path) -> Path:
    """Cumulative share of defaulters caught against share of clients, riskiest first."""
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    for label, table in tables.items():
        ax.plot(
            [0, *table["population_share"]],
            [0, *table["defaulters_caught"]],
            marker="o",
            label=label,
        )
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set_xlabel("share of clients, riskiest first")
    ax.set_ylabel("share of defaulters caught")
    ax.set_title("Gains, out-of-time test window")
    ax.legend(loc="lower right")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def bar_chart(values: pd.Series, title: str, xlabel: str, path: Path, top: int = 25) -> Path:
    """Horizontal bars of the largest values (feature importance, mean |SHAP|)."""
    shown = values.sort_values(ascending=False).head(top)[::-1]
    fig = Figure(figsize=(7, max(3, 0.28 * len(shown))))
    ax = fig.subplots()
    ax.barh([str(i) for i in shown.index], shown.to_numpy())
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def shap_summary_chart(
    contrib: np.ndarray,
    X: np.ndarray,
    features: list[str],
    path: Path,
    top: int = 20,
    max_points: int = 3000,
    seed: int = 0,
) -> Path:
    """TreeSHAP summary: each dot a client, x its contribution, colour its feature value rank."""
    order = np.argsort(-np.abs(contrib).mean(axis=0))[:top][::-1]
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(contrib), size=min(max_points, len(contrib)), replace=False)
    fig = Figure(figsize=(7, max(3, 0.3 * len(order))))
    ax = fig.subplots()
    for k, j in enumerate(order):
        values = X[rows, j]
        ranks = pd.Series(values).rank(pct=True).fillna(0.5).to_numpy()
        jitter = rng.uniform(-0.25, 0.25, size=len(rows))
        ax.scatter(contrib[rows, j], k + jitter, c=ranks, cmap="coolwarm", s=4, alpha=0.6)
    ax.set_yticks(range(len(order)), [features[j] for j in order])
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.set_xlabel("contribution to log-odds of default (blue low value, red high)")
    ax.set_title("TreeSHAP summary, out-of-time test window")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def _grid(n: int, width: float = 3.0) -> tuple[Figure, list[Any]]:
    cols = min(5, max(1, n))
    rows = max(1, -(-n // cols))
    fig = Figure(figsize=(width * cols, width * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def gains_by_product_chart(tables: dict[str, pd.DataFrame], path: Path) -> Path:
    """Per product: cumulative share of adopters caught against share of rows, likeliest first."""
    fig, axes = _grid(len(tables))
    for ax, (code, table) in zip(axes, tables.items(), strict=False):
        ax.plot([0, *table["population_share"]], [0, *table["defaulters_caught"]], marker=".")
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
        ax.set_title(code, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle("Gains per product (share of adopters caught), out-of-time test window")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    return path


def lift_by_product_chart(lift: pd.Series, path: Path) -> Path:
    """Top-decile lift of each product: adoption rate in its top 10% against its average."""
    return bar_chart(lift, "Top-decile lift per product, out-of-time test window", "lift", path)


def calibration_by_product_chart(
    by_product: pd.DataFrame, reliability: pd.DataFrame, path: Path
) -> Path:
    """Per product: adoption rate against mean propensity by propensity quintile, on a shared
    diagonal, so that a propensity means the same across products."""
    codes = list(by_product.index)
    fig, axes = _grid(len(codes))
    for ax, code in zip(axes, codes, strict=False):
        rows = reliability[reliability["product_code"] == code]
        high = max(float(rows["mean_propensity"].max()), float(rows["adoption_rate"].max()), 1e-3)
        ax.plot(rows["mean_propensity"], rows["adoption_rate"], marker="o")
        ax.plot([0, high], [0, high], linestyle=":", color="grey")
        ax.set_title(code, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle("Calibration per product: adoption rate (y) by mean propensity (x), quintiles")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    return path
