"""This module owns the fitting of the cross-sell family: the stacked and per-product LightGBM
propensity models, the choice between them, their per-product calibration, and the popularity
and logistic baselines they are measured against.

:class:`PropensityEstimator` follows scikit-learn's estimator contract as far as the served
artifact allows: ``__init__`` stores parameters only; :meth:`~PropensityEstimator.fit` takes the
fit and calibration windows of a cross-sell panel, returns ``self`` and leaves the fitted state
in attributes ending in ``_``. What is served is ``model_``, a
:class:`~rmreco.modeling.propensity.PropensityModel` saved as JSON and LightGBM text.

The calibration window's clients are halved by a hash of their id: both LightGBM set-ups stop
early, and are calibrated per product, on one half; the set-up that ranks better (MAP@k) on the
other half is chosen (unless the spec fixes it) and recalibrated per product on the whole
window. The test window never chooses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from rmreco.features.builder import CATEGORICAL_FEATURES
from rmreco.features.config import FeatureConfig, SnapshotParams, bank_column_kinds
from rmreco.features.cross_sell import (
    LABEL,
    PRODUCT,
    PRODUCT_FEATURES,
    WEIGHT,
    catalog_codes,
    holdings_descriptions,
    holdings_feature_names,
)
from rmreco.modeling.boosting import FitRows, HeldFitSet, fit_binary_booster, fit_set_warnings
from rmreco.modeling.calibration import Calibrator, Method
from rmreco.modeling.encoding import FeatureEncoder
from rmreco.modeling.metrics import ranking_metrics
from rmreco.modeling.propensity import POOLED, PropensityModel, catalog_terms
from rmreco.modeling.spec import CrossSellSpec

Progress = Callable[[str], None]


def model_features(spec: CrossSellSpec, codes: Sequence[str]) -> list[str]:
    """The model's columns: the spec's client features, the holdings and product features."""
    extra = [*holdings_feature_names(codes), *PRODUCT_FEATURES] if spec.holdings_features else []
    return [*spec.features, *extra, PRODUCT]


def cross_sell_feature_config(
    spec: CrossSellSpec, codes: Sequence[str] | None = None
) -> FeatureConfig:
    """The feature configuration of a model of ``spec`` for a catalog of ``codes`` (the
    holdings features name the catalog's products; without ``codes``, only the panel
    parameters are meaningful)."""
    return FeatureConfig(
        family="cross_sell",
        horizon_months=spec.label.horizon_months,
        segments=tuple(str(s) for s in spec.segments),
        features=tuple(model_features(spec, codes or [])),
        snapshot=SnapshotParams(
            financials_lag_months=spec.financials_lag_months,
            cure_months=spec.label.cure_months,
        ),
    )


def groups(frame: pd.DataFrame) -> np.ndarray:
    """One group number per (client, month): the lists a ranking metric averages over."""
    codes, _ = pd.factorize(
        pd.MultiIndex.from_arrays([frame["client_id"].to_numpy(), frame["month"].to_numpy()])
    )
    return np.asarray(codes)


def ranking(frame: pd.DataFrame, scores: np.ndarray, k: int, prefix: str) -> dict[str, float]:
    """MAP@k, NDCG@k and precision@1 of each (client, month)'s products ordered by ``scores``
    against the panel's adoptions, named with ``prefix``.

    Only client-snapshots with at least two candidate products count: with one, any model
    ranks it first and scores a perfect hit. ``ranking_groups`` counts those measured (with
    two candidates or more and an adoption); when there are none, every measure is 0."""
    group = groups(frame)
    ranked = np.bincount(group)[group] >= 2
    if not (ranked & (frame[LABEL].to_numpy() > 0)).any():
        return {
            f"{prefix}map_at_{k}": 0.0,
            f"{prefix}ndcg_at_{k}": 0.0,
            f"{prefix}precision_at_1": 0.0,
            f"{prefix}ranking_groups": 0.0,
        }
    m = ranking_metrics(
        group[ranked], frame[LABEL].to_numpy()[ranked], np.asarray(scores)[ranked], k=k
    )
    return {
        f"{prefix}map_at_{k}": m[f"map_at_{k}"],
        f"{prefix}ndcg_at_{k}": m[f"ndcg_at_{k}"],
        f"{prefix}precision_at_1": m["precision_at_1"],
        f"{prefix}ranking_groups": m["groups"],
    }


def calibrate_with(
    calibrators: dict[str, Calibrator], raw: np.ndarray, codes: np.ndarray
) -> np.ndarray:
    """Propensities of raw scores through each row's product calibrator (pooled by default)."""
    out = np.full(len(raw), np.nan)
    for code in pd.unique(codes):
        rows = codes == code
        out[rows] = calibrators.get(str(code), calibrators[POOLED]).transform(raw[rows])
    return out


