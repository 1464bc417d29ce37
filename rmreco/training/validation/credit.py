"""This module owns the credit model's validation report: AUC, Gini and KS with bootstrap
intervals, calibration per grade with the Jeffreys test, PSI of the score and every feature
(fit window against test window, and against the champion's fit window), the monotonicity
check and the scorecard's tables; and the model card's section that quotes them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.master_scale import DEFAULT_GRADE
from rmreco.modeling.metrics import (
    SCORE,
    Discrimination,
    bootstrap_discrimination,
    calibration_by_grade,
    profile_frame,
    psi_table,
    score_psi,
)
from rmreco.modeling.scorecard import WoeScorecard
from rmreco.modeling.spec import CreditRiskSpec
from rmreco.training.validation.monotone import (
    MonotoneSweep,
    monotonicity_check,
    monotonicity_table,
    monotonicity_veto,
)
from rmreco.training.validation.scorecard_tables import scorecard_bins, scorecard_points
from rmreco.training.validation.window import TestWindow, psi_summary


@dataclass(frozen=True)
class CreditValidation:
    """The validation of a credit model on its test window, without the champion comparison
    (which needs the registry: see :func:`psi_against`)."""

    window: TestWindow
    discrimination: Discrimination
    #: :func:`calibration_by_grade` of the registered model
    by_grade: pd.DataFrame
    jeffreys_level: float
    #: the fit window's profile (features and score), stored for the next run
    reference: dict[str, Any]
    #: PSI of the test window against the fit window
    psi: pd.DataFrame
    sweeps: list[MonotoneSweep]
    #: the scorecard's tables, and whether it is the ``registered`` model or the ``companion``
    bins: pd.DataFrame
    points: pd.DataFrame
    scorecard_role: str
    #: the points scale in words (``base_score`` at ``base_odds``, ``pdo``)
    points_scale: str

    @property
    def veto(self) -> str | None:
        return monotonicity_veto(self.sweeps)

    @property
    def flagged_grades(self) -> list[str]:
        """Grades whose PD the Jeffreys test finds underestimated."""
        return [str(g) for g in self.by_grade.index[self.by_grade["underestimated"]]]

    def metrics(self) -> dict[str, float]:
        """What the run logs as metrics (``oot_auc_ci_low``, ``psi_score`` ...)."""
        features = self.psi.drop(index=SCORE, errors="ignore")["psi"]
        return {
            **self.discrimination.metrics("oot_"),
            "grades_underestimated": float(self.by_grade["underestimated"].sum()),
            "psi_score": score_psi(self.psi),
            "psi_max_feature": float(features.max()) if len(features) else 0.0,
            "monotonicity_violations": float(sum(s.clients_violating > 0 for s in self.sweeps)),
        }

    def document(self) -> dict[str, Any]:
        """The report's figures as JSON (``report/validation.json``)."""
        d = self.discrimination
        return {
            "test_window": self.window.describe(),
            "discrimination": {
                "confidence": d.confidence,
                "resamples": d.resamples,
                "resampled": d.unit,
                "seed": d.seed,
                **{k: vars(getattr(d, k)) for k in ("auc", "gini", "ks")},
            },
            "grades_underestimated": self.flagged_grades,
            "jeffreys_level": self.jeffreys_level,
            "psi_fit_vs_test": psi_summary(self.psi),
            "monotonicity": monotonicity_table(self.sweeps).reset_index().to_dict("records"),
            "monotonicity_veto": self.veto,
            "scorecard": self.scorecard_role,
        }


