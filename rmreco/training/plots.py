"""This module owns the charts of credit-risk and cross-sell runs, drawn with matplotlib's object
API (no pyplot, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from rmreco.training.validation import MonotoneSweep


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


def calibration_by_grade_chart(table: pd.DataFrame, path: Path, window: str = "") -> Path:
    """Per grade: mean predicted PD (markers) and observed default rate with its Jeffreys
    interval (bars); a grade whose PD the Jeffreys test finds underestimated in red."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    x = np.arange(len(table))
    observed = table["default_rate"].to_numpy(float)
    if "jeffreys_low" in table:
        low = observed - table["jeffreys_low"].to_numpy(float)
        high = table["jeffreys_high"].to_numpy(float) - observed
        flagged = table["underestimated"].to_numpy(bool)
        groups = ((~flagged, "tab:blue", "passes"), (flagged, "tab:red", "fails"))
        for mask, colour, label in groups:
            if mask.any():
                ax.errorbar(
                    x[mask],
                    observed[mask],
                    yerr=[np.maximum(low[mask], 0), np.maximum(high[mask], 0)],
                    fmt="o",
                    color=colour,
                    capsize=3,
                    label=f"observed default rate, Jeffreys interval ({label})",
                )
    else:
        ax.plot(x, observed, "o", label="observed default rate")
    ax.plot(x, table["mean_pd"], "_", markersize=18, color="black", label="mean predicted PD")
    ax.set_xticks(x, [str(g) for g in table.index])
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("grade")
    ax.set_title("Calibration by grade" + (f", {window}" if window else ""), fontsize=9)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def psi_chart(table: pd.DataFrame, columns: dict[str, str], path: Path, top: int = 30) -> Path:
    """PSI per variable (largest first) for each comparison in ``columns`` (column: label),
    with the 0.1 (watch) and 0.25 (shift) bands."""
    first = next(iter(columns))
    shown = table.sort_values(first, ascending=False, na_position="last").head(top)[::-1]
    fig = Figure(figsize=(7, max(3, 0.25 * len(shown))))
    ax = fig.subplots()
    y = np.arange(len(shown))
    height = 0.8 / max(len(columns), 1)
    for k, (column, label) in enumerate(columns.items()):
        values = shown[column].to_numpy(float)
        ax.barh(y + k * height, np.nan_to_num(values), height=height, label=label)
    ax.set_yticks(y + height * (len(columns) - 1) / 2, [str(i) for i in shown.index], fontsize=7)
    for limit, style in ((0.1, ":"), (0.25, "--")):
        ax.axvline(limit, color="grey", linestyle=style, linewidth=1)
    ax.set_xlabel("population stability index (0.1 watch, 0.25 shift)")
    ax.set_title("PSI of the score and the features")
    ax.legend(fontsize=7, loc="lower right")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def bootstrap_chart(
    replicates: dict[str, np.ndarray], intervals: dict[str, tuple[float, float, float]], path: Path
) -> Path:
    """Bootstrap distribution of each metric, with its point value and interval."""
    fig, axes = _grid(len(replicates), width=3.2)
    for ax, (name, values) in zip(axes, replicates.items(), strict=False):
        point, low, high = intervals[name]
        ax.hist(values[~np.isnan(values)], bins=30, color="tab:blue", alpha=0.7)
        ax.axvline(point, color="black")
        for bound in (low, high):
            ax.axvline(bound, color="tab:red", linestyle="--")
        ax.set_title(f"{name} {point:.3f} [{low:.3f}, {high:.3f}]", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle("Bootstrap distributions (clients resampled), out-of-time test window")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    return path


def monotonicity_chart(sweeps: Sequence[MonotoneSweep], path: Path, lines: int = 30) -> Path:
    """Small multiples, one per constrained feature: the PD of some clients of the sample as
    the feature sweeps its range (others held), the median in black, clients whose PD moves
    against the declared direction in red."""
    fig, axes = _grid(max(len(sweeps), 1))
    for ax, sweep in zip(axes, sweeps, strict=False):
        grid, values = sweep.grid, sweep.pd_values
        violating = np.asarray(sweep.steps_against.any(axis=1), dtype=bool)
        if len(grid) >= 2 and len(values):
            shown = np.r_[np.flatnonzero(violating)[:lines], np.arange(min(lines, len(values)))]
            for i in np.unique(shown):
                ax.plot(
                    grid,
                    values[i],
                    color="tab:red" if violating[i] else "tab:blue",
                    alpha=0.8 if violating[i] else 0.25,
                    linewidth=0.8,
                )
            ax.plot(grid, np.median(values, axis=0), color="black", linewidth=1.5)
        arrow = "up" if sweep.direction > 0 else "down"
        ax.set_title(f"{sweep.feature} ({arrow}; {int(violating.sum())} against)", fontsize=8)
        ax.tick_params(labelsize=6)
    fig.suptitle("PD as each monotone feature sweeps its test-window range (others held)")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    return path


def product_validation_chart(table: pd.DataFrame, min_auc: float, path: Path) -> Path:
    """Per product: the model's AUC with its interval against the floor, and the top-decile
    lift of the model beside popularity's; products ranked by popularity in grey."""
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    codes = [str(c) for c in table.index]
    x = np.arange(len(codes))
    auc = table["auc"].to_numpy(float)
    fallback = (table["ranker"] == "popularity").to_numpy(bool)
    colours = ["tab:grey" if f else "tab:blue" for f in fallback]
    err = [
        np.nan_to_num(np.maximum(auc - table["auc_low"].to_numpy(float), 0)),
        np.nan_to_num(np.maximum(table["auc_high"].to_numpy(float) - auc, 0)),
    ]
    left.bar(x, np.nan_to_num(auc, nan=0.5) - 0.5, bottom=0.5, yerr=err, color=colours, capsize=3)
    left.axhline(min_auc, color="tab:red", linestyle="--", linewidth=1)
    left.set_xticks(x, codes, rotation=60, ha="right", fontsize=7)
    left.set_ylabel("AUC (bootstrap interval); grey: popularity ranks it")
    left.set_title("Model AUC per product", fontsize=9)
    width = 0.4
    right.bar(x - width / 2, np.nan_to_num(table["lift_top10"]), width, label="model")
    right.bar(
        x + width / 2, np.nan_to_num(table["popularity_lift_top10"]), width, label="popularity"
    )
    right.axhline(1.0, color="grey", linestyle=":")
    right.set_xticks(x, codes, rotation=60, ha="right", fontsize=7)
    right.set_title("Top-decile lift per product", fontsize=9)
    right.legend(fontsize=7)
    fig.suptitle("Cross-sell per product, out-of-time test window")
    fig.savefig(path, dpi=90, bbox_inches="tight")
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