def client_half(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A fixed half of the clients (by a hash of the client id): True for the first half."""
    hashed = pd.util.hash_array(frame["client_id"].astype(str).to_numpy(object))
    return np.asarray((hashed + np.uint64(seed)) % np.uint64(2) == 0)


def adoption_counts(fit: pd.DataFrame) -> dict[str, int]:
    """The adoptions of each product among the rows of ``fit`` (rows of the sample, not
    weighted back)."""
    taken = fit.loc[fit[LABEL] > 0, PRODUCT].astype(str).value_counts()
    return {str(code): int(n) for code, n in taken.items()}


def rare_products(
    adoptions: Mapping[str, int], codes: Sequence[str], min_adoptions: int
) -> dict[str, int]:
    """The catalog products (``codes``) with fewer than ``min_adoptions`` adoptions in the fit
    window (``adoptions``: see :func:`adoption_counts`), and their adoption counts."""
    return {
        str(c): int(adoptions.get(str(c), 0))
        for c in codes
        if int(adoptions.get(str(c), 0)) < min_adoptions
    }


# --- fitting ---------------------------------------------------------------------------------


def fit_calibrators(
    raw: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    *,
    method: Method = "platt",
    min_adoptions: int = 20,
) -> dict[str, Calibrator]:
    """One calibrator per product with at least ``min_adoptions`` adoptions, and a pooled one
    (key ``"*"``) for the others.

    Raises:
        ValueError: the rows hold a single outcome class.
    """
    codes = np.asarray(codes, dtype=object)
    y = np.asarray(y, dtype=int)
    out = {POOLED: Calibrator.fit(raw, y, method)}
    for code in pd.unique(codes):
        rows = codes == code
        adoptions = int(y[rows].sum())
        if adoptions >= min_adoptions and adoptions < rows.sum():
            out[str(code)] = Calibrator.fit(raw[rows], y[rows], method)
    return out


# --- baselines -------------------------------------------------------------------------------


class PopularityBaseline:
    """Adoption rate among eligible non-holders, by segment and product, from the fit window."""

    def __init__(self, prior_rows: float = 50.0) -> None:
        self.prior_rows = prior_rows

    def fit(
        self,
        segments: np.ndarray,
        codes: np.ndarray,
        y: np.ndarray,
        weight: np.ndarray | None = None,
    ) -> PopularityBaseline:
        """Weighted adoption rates; rare (segment, product) cells shrink to the product's rate."""
        w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=float)
        frame = pd.DataFrame(
            {
                "segment": np.asarray(segments, dtype=str),
                "product": np.asarray(codes, dtype=str),
                "yw": np.asarray(y, dtype=float) * w,
                "w": w,
            }
        )
        product = frame.groupby("product")[["yw", "w"]].sum()
        self.product_rates_ = (product["yw"] / product["w"]).to_dict()
        cells = frame.groupby(["segment", "product"])[["yw", "w"]].sum().reset_index()
        prior = cells["product"].map(self.product_rates_)
        rate = (cells["yw"] + self.prior_rows * prior) / (cells["w"] + self.prior_rows)
        self.rates_ = {
            (s, p): float(r)
            for s, p, r in zip(cells["segment"], cells["product"], rate, strict=True)
        }
        return self

    def score(self, segments: np.ndarray, codes: np.ndarray) -> np.ndarray:
        keys = zip(np.asarray(segments, dtype=str), np.asarray(codes, dtype=str), strict=True)
        return np.asarray(
            [self.rates_.get(k, self.product_rates_.get(k[1], 0.0)) for k in keys], dtype=float
        )