def validate_credit(
    model: CreditRiskModel,
    scorecard: WoeScorecard,
    fit: pd.DataFrame,
    test: pd.DataFrame,
    label: str,
    *,
    spec: CreditRiskSpec,
    window: TestWindow,
) -> CreditValidation:
    """Everything the credit report measures, on the fit and test rows of a run (frames with
    the model's features, ``client_id`` and the ``label`` column)."""
    settings = spec.validation
    X_test, X_fit = model.encoder.transform(test), model.encoder.transform(fit)
    y_test, y_fit = test[label].to_numpy(int), fit[label].to_numpy(int)
    pd_test = model.predict_pd(X_test)
    features, scale = list(model.features), model.scale
    discrimination = bootstrap_discrimination(
        y_test,
        pd_test,
        groups=test["client_id"].astype(str).to_numpy(object),
        resamples=settings.bootstrap_resamples,
        confidence=settings.confidence,
        seed=spec.seed,
    )
    by_grade = calibration_by_grade(
        y_test,
        pd_test,
        scale.grade(pd_test),
        [*scale.grades, DEFAULT_GRADE],
        level=settings.jeffreys_level,
        confidence=settings.confidence,
    )
    categorical = list(model.encoder.categories)
    reference = profile_frame(
        fit,
        features,
        categorical,
        score=model.predict_pd(X_fit),
        window=f"fit {fit['month'].min():%Y-%m}..{fit['month'].max():%Y-%m}",
        bins=settings.psi_bins,
    )
    rng = np.random.default_rng(spec.seed)
    sample = X_test[rng.choice(len(X_test), min(settings.monotonicity_sample, len(X_test)), False)]
    constraints = {
        features.index(f.name): (f.name, f.direction) for f in spec.features if f.direction
    }
    sweeps = monotonicity_check(
        model.predict_pd,
        sample,
        X_test,
        constraints,
        grid_points=settings.monotonicity_grid,
        tolerance=settings.monotonicity_tolerance,
    )
    bins = scorecard_bins(scorecard, X_fit, y_fit, features, model.encoder.categories)
    points = scorecard_points(
        scorecard,
        bins,
        features,
        base_score=settings.base_score,
        base_odds=settings.base_odds,
        pdo=settings.pdo,
    )
    return CreditValidation(
        window=window,
        discrimination=discrimination,
        by_grade=by_grade,
        jeffreys_level=settings.jeffreys_level,
        reference=reference,
        psi=psi_table(reference, test, score=pd_test),
        sweeps=sweeps,
        bins=bins,
        points=points,
        scorecard_role="registered" if model.scorecard is scorecard else "companion",
        points_scale=(
            f"{settings.base_score:g} points at good:bad odds {settings.base_odds:g}:1, "
            f"{settings.pdo:g} points to double the odds (higher is safer)"
        ),
    )


def psi_against(
    psi: pd.DataFrame,
    champion: Mapping[str, Any] | None,
    frame: pd.DataFrame,
    score: np.ndarray,
    weights: np.ndarray | None = None,
) -> pd.DataFrame:
    """The fit-window PSI table (``psi``, ``band``) beside the PSI of the same rows against the
    champion's fit window profile (``champion_psi``, ``champion_band``; NaN when there is no
    profile, or a variable the champion did not have)."""
    out = psi.copy()
    if champion is None:
        out["champion_psi"] = np.nan
        out["champion_band"] = ""
        return out
    theirs = psi_table(champion, frame, score=score, weights=weights)
    out["champion_psi"] = theirs["psi"].reindex(out.index)
    out["champion_band"] = theirs["band"].reindex(out.index).fillna("")
    return out


def psi_section(table: pd.DataFrame, champion_note: str, has_champion: bool) -> str:
    """The PSI lines of a model card: the test window against the fit window, then against the
    champion's fit window (or why not)."""
    lines = ["The test window's distributions against the fit window's, and the champion's:"]
    if SCORE in table.index:
        score = table.loc[SCORE]
        against_champion = ""
        if has_champion and not pd.isna(score["champion_psi"]):
            against_champion = (
                f", {score['champion_psi']:.3f} ({score['champion_band']}) against the champion"
            )
        lines.append(
            f"- score: PSI {score['psi']:.3f} ({score['band']}) against the fit window"
            + against_champion
        )
    features = table.drop(index=SCORE, errors="ignore")
    lines.append(f"- features against the fit window: {psi_summary(features)}")
    if has_champion:
        theirs = features[["champion_psi", "champion_band"]].dropna(subset=["champion_psi"])
        theirs.columns = pd.Index(["psi", "band"])
        lines.append(f"- features against {champion_note}: {psi_summary(theirs)}")
    else:
        lines.append(f"- against the champion's training data: {champion_note}")
    return "\n".join(lines)


