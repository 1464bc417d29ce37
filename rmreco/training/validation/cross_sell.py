"""This module owns the cross-sell model's validation report: the per-product table and rankers,
PSI of the propensities and features, and the model card's section that quotes them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rmreco.modeling.metrics import (
    SCORE,
    profile_frame,
    psi_table,
    score_psi,
)
from rmreco.modeling.propensity import PropensityModel
from rmreco.modeling.spec import CrossSellSpec
from rmreco.training.validation.credit import psi_section
from rmreco.training.validation.products import choose_rankers, product_table
from rmreco.training.validation.window import TestWindow, psi_summary


@dataclass(frozen=True)
class CrossSellValidation:
    """The validation of a cross-sell model on its test window: per product against
    popularity (with the ranker each product was given), and population stability."""

    window: TestWindow
    #: :func:`product_table` with each product's ``ranker`` and ``ranker_reason``
    products: pd.DataFrame
    min_auc: float
    confidence: float
    reference: dict[str, Any]
    psi: pd.DataFrame

    @property
    def fallbacks(self) -> dict[str, str]:
        """The products ranked by popularity, and why."""
        rows = self.products[self.products["ranker"] == "popularity"]
        return {str(code): str(r) for code, r in rows["ranker_reason"].items()}

    def metrics(self) -> dict[str, float]:
        features = self.psi.drop(index=SCORE, errors="ignore")["psi"]
        out = {
            "products_ranked_by_popularity": float(len(self.fallbacks)),
            "psi_score": score_psi(self.psi),
            "psi_max_feature": float(features.max()) if len(features) else 0.0,
        }
        for code, row in self.products.iterrows():
            if not math.isnan(row["auc"]):
                out[f"oot_model_auc_{code}"] = float(row["auc"])
                out[f"oot_model_auc_low_{code}"] = float(row["auc_low"])
        return out

    def document(self) -> dict[str, Any]:
        return {
            "test_window": self.window.describe(),
            "min_product_auc": self.min_auc,
            "confidence": self.confidence,
            "rankers": {
                str(code): {"ranker": r.ranker, "reason": r.ranker_reason}
                for code, r in self.products.iterrows()
            },
            "psi_fit_vs_test": psi_summary(self.psi),
        }


def product_validation(
    y: np.ndarray,
    model: np.ndarray,
    popularity: np.ndarray,
    codes: np.ndarray,
    clients: np.ndarray,
    products: Sequence[str],
    spec: CrossSellSpec,
) -> pd.DataFrame:
    """:func:`product_table` of the model's propensities (before any fallback) with the ranker
    :func:`choose_rankers` gives each product under the spec's ``gates.min_product_auc``;
    products the model does not score have the ranker ``none``."""
    settings = spec.validation
    table = product_table(
        y,
        model,
        popularity,
        codes,
        clients,
        products,
        resamples=settings.bootstrap_resamples,
        confidence=settings.confidence,
        seed=spec.seed,
    )
    choices = choose_rankers(table, spec.gates.min_product_auc, settings.confidence)
    table["ranker"] = [choices[c].ranker if c in choices else "none" for c in table.index]
    table["ranker_reason"] = [
        choices[c].reason if c in choices else "not scored by the model (no adoption to fit)"
        for c in table.index
    ]
    return table


def validate_cross_sell(
    model: PropensityModel,
    fit: pd.DataFrame,
    test: pd.DataFrame,
    products: pd.DataFrame,
    *,
    spec: CrossSellSpec,
    window: TestWindow,
    weight: str | None = None,
) -> CrossSellValidation:
    """The cross-sell validation of the served ``model`` (its fallbacks applied): the
    :func:`product_validation` table, and the fit window's profile (rows weighted by the
    ``weight`` column: the fit window's non-adopters are sampled) with the test window's PSI
    against it, of every feature and of the propensity."""
    categorical = list(model.encoder.categories)
    weights = None if weight is None else fit[weight].to_numpy(float)
    reference = profile_frame(
        fit,
        list(model.features),
        categorical,
        score=model.predict_propensity(model.encoder.transform(fit)),
        weights=weights,
        window=f"fit {fit['month'].min():%Y-%m}..{fit['month'].max():%Y-%m}",
        bins=spec.validation.psi_bins,
    )
    score = model.predict_propensity(model.encoder.transform(test))
    return CrossSellValidation(
        window=window,
        products=products,
        min_auc=spec.gates.min_product_auc,
        confidence=spec.validation.confidence,
        reference=reference,
        psi=psi_table(reference, test, score=score),
    )


def cross_sell_card_section(
    v: CrossSellValidation, psi: pd.DataFrame, champion_note: str, has_champion: bool
) -> str:
    """The model card's per-product and stability sections (markdown)."""
    level = f"{v.confidence:.0%}"

    def number(value: float, digits: int) -> str:
        return "-" if math.isnan(value) else f"{value:.{digits}f}"

    rows = "\n".join(
        f"| {code} | {int(r.rows):,} | {int(r.adoptions):,} | {number(r.adoption_rate, 4)} | "
        f"{number(r.auc, 3)} [{number(r.auc_low, 3)}, {number(r.auc_high, 3)}] | "
        f"{number(r.popularity_auc, 3)} | {number(r.lift_top10, 2)} | "
        f"{number(r.popularity_lift_top10, 2)} | {number(r.lift_vs_popularity, 2)} | {r.ranker} |"
        for code, r in v.products.iterrows()
    )
    fallbacks = v.fallbacks
    fallback_text = (
        "\n".join(f"- {code}: {reason}" for code, reason in fallbacks.items())
        if fallbacks
        else "- none: the model ranks every product it scores better than chance"
    )
    header = (
        f"| product | rows | adoptions | adoption rate | AUC [{level}] | popularity AUC | lift "
        "| popularity lift | lift x | ranked by |\n" + "| --- " * 10 + "|"
    )
    return f"""## By product
Measured on the {v.window.describe()}. AUC of the model's propensities (before any fallback)
with its {level} bootstrap interval (clients resampled); popularity: the adoption rate of the
product by segment from the fit window; lift: adoption rate in the top decile against the
product's average (ties shared); lift x: the model's top-decile lift over popularity's.

{header}
{rows}

### Products ranked by popularity
A product is ranked by its model only when the lower bound of the model's AUC interval lies
above {v.min_auc:.2f} (`gates.min_product_auc`); otherwise every client gets the product's
popularity rate (its adoption rate in the fit window) as its propensity, in the saved model, so
that batch scoring and the service rank it the same way:

{fallback_text}

## Population stability (PSI: < 0.1 stable, 0.1-0.25 watch, > 0.25 shift)
{psi_section(psi, champion_note, has_champion)}

Full table: `tables/psi.csv`; chart `charts/psi.png`.
"""