class LogisticPerProduct:
    """One logistic regression per product on standardised numeric features, missing values
    imputed by the median (with missing-value indicators)."""

    def __init__(self, C: float = 1.0, max_iter: int = 500, random_state: int = 0) -> None:
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        codes: np.ndarray,
        weight: np.ndarray | None = None,
        columns: Sequence[int] | None = None,
    ) -> LogisticPerProduct:
        """Fit on the rows of each product; ``columns`` selects the numeric columns of ``X``."""
        self.columns_ = list(range(X.shape[1]) if columns is None else columns)
        codes = np.asarray(codes, dtype=object)
        y = np.asarray(y, dtype=int)
        self.models_: dict[str, Pipeline] = {}
        self.fallback_: dict[str, float] = {}
        for code in pd.unique(codes):
            rows = codes == code
            if len(np.unique(y[rows])) < 2:
                self.fallback_[str(code)] = float(y[rows].mean())
                continue
            model = make_pipeline(
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                StandardScaler(),
                LogisticRegression(
                    C=self.C, max_iter=self.max_iter, random_state=self.random_state
                ),
            )
            fit_kwargs = {}
            if weight is not None:
                fit_kwargs["logisticregression__sample_weight"] = np.asarray(weight)[rows]
            model.fit(X[rows][:, self.columns_], y[rows], **fit_kwargs)
            self.models_[str(code)] = model
        return self

    def raw_score(self, X: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Log-odds of adoption by each row's product model."""
        codes = np.asarray(codes, dtype=object)
        out = np.full(len(X), np.nan)
        for code in pd.unique(codes):
            rows = codes == code
            model = self.models_.get(str(code))
            if model is not None:
                out[rows] = model.decision_function(X[rows][:, self.columns_])
            else:
                rate = min(max(self.fallback_.get(str(code), 1e-6), 1e-6), 1 - 1e-6)
                out[rows] = math.log(rate / (1 - rate))
        return out


# --- the estimator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Windows:
    """The fit and calibration windows as the models read them. ``stop`` marks the half of the
    calibration window's clients that early stopping (and, for the choice, the calibrators)
    read; the choice between the set-ups reads the other half, so that neither set-up is judged
    on the rows that tuned it."""

    X_fit: np.ndarray
    y_fit: np.ndarray
    w_fit: np.ndarray
    p_fit: np.ndarray
    X_cal: np.ndarray
    y_cal: np.ndarray
    p_cal: np.ndarray
    stop: np.ndarray

    @classmethod
    def of(
        cls, encoder: FeatureEncoder, fit: pd.DataFrame, calibration: pd.DataFrame, seed: int
    ) -> _Windows:
        return cls(
            X_fit=encoder.transform(fit),
            y_fit=fit[LABEL].to_numpy(int),
            w_fit=fit[WEIGHT].to_numpy(float),
            p_fit=fit[PRODUCT].astype(str).to_numpy(object),
            X_cal=encoder.transform(calibration),
            y_cal=calibration[LABEL].to_numpy(int),
            p_cal=calibration[PRODUCT].astype(str).to_numpy(object),
            stop=client_half(calibration, seed),
        )


class PropensityEstimator:
    """Fits the propensity models a cross-sell spec describes, chooses the served one, and fits
    the baselines.

    Parameters:
        spec: the model specification.
        products: the catalog (the contract's ``products`` table): its codes name the holdings
            features and its terms value the offers.
        threads: LightGBM threads for fitting.

    Fitted attributes:
        config_, encoder_: the feature configuration and encoding every model shares.
        stacked_, per_product_: the two calibrated LightGBM set-ups.
        model_: the one chosen (``model.choose``); ``baseline_`` the popularity baseline.
        popularity_, logistic_, logistic_calibrators_: the baselines.
        choice_metrics_, comparison_: how the choice was made, in figures and in words.
        left_out_: catalog products with fewer than ``model.min_fit_adoptions`` adoptions in
            the fit window, by adoption count: left out of every model of the run (not scored,
            not in ``model_.products`` nor its catalog).
        warnings_: what the run gives reason to doubt (left-out products, a tiny fit set), in
            words.
        fit_rows_: the rows LightGBM was fitted on (the stacked model's: the fit window's, but
            those of the products left out).
    """

    def __init__(self, spec: CrossSellSpec, products: pd.DataFrame, *, threads: int = 1) -> None:
        self.spec = spec
        self.products = products
        self.threads = threads

    def fit(
        self,
        fit: pd.DataFrame,
        calibration: pd.DataFrame,
        *,
        metadata: dict[str, Any] | None = None,
        on_step: Progress | None = None,
        held: HeldFitSet | None = None,
    ) -> Self:
        """Fit on the ``fit`` window (its ``weight`` column weighs sampled rows back), stop
        early, calibrate and choose on ``calibration``; ``metadata`` is stored with the models.

        With ``held`` (a fit window kept on a cluster's workers, grouped by product, of which
        ``fit`` is a sample of whole clients), both LightGBM set-ups are fitted on the whole
        window by ``held.fit_booster``; the products left out, the models' sizes
        (``min_data_in_leaf``, the warnings) and the encoder's levels are the whole window's;
        the baselines (popularity, logistic regression) are fitted on ``fit``.

        Raises:
            FeatureMismatchError: a frame lacks a feature of the spec.
        """
        step = on_step or (lambda _message: None)
        spec = self.spec
        codes = catalog_codes(self.products)
        adoptions = (
            adoption_counts(fit)
            if held is None
            else {code: group.positives for code, group in held.groups.items()}
        )
        self.left_out_ = rare_products(adoptions, codes, spec.model.min_fit_adoptions)
        if len(self.left_out_) == len(codes):
            raise ValueError(
                f"every catalog product has fewer than {spec.model.min_fit_adoptions} adoptions "
                f"in the fit window ({self.left_out_}); lower model.min_fit_adoptions"
            )
        self.warnings_ = [
            f"product {code} left out of this run's model: {n} adoption"
            f"{'s' if n != 1 else ''} in the fit window (model.min_fit_adoptions "
            f"{spec.model.min_fit_adoptions}); it is not scored nor offered"
            for code, n in self.left_out_.items()
        ]
        if self.left_out_:
            fit = fit[~fit[PRODUCT].astype(str).isin(self.left_out_)].reset_index(drop=True)
            calibration = calibration[
                ~calibration[PRODUCT].astype(str).isin(self.left_out_)
            ].reset_index(drop=True)
        lgb_spec = spec.model.lightgbm
        self._held = held
        self._kept = tuple(str(c) for c in codes if str(c) not in self.left_out_)
        if held is None:
            y = fit[LABEL].to_numpy(int)
            n_rows, positives = len(y), int(y.sum())
        else:
            kept = [held.groups[c] for c in self._kept if c in held.groups]
            n_rows, positives = sum(g.rows for g in kept), sum(g.positives for g in kept)
        self.fit_rows_ = n_rows
        self.warnings_ += fit_set_warnings(
            n_rows,
            min(positives, n_rows - positives),
            lgb_spec.min_data_in_leaf(n_rows),
            "cross-sell fit set",
        )
        config = replace(
            cross_sell_feature_config(spec, codes),
            bank_columns=bank_column_kinds(fit, spec.features),
        )
        encoder = FeatureEncoder.fit(
            fit, config.features, categorical=(*CATEGORICAL_FEATURES, PRODUCT)
        )
        if held is not None:  # the whole window's levels, its products but those left out
            encoder = held.encoder(encoder)
            products = tuple(c for c in encoder.categories[PRODUCT] if c in self._kept)
            encoder = replace(encoder, categories={**encoder.categories, PRODUCT: products})
        rows = _Windows.of(encoder, fit, calibration, spec.seed)
        self.config_, self.encoder_ = config, encoder
        provenance = {"name": spec.name, "spec_fingerprint": spec.fingerprint()} | (metadata or {})
        step(f"fitting the stacked LightGBM model on {n_rows:,} rows")
        every = np.ones(len(rows.X_fit), dtype=bool)
        self.stacked_ = self._calibrated(
            "stacked",
            {POOLED: self._booster(rows, every, rows.stop, {}, products=self._kept)},
            rows,
            provenance,
        )
        boosters: dict[str, lgb.Booster] = {}
        levels = encoder.categories[PRODUCT]
        for n, code in enumerate(levels):
            step(f"fitting per-product LightGBM models ({n + 1}/{len(levels)})")
            mine = rows.p_fit == code
            taken = rows.y_fit[mine].sum() if held is None else adoptions.get(code, 0)
            if taken == 0:
                continue  # a product nobody took in the fit window: scored by nothing
            boosters[code] = self._booster(
                rows,
                mine,
                (rows.p_cal == code) & rows.stop,
                spec.model.per_product_params,
                products=(code,),
            )
        self.per_product_ = self._calibrated("per_product", boosters, rows, provenance)
        self._choose(rows, calibration[~rows.stop].reset_index(drop=True))
        step("fitting the baselines (popularity, logistic regression per product)")
        self._fit_baselines(fit, rows)
        return self

    def _calibrators(self, raw: np.ndarray, y: np.ndarray, codes: np.ndarray) -> Any:
        return fit_calibrators(
            raw,
            y,
            codes,
            method=self.spec.model.calibration,
            min_adoptions=self.spec.model.min_calibration_adoptions,
        )

    def _booster(
        self,
        rows: _Windows,
        fit: np.ndarray,
        stop: np.ndarray,
        extra: dict[str, Any],
        *,
        products: tuple[str, ...],
    ) -> lgb.Booster:
        """A LightGBM model on the ``fit`` rows (those of ``products`` in a held window),
        stopped early on the ``stop`` rows."""
        lgb_spec = self.spec.model.lightgbm
        settings: dict[str, Any] = {
            "encoder": self.encoder_,
            "num_boost_round": lgb_spec.num_boost_round,
            "early_stopping_rounds": lgb_spec.early_stopping_rounds,
            "seed": self.spec.seed,
        }
        held = self._held
        if held is None:
            return fit_binary_booster(
                rows.X_fit[fit],
                rows.y_fit[fit],
                rows.X_cal[stop],
                rows.y_cal[stop],
                weight=rows.w_fit[fit],
                params={
                    "num_threads": self.threads,
                    **lgb_spec.resolved_params(int(fit.sum())),
                    **extra,
                },
                **settings,
            )
        n_rows = sum(held.groups[c].rows for c in products if c in held.groups)
        # threads: each worker's own (lightgbm.dask sets them), not this process's
        return held.fit_booster(
            rows.X_cal[stop],
            rows.y_cal[stop],
            params={**lgb_spec.resolved_params(n_rows), **extra},
            rows=FitRows(PRODUCT, products),
            **settings,
        )

    def _calibrated(
        self,
        kind: str,
        boosters: dict[str, lgb.Booster],
        rows: _Windows,
        provenance: dict[str, Any],
    ) -> PropensityModel:
        """The served model of a set-up, calibrated per product on the whole window."""
        spec = self.spec
        draft = PropensityModel(
            kind=kind,  # type: ignore[arg-type]
            config=self.config_,
            encoder=self.encoder_,
            boosters=boosters,
            calibrators={POOLED: Calibrator(method="platt")},
            catalog={
                code: terms
                for code, terms in catalog_terms(self.products).items()
                if code not in self.left_out_
            },
            descriptions=holdings_descriptions(self.products),
            max_credit_grade=spec.credit_gate.max_grade,
            ungraded=spec.credit_gate.ungraded,
            top_reasons=spec.reasons.top,
            metadata={**provenance, "kind": kind, "left_out_products": dict(self.left_out_)},
        )
        draft.calibrators = self._calibrators(draft.raw_score(rows.X_cal), rows.y_cal, rows.p_cal)
        return draft

    def _choose(self, rows: _Windows, choose_rows: pd.DataFrame) -> None:
        """Rank the choosing half of the calibration window with each set-up, calibrated on the
        stopping half only (the per-product set-up leans on its calibrators to compare
        products, and calibrators fitted on the rows being ranked would flatter it)."""
        spec, k, stop = self.spec, self.spec.ranking_k, rows.stop

        def held_out(model: PropensityModel) -> np.ndarray:
            raw = model.raw_score(rows.X_cal)
            calibrators = self._calibrators(raw[stop], rows.y_cal[stop], rows.p_cal[stop])
            return calibrate_with(calibrators, raw[~stop], rows.p_cal[~stop])

        choice = {
            **ranking(choose_rows, held_out(self.stacked_), k, "stacked_calibration_"),
            **ranking(choose_rows, held_out(self.per_product_), k, "per_product_calibration_"),
        }
        s_map = choice[f"stacked_calibration_map_at_{k}"]
        p_map = choice[f"per_product_calibration_map_at_{k}"]
        better = "stacked" if s_map >= p_map else "per_product"
        chosen_kind = better if spec.model.choose == "auto" else spec.model.choose
        self.comparison_ = (
            f"calibration-window MAP@{k} (clients not used for early stopping): "
            f"stacked {s_map:.4f}, per-product {p_map:.4f}; "
            f"{better} is better; registered: {chosen_kind}"
            + (" (auto)" if spec.model.choose == "auto" else " (fixed by the spec)")
        )
        self.choice_metrics_ = choice
        self.model_ = self.stacked_ if chosen_kind == "stacked" else self.per_product_

    def _fit_baselines(self, fit: pd.DataFrame, rows: _Windows) -> None:
        spec, encoder = self.spec, self.encoder_
        self.popularity_ = PopularityBaseline().fit(
            fit["segment"].astype(str).to_numpy(), rows.p_fit, rows.y_fit, rows.w_fit
        )
        self.baseline_ = self.popularity_
        numeric = [i for i, name in enumerate(encoder.features) if name not in encoder.categories]
        self.logistic_ = LogisticPerProduct(
            C=spec.model.logistic.C, max_iter=spec.model.logistic.max_iter, random_state=spec.seed
        ).fit(rows.X_fit, rows.y_fit, rows.p_fit, rows.w_fit, columns=numeric)
        self.logistic_calibrators_ = self._calibrators(
            self.logistic_.raw_score(rows.X_cal, rows.p_cal), rows.y_cal, rows.p_cal
        )

    def rank_by_popularity(self, products: Sequence[str]) -> None:
        """Serve ``products`` by their popularity rate instead of the model: the popularity
        baseline's adoption rate of the product over the fit window (all segments, sampled
        rows weighted back), the same propensity for every client. The choice is the
        training job's (a product its model ranks no better than chance on the test window);
        it is saved with :attr:`model_`."""
        rates = self.popularity_.product_rates_
        self.model_.use_popularity({str(c): float(rates.get(str(c), 0.0)) for c in products})

    def baseline_scores(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Propensities of every fitted set-up and baseline on the rows of ``frame``."""
        X = self.encoder_.transform(frame)
        codes = frame[PRODUCT].astype(str).to_numpy(object)
        return {
            "model": self.model_.predict_propensity(X),
            "stacked": self.stacked_.predict_propensity(X),
            "per_product": self.per_product_.predict_propensity(X),
            "popularity": self.popularity_.score(frame["segment"].astype(str).to_numpy(), codes),
            "logistic": calibrate_with(
                self.logistic_calibrators_, self.logistic_.raw_score(X, codes), codes
            ),
        }