def credit_card_section(
    v: CreditValidation, psi: pd.DataFrame, champion_note: str, has_champion: bool
) -> str:
    """The model card's validation section (markdown)."""
    d = v.discrimination
    level = f"{d.confidence:.0%}"
    ci_rows = "\n".join(
        f"| {name} | {iv.value:.4f} | [{iv.low:.4f}, {iv.high:.4f}] |"
        for name, iv in (("AUC", d.auc), ("Gini", d.gini), ("KS", d.ks))
    )
    grade_rows = "\n".join(
        f"| {g} | {int(r.clients):,} | {int(r.defaults):,} | {r.mean_pd:.4f} | "
        f"{r.default_rate:.4f} | [{r.jeffreys_low:.4f}, {r.jeffreys_high:.4f}] | "
        f"{r.p_value:.3f} | {'underestimated' if r.underestimated else 'ok'} |"
        for g, r in v.by_grade.iterrows()
    )
    flagged = v.flagged_grades
    mono = monotonicity_table(v.sweeps)
    mono_rows = "\n".join(
        f"| {name} | {r.direction} | {r.grid_points} | {r.clients_violating} of {r.clients} | "
        f"{r.worst_move:.2e} |"
        for name, r in mono.iterrows()
    )
    iv = v.bins.groupby("feature", sort=False)["iv"].first().sort_values(ascending=False)
    iv_text = ", ".join(f"{name} {value:.3f}" for name, value in iv.head(10).items())
    top = v.points[v.points["feature"].isin(list(iv.head(3).index))]
    point_rows = "\n".join(
        f"| {r.feature} | {r.bin} | {r.woe:.3f} | {r.log_odds:.3f} | {r.points:.1f} |"
        for r in top.itertuples()
    )
    return f"""## Validation
Measured on the {v.window.describe()}.

### Discrimination ({level} bootstrap intervals, {d.resamples} resamples of {d.unit}, seed {d.seed})
| metric | value | {level} interval |
| --- | --- | --- |
{ci_rows}

### Calibration by grade
Jeffreys test that the grade's PD is not underestimated, one-sided, level {v.jeffreys_level:g}.

| grade | clients | defaults | mean PD | default rate | Jeffreys {level} | p-value | test |
| --- | --- | --- | --- | --- | --- | --- | --- |
{grade_rows}

{"Grades failing the test: " + ", ".join(flagged) if flagged else "No grade fails the test."}

### Population stability (PSI: < 0.1 stable, 0.1-0.25 watch, > 0.25 shift)
{psi_section(psi, champion_note, has_champion)}

Full table: `tables/psi.csv`; chart `charts/psi.png`.

### Monotonicity of the registered model
Each feature with a monotone direction in the spec is swept over the range of its test-window
values (quantiles and even steps) for {mono["clients"].max() if len(mono) else 0} clients of
the test window, their other features held; a PD moving against the direction by more than
the tolerance is a violation, and any violation refuses promotion.

| feature | direction | grid points | clients against | largest move against |
| --- | --- | --- | --- | --- |
{mono_rows}

{v.veto or "No violation."}

### Scorecard ({v.scorecard_role})
Information value on the fit window, highest first: {iv_text}. Bins and points of the three
strongest features below; every feature's bins (count, event rate, WoE, IV) are in
`tables/scorecard_bins.csv` and its points in `tables/scorecard_points.csv`. Points: the
scorecard's log-odds before calibration, scaled to {v.points_scale}.

| feature | bin | WoE | log-odds | points |
| --- | --- | --- | --- | --- |
{point_rows}
"""
