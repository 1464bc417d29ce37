"""This module owns the fitting of the credit-risk family: the LightGBM PD model and its WoE
scorecard challenger, calibrated on the period after fitting, both carrying the feature
configuration they were trained with.

:class:`CreditRiskEstimator` follows scikit-learn's estimator contract as far as the served
artifact allows: ``__init__`` stores the spec and threads only; :meth:`~CreditRiskEstimator.fit`
takes the fit and calibration frames of a panel (features and the label), returns ``self`` and
leaves the fitted state in attributes ending in ``_``. What is served is ``model_``, a
:class:`~rmreco.modeling.credit_model.CreditRiskModel` saved as JSON and LightGBM text, not a
pickle of the estimator.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Self

import numpy as np
import pandas as pd

from rmreco.features.config import FeatureConfig, SnapshotParams, bank_column_kinds
from rmreco.features.labels import LABEL
from rmreco.modeling.boosting import (
    HeldFitSet,
    fit_binary_booster,
    fit_set_warnings,
    has_split,
)
from rmreco.modeling.calibration import Calibrator
from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.encoding import FeatureEncoder
from rmreco.modeling.master_scale import MasterScale
from rmreco.modeling.scorecard import WoeScorecard
from rmreco.modeling.spec import CreditRiskSpec


def credit_feature_config(spec: CreditRiskSpec) -> FeatureConfig:
    """The feature configuration a model of ``spec`` is trained with and carries."""
    return FeatureConfig(
        family="credit_risk",
        horizon_months=spec.label.horizon_months,
        segments=tuple(str(s) for s in spec.segments),
        features=tuple(spec.feature_names),
        snapshot=SnapshotParams(
            financials_lag_months=spec.financials_lag_months,
            cure_months=spec.label.cure_months,
        ),
        label_events=tuple(str(e) for e in spec.label.events),
    )


class CreditRiskEstimator:
    """Fits the PD model a credit-risk spec describes, and its challenger baseline.

    Parameters:
        spec: the model specification (features, monotone directions, LightGBM and scorecard
            settings, calibration, grades, reasons).
        threads: LightGBM threads for fitting.

    Fitted attributes:
        config_: the :class:`FeatureConfig` both models carry.
        encoder_: the column order and categorical levels.
        lightgbm_, scorecard_: the two calibrated, graded models.
        model_: the one the spec registers (``model.registered``); ``baseline_`` the other.
            With ``registered: best`` LightGBM until the training job, which measures both
            out of time, calls :meth:`register`.
        best_iteration_: LightGBM's boosting rounds after early stopping.
        lightgbm_params_: LightGBM's parameters as fitted (``min_data_in_leaf`` resolved for
            the fit set's size); also in both models' metadata.
        has_split_: whether LightGBM made any split (False: every tree a single leaf).
        scorecard_rows_: the fit rows the scorecard saw (all of them, or with a held fit set
            the sample of it the estimator was given).
        warnings_: what the fit set's size gives reason to doubt, in words.
    """

    def __init__(self, spec: CreditRiskSpec, *, threads: int = 1) -> None:
        self.spec = spec
        self.threads = threads

    def fit(
        self,
        fit: pd.DataFrame,
        calibration: pd.DataFrame,
        *,
        metadata: dict[str, Any] | None = None,
        held: HeldFitSet | None = None,
    ) -> Self:
        """Fit both models on ``fit`` (stopping LightGBM early and calibrating both on
        ``calibration``); ``metadata`` (provenance: name, periods...) is stored with them.

        With ``held`` (a fit set kept on a cluster's workers, of which ``fit`` is a sample of
        whole clients), LightGBM is fitted on the whole set by ``held.fit_booster``, its size
        (``min_data_in_leaf``, the warnings) and the encoder's levels are the whole set's, and
        the scorecard is fitted on ``fit``; ``scorecard_rows_`` says how many rows that was.

        Raises:
            FeatureMismatchError: a frame lacks a feature of the spec.
            ValueError: a frame holds a single outcome class.
        """
        spec = self.spec
        for name, frame in (("fit", fit), ("calibration", calibration)):
            if LABEL not in frame.columns:
                raise ValueError(f"the {name} frame has no label column {LABEL!r}")
            if frame[LABEL].nunique() < 2:
                raise ValueError(f"the {name} frame holds a single outcome class")
        config = replace(
            credit_feature_config(spec),
            bank_columns=bank_column_kinds(fit, spec.feature_names),
        )
        encoder = FeatureEncoder.fit(fit, config.features)
        if held is not None:
            encoder = held.encoder(encoder)
        X_fit, X_cal = encoder.transform(fit), encoder.transform(calibration)
        y_fit, y_cal = fit[LABEL].to_numpy(dtype=int), calibration[LABEL].to_numpy(dtype=int)
        scale = MasterScale.from_bands(spec.master_scale_bands)
        lgb_spec = spec.model.lightgbm
        rows = len(fit) if held is None else held.rows
        events = int(min(y_fit.sum(), len(y_fit) - y_fit.sum())) if held is None else held.events
        params = lgb_spec.resolved_params(rows)
        min_leaf = lgb_spec.min_data_in_leaf(rows)
        self.warnings_ = fit_set_warnings(rows, events, min_leaf, "credit fit set")
        self.scorecard_rows_ = len(fit)
        self.lightgbm_params_ = params
        common: dict[str, Any] = {
            "config": config,
            "encoder": encoder,
            "scale": scale,
            "top_reasons": spec.reasons.top,
            "metadata": {
                "name": spec.name,
                "spec_fingerprint": spec.fingerprint(),
                "min_data_in_leaf": min_leaf,
                "fit_rows": rows,
            }
            | (metadata or {}),
        }
        settings: dict[str, Any] = {
            "encoder": encoder,
            "monotone": [f.direction for f in spec.features],
            "num_boost_round": spec.model.lightgbm.num_boost_round,
            "early_stopping_rounds": spec.model.lightgbm.early_stopping_rounds,
            "seed": spec.seed,
        }
        if held is None:
            booster = fit_binary_booster(
                X_fit,
                y_fit,
                X_cal,
                y_cal,
                params={"num_threads": self.threads, **params},
                **settings,
            )
        else:  # threads: each worker's own (lightgbm.dask sets them), not this process's
            booster = held.fit_booster(X_cal, y_cal, params={**params}, **settings)
        raw_cal = np.asarray(booster.predict(X_cal, raw_score=True))
        self.lightgbm_ = CreditRiskModel(
            kind="lightgbm",
            booster=booster,
            calibrator=Calibrator.fit(raw_cal, y_cal, spec.model.calibration),
            **common,
        )
        card = WoeScorecard(
            bins=spec.model.scorecard.bins, C=spec.model.scorecard.C, random_state=spec.seed
        ).fit(X_fit, y_fit, encoder.categorical_indices, [f.direction for f in spec.features])
        self.scorecard_ = CreditRiskModel(
            kind="scorecard",
            scorecard=card,
            calibrator=Calibrator.fit(card.raw_score(X_cal), y_cal, spec.model.calibration),
            **common,
        )
        self.config_ = config
        self.encoder_ = encoder
        self.best_iteration_ = int(booster.best_iteration or booster.current_iteration())
        self.has_split_ = has_split(booster)
        if not self.has_split_:
            self.warnings_.append(
                f"LightGBM made no split (every tree a single leaf) with min_data_in_leaf "
                f"{min_leaf:,} on {rows:,} fit rows"
            )
        self.register("scorecard" if spec.model.registered == "scorecard" else "lightgbm")
        return self

    def register(self, kind: str) -> None:
        """Make ``kind`` (``lightgbm`` or ``scorecard``) the served model, the other the
        baseline: what ``registered: best`` resolves to once both are measured out of time.

        Raises:
            ValueError: ``kind`` is neither.
        """
        if kind == "lightgbm":
            self.model_, self.baseline_ = self.lightgbm_, self.scorecard_
        elif kind == "scorecard":
            self.model_, self.baseline_ = self.scorecard_, self.lightgbm_
        else:
            raise ValueError(f"unknown model kind {kind!r}; use lightgbm or scorecard")

    def predict_pd(self, frame: pd.DataFrame) -> np.ndarray:
        """The served model's PD of every row of a features frame."""
        return np.asarray(self.model_.predict(frame, with_reasons=False).pd)
