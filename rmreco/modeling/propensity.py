"""The cross-sell propensity model as served, its baselines, and the value of an offer.

:class:`PropensityModel` holds either one LightGBM model over stacked (client, product) rows
with the product as a feature (``stacked``), or one LightGBM model per product
(``per_product``); raw log-odds go through a Platt (or isotonic) calibrator of the row's product,
fitted on a period after fitting, so that a propensity of 5% means 5% whatever the product.
Saved as plain files (``model.json`` and LightGBM text), like the credit model.

Each product has a ranker: its model (``"model"``), or, when the model ranks that product's
clients no better than chance on the test window, the product's popularity rate
(``"popularity"``: the adoption rate among eligible non-holders, the same propensity for every
client; see :meth:`PropensityModel.use_popularity`). The ranker lives in the model, so that
training's evaluation, batch scoring and the service read the same propensities.

Expected value of offering product p to a client (one year of margin, weighted by the chance
the client takes it):

    expected_value = propensity x annual_margin(p)
    annual_margin(p) = annual_fee                                            (service)
                     = margin_rate x limit_turnover_share x annual_turnover  (financing)

where annual_turnover is the client's declared turnover, or its account inflows over the last
12 months when none is declared (``turnover_log`` / ``inflow_12m_log`` of the builder).

Financing products are offered only when the client's grade from the credit-risk champion is no
worse than ``max_credit_grade`` (see :func:`credit_allows`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

from rmreco.domain.contract import ProductKind
from rmreco.features.config import FeatureConfig
from rmreco.features.cross_sell import PRODUCT
from rmreco.features.reasons import is_reason
from rmreco.modeling.calibration import Calibrator
from rmreco.modeling.credit_model import (
    Reason,
    build_reasons,
    reasons_json,
    recorded_currency,
)
from rmreco.modeling.encoding import FeatureEncoder
from rmreco.modeling.master_scale import MasterScale

Kind = Literal["stacked", "per_product"]
Ranker = Literal["model", "popularity"]
#: 2: the model carries its feature configuration (``feature_config``); 3: and the products
#: ranked by popularity (``popularity``). Format 2 is read as every product ranked by the model.
FORMAT_VERSION = 3
READABLE_FORMATS = (2, 3)
FAMILY = "cross_sell"
#: Calibrator used for a product with too few adoptions in the calibration window.
POOLED = "*"
#: Builder features the expected value reads (declared turnover, else 12-month inflows).
VALUE_INPUTS = ("turnover_log", "inflow_12m_log")


# --- value -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductTerms:
    """The catalog's commercial terms of one product."""

    code: str
    name: str
    kind: str
    annual_fee: float | None = None
    margin_rate: float | None = None
    limit_turnover_share: float | None = None

    @property
    def is_financing(self) -> bool:
        return self.kind == ProductKind.FINANCING

    def annual_margin(self, turnover: np.ndarray) -> np.ndarray:
        """One year of the product's margin for clients of the given annual turnover; NaN where
        it is unknown: the catalog leaves the product's terms empty (a service without
        ``annual_fee``, financing without ``margin_rate`` or ``limit_turnover_share``), or a
        financing client's turnover is unknown. Unknown is not zero: such offers keep their
        propensity and are ranked after the offers whose value is known."""
        turnover = np.asarray(turnover, dtype=float)
        if self.is_financing:
            if self.margin_rate is None or self.limit_turnover_share is None:
                return np.full(turnover.shape, np.nan)
            return self.margin_rate * self.limit_turnover_share * turnover
        return np.full(turnover.shape, np.nan if self.annual_fee is None else self.annual_fee)


def catalog_terms(products: pd.DataFrame) -> dict[str, ProductTerms]:
    """The terms of every product of a catalog table (the contract's ``products``)."""

    def number(row: pd.Series, column: str) -> float | None:
        value = row.get(column)
        return None if value is None or pd.isna(value) else float(value)

    return {
        str(row[PRODUCT]): ProductTerms(
            code=str(row[PRODUCT]),
            name=str(row.get("name", row[PRODUCT])),
            kind=str(row["kind"]),
            annual_fee=number(row, "annual_fee"),
            margin_rate=number(row, "margin_rate"),
            limit_turnover_share=number(row, "limit_turnover_share"),
        )
        for _, row in products.iterrows()
    }


def annual_turnover(frame: pd.DataFrame) -> np.ndarray:
    """Declared annual turnover, or the last 12 months' inflows when none is declared."""

    def column(name: str) -> np.ndarray | None:
        if name not in frame:
            return None
        return np.expm1(pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float))

    declared_v, observed_v = column("turnover_log"), column("inflow_12m_log")
    if declared_v is None and observed_v is None:
        return np.full(len(frame), np.nan)
    if declared_v is None:
        return np.asarray(observed_v)
    if observed_v is None:
        return declared_v
    return np.where(np.isnan(declared_v) | (declared_v <= 0), observed_v, declared_v)


def expected_value(
    codes: Sequence[str] | np.ndarray,
    propensity: np.ndarray,
    turnover: np.ndarray,
    catalog: dict[str, ProductTerms],
) -> np.ndarray:
    """propensity x annual margin of each row's product (NaN for a product not in ``catalog``)."""
    codes = np.asarray(codes, dtype=object)
    margin = np.full(len(codes), np.nan)
    for code, terms in catalog.items():
        rows = codes == code
        if rows.any():
            margin[rows] = terms.annual_margin(np.asarray(turnover, dtype=float)[rows])
    return np.asarray(propensity, dtype=float) * margin


def value_order(expected_value: np.ndarray, propensity: np.ndarray) -> np.ndarray:
    """A score whose descending order is the list's order: offers with a known expected value
    by that value (ties by propensity), then offers of unknown value by propensity."""
    value = np.asarray(expected_value, dtype=float)
    known = ~np.isnan(value)
    order = np.lexsort((np.asarray(propensity, dtype=float), np.where(known, value, 0.0), known))
    score = np.empty(len(value))
    score[order] = np.arange(len(value), dtype=float)
    return score


def credit_allows(
    grades: Sequence[str | None] | np.ndarray,
    *,
    scale: MasterScale,
    max_grade: str,
    ungraded: Literal["include", "exclude"] = "include",
) -> np.ndarray:
    """Whether financing may be offered to clients of these grades (None: not graded).

    Raises:
        ValueError: ``max_grade`` is not a grade of ``scale``.
    """
    if max_grade not in scale.grades:
        raise ValueError(f"max credit grade {max_grade!r} is not on the master scale")
    limit = scale.rank(max_grade)
    out = np.empty(len(grades), dtype=bool)
    for i, grade in enumerate(grades):
        if grade is None or (isinstance(grade, float) and math.isnan(grade)):
            out[i] = ungraded == "include"
        else:
            out[i] = str(grade) in scale.grades and scale.rank(str(grade)) <= limit
    return out


# --- the served model ------------------------------------------------------------------------


@dataclass(frozen=True)
class PropensityPredictions:
    propensity: np.ndarray
    expected_value: np.ndarray
    reasons: list[list[Reason]]


class PropensityModel:
    """Calibrated propensities, expected values and reasons for (client, product) rows."""

    def __init__(
        self,
        *,
        kind: Kind,
        config: FeatureConfig,
        encoder: FeatureEncoder,
        boosters: dict[str, lgb.Booster],
        calibrators: dict[str, Calibrator],
        catalog: dict[str, ProductTerms],
        descriptions: dict[str, str] | None = None,
        max_credit_grade: str | None = None,
        ungraded: Literal["include", "exclude"] = "include",
        top_reasons: int = 3,
        metadata: dict[str, Any] | None = None,
        popularity: dict[str, float] | None = None,
    ) -> None:
        if PRODUCT not in encoder.categories:
            raise ValueError(f"a propensity model needs {PRODUCT!r} as a categorical feature")
        if kind == "stacked" and set(boosters) != {POOLED}:
            raise ValueError("a stacked model has one booster, under the key '*'")
        if POOLED not in calibrators:
            raise ValueError("a propensity model needs a pooled calibrator (key '*')")
        if config.family != FAMILY or tuple(config.features) != tuple(encoder.features):
            raise ValueError("the feature configuration does not describe this model's input")
        self.kind = kind
        self.config = config
        self.encoder = encoder
        self.boosters = boosters
        self.calibrators = calibrators
        self.catalog = catalog
        self.descriptions = dict(descriptions or {})
        self.max_credit_grade = max_credit_grade
        self.ungraded: Literal["include", "exclude"] = ungraded
        self.top_reasons = top_reasons
        self.metadata = dict(metadata or {})
        #: prediction threads: one, as for the credit model (see there)
        self.threads = 1
        self._product_column = encoder.features.index(PRODUCT)
        #: the propensity of every product ranked by popularity (see :meth:`use_popularity`)
        self.popularity: dict[str, float] = {}
        self.use_popularity(popularity or {})

    @property
    def features(self) -> tuple[str, ...]:
        return self.encoder.features

    @property
    def products(self) -> tuple[str, ...]:
        """Products the model scores (levels of ``product_code`` seen in fitting)."""
        return self.encoder.categories[PRODUCT]

    @property
    def financing_products(self) -> list[str]:
        """The catalog's credit products among those the model knows (the credit-aware view
        and the credit grade rule apply to them)."""
        return [code for code, terms in self.catalog.items() if terms.is_financing]

    @property
    def rankers(self) -> dict[str, Ranker]:
        """The ranker of every product the model knows: its model, or its popularity rate."""
        return {c: "popularity" if c in self.popularity else "model" for c in self.products}

    def use_popularity(self, rates: dict[str, float]) -> None:
        """Rank the given products by their popularity rate (a propensity in [0, 1], the same
        for every client) instead of their model; the other products keep their model.

        Raises:
            ValueError: a product the model does not know, or a rate outside [0, 1].
        """
        unknown = sorted(set(rates) - set(self.products))
        if unknown:
            raise ValueError(f"products {unknown} are not products of this model")
        bad = sorted(c for c, r in rates.items() if not 0.0 <= float(r) <= 1.0)
        if bad:
            raise ValueError(f"popularity rates of {bad} are not probabilities")
        self.popularity = {str(c): float(r) for c, r in rates.items()}

    @property
    def input_columns(self) -> list[str]:
        """Columns :meth:`predict` reads: the features and the expected value's inputs."""
        return [*self.features, *(c for c in VALUE_INPUTS if c not in self.features)]

    def product_codes(self, X: np.ndarray) -> np.ndarray:
        """The product of each row of an encoded matrix (None when unknown to the model)."""
        index = X[:, self._product_column]
        levels = np.asarray([*self.products, None], dtype=object)
        safe = np.where(np.isnan(index), len(self.products), index).astype(int)
        return levels[safe]

    def _groups(self, X: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """(booster key, row indices) pairs covering the rows of a known product."""
        codes = self.product_codes(X)
        if self.kind == "stacked":
            return [(POOLED, np.flatnonzero(codes != None))]  # noqa: E711 (elementwise)
        return [
            (code, np.flatnonzero(codes == code)) for code in self.products if code in self.boosters
        ]

    # --- scoring ---------------------------------------------------------------------------

    def raw_score(self, X: np.ndarray) -> np.ndarray:
        """Uncalibrated log-odds of adoption; NaN for a product the model does not know."""
        out = np.full(len(X), np.nan)
        for key, rows in self._groups(X):
            if len(rows):
                out[rows] = self.boosters[key].predict(
                    X[rows], raw_score=True, num_threads=self.threads
                )
        return out

    def calibrate(self, raw: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Calibrated propensities of raw scores, by each row's product; a product ranked by
        popularity gets its popularity rate whatever its raw score."""
        out = np.full(len(raw), np.nan)
        for code in pd.unique(codes):
            if code is None:
                continue
            rows = codes == code
            if str(code) in self.popularity:
                out[rows] = self.popularity[str(code)]
                continue
            calibrator = self.calibrators.get(str(code), self.calibrators[POOLED])
            out[rows] = calibrator.transform(raw[rows])
        return out

    def predict_propensity(self, X: np.ndarray) -> np.ndarray:
        return self.calibrate(self.raw_score(X), self.product_codes(X))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-feature log-odds contributions (TreeSHAP), bias last; NaN for unknown products."""
        out = np.full((len(X), len(self.features) + 1), np.nan)
        for key, rows in self._groups(X):
            if len(rows):
                out[rows] = self.boosters[key].predict(
                    X[rows], pred_contrib=True, num_threads=self.threads
                )
        return out

    def predict_matrix(
        self,
        X: np.ndarray,
        turnover: np.ndarray,
        *,
        with_reasons: bool = True,
        currency: str | None = None,
    ) -> PropensityPredictions:
        """Propensity, expected value and reasons from an encoded matrix (see :attr:`encoder`)
        and each row's annual turnover (see :func:`annual_turnover`); ``currency`` (ISO 4217)
        is named after amounts in the reasons."""
        codes = self.product_codes(X)
        propensity = self.calibrate(self.raw_score(X), codes)
        value = expected_value(codes, propensity, turnover, self.catalog)
        reasons = (
            self.reasons(X, currency=currency) if with_reasons else [[] for _ in range(len(X))]
        )
        return PropensityPredictions(propensity=propensity, expected_value=value, reasons=reasons)

    def predict(
        self, frame: pd.DataFrame, *, with_reasons: bool = True, currency: str | None = None
    ) -> PropensityPredictions:
        """Propensity, expected value and reasons of every (client, product) row of a frame."""
        return self.predict_matrix(
            self.encoder.transform(frame),
            annual_turnover(frame),
            with_reasons=with_reasons,
            currency=currency,
        )

    def predict_records(
        self,
        records: Sequence[dict[str, Any]],
        *,
        with_reasons: bool = True,
        currency: str | None = None,
    ) -> PropensityPredictions:
        """:meth:`predict` of (client, product) dicts (the service's stored offer candidates),
        through the request path's encoder (``FeatureEncoder.transform_records``)."""
        turnover = annual_turnover(
            pd.DataFrame({c: [r.get(c) for r in records] for c in VALUE_INPUTS}, dtype=float)
        )
        return self.predict_matrix(
            self.encoder.transform_records(records),
            turnover,
            with_reasons=with_reasons,
            currency=currency,
        )

    def reasons(
        self, X: np.ndarray, top: int | None = None, *, currency: str | None = None
    ) -> list[list[Reason]]:
        """The features that raised each propensity most, strongest first, in an RM's words
        and the reason catalogue's codes (``currency``, ISO 4217, is named after amounts).
        The product itself, and features that describe the extract rather than the client,
        are not reasons; a product ranked by popularity has none (its propensity does not
        depend on the client), nor has a product the model does not know. A feature the
        catalogue does not know reads with the model's own description (``descriptions``)."""
        top = self.top_reasons if top is None else top
        codes = self.product_codes(X)
        # only rows of a product the model ranks have contributions worth computing: TreeSHAP
        # is most of a batch's time, and each row's contributions are its own
        explained = np.flatnonzero(
            (codes != None) & ~np.isin(codes, list(self.popularity))  # noqa: E711 (elementwise)
        )
        out: list[list[Reason]] = [[] for _ in range(len(X))]
        if not len(explained):
            return out
        rows = X[explained]
        contrib = np.nan_to_num(self.contributions(rows)[:, :-1], nan=0.0)
        found = build_reasons(
            rows,
            contrib,
            self._is_reason,
            top,
            features=self.encoder.features,
            value_of=self._value,
            target="take-up",
            currency=currency or recorded_currency(self.metadata),
            products={code: terms.name for code, terms in self.catalog.items()},
            descriptions=self.descriptions,
        )
        for i, reasons_of in zip(explained.tolist(), found, strict=True):
            out[i] = reasons_of
        return out

    @cached_property
    def _is_reason(self) -> np.ndarray:
        """Per input column: may the feature be a reason (see :func:`is_reason`)."""
        return np.array([is_reason(name) for name in self.encoder.features], dtype=bool)

    def _value(self, name: str, code: float) -> float | str | None:
        if name in self.encoder.categories:
            return self.encoder.level(name, code)
        return None if math.isnan(code) else code

    # --- persistence -----------------------------------------------------------------------

    def save(self, folder: Path) -> Path:
        """Write the model as ``model.json`` and ``booster_<n>.txt`` files into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for n, (key, booster) in enumerate(sorted(self.boosters.items())):
            name = f"booster_{n}.txt"
            booster.save_model(str(folder / name))
            files[key] = name
        data: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "family": FAMILY,
            "kind": self.kind,
            "feature_config": self.config.to_dict(),
            "encoder": self.encoder.to_dict(),
            "boosters": files,
            "calibrators": {k: c.to_dict() for k, c in self.calibrators.items()},
            "catalog": {k: asdict(t) for k, t in self.catalog.items()},
            "descriptions": self.descriptions,
            "max_credit_grade": self.max_credit_grade,
            "ungraded": self.ungraded,
            "top_reasons": self.top_reasons,
            "metadata": self.metadata,
            "popularity": self.popularity,
        }
        (folder / "model.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: Path) -> PropensityModel:
        """Read a model written by :meth:`save`.

        Raises:
            ValueError: the folder holds no propensity model of a format this code reads.
        """
        path = folder / "model.json"
        if not path.exists():
            raise ValueError(f"{folder} holds no propensity model (model.json missing)")
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format_version") not in READABLE_FORMATS:
            raise ValueError(
                f"model format {data.get('format_version')} is not supported (this rmreco reads "
                f"formats {', '.join(map(str, READABLE_FORMATS))}, which record the feature "
                "configuration): retrain it"
            )
        if data.get("family") != FAMILY:
            raise ValueError(f"{folder} holds a {data.get('family')} model, not a propensity model")
        return cls(
            kind=data["kind"],
            config=FeatureConfig.from_dict(data["feature_config"]),
            encoder=FeatureEncoder.from_dict(data["encoder"]),
            boosters={
                k: lgb.Booster(model_file=str(folder / name))
                for k, name in data["boosters"].items()
            },
            calibrators={k: Calibrator.from_dict(c) for k, c in data["calibrators"].items()},
            catalog={k: ProductTerms(**t) for k, t in data["catalog"].items()},
            descriptions=data.get("descriptions", {}),
            max_credit_grade=data.get("max_credit_grade"),
            ungraded=data.get("ungraded", "include"),
            top_reasons=int(data["top_reasons"]),
            metadata=data.get("metadata", {}),
            # format 2 predates the popularity fallback: every product ranked by its model
            popularity=data.get("popularity", {}),
        )


# --- the ranked list -------------------------------------------------------------------------


def rank_offers(
    model: PropensityModel,
    frame: pd.DataFrame,
    *,
    grades: np.ndarray | None = None,
    scale: MasterScale | None = None,
    with_reasons: bool = False,
    group: Sequence[str] = ("client_id", "month"),
    currency: str | None = None,
    predictions: PropensityPredictions | None = None,
) -> pd.DataFrame:
    """Each client's offers ranked by expected value (rank 1 the highest), as batch scoring
    writes them.

    ``frame`` holds (client, product) rows of eligible products the client does not hold (the
    cross-sell panel). Financing rows are dropped unless :func:`credit_allows` the row's
    ``grades`` (None: not graded; no ``grades`` at all: nobody is graded). Rows of products the
    model does not know are dropped.

    ``predictions`` are the model's propensities and expected values of ``frame``'s rows when
    the caller has them already (``model.predict(frame, with_reasons=False)``); reasons are
    computed for the rows kept only.

    Returns:
        the ``group`` columns, ``product_code``, ``propensity``, ``expected_value``, ``rank``
        (and, when asked, ``reasons`` as JSON and their catalogue codes as ``reason_codes``),
        plus the frame's index as ``row`` for joining back.

    Raises:
        ValueError: ``predictions`` are not of ``frame``'s rows, or ``grades`` come without a
            master scale.
    """
    result = model.predict(frame, with_reasons=False) if predictions is None else predictions
    if len(result.propensity) != len(frame):
        raise ValueError(
            f"predictions of {len(result.propensity)} rows for a frame of {len(frame)} rows"
        )
    codes = np.asarray(frame[PRODUCT].astype(str), dtype=object)
    out = pd.DataFrame({name: frame[name].to_numpy() for name in group})
    out[PRODUCT] = codes
    out["propensity"] = result.propensity
    out["expected_value"] = result.expected_value
    keep = ~np.isnan(result.propensity)
    if model.max_credit_grade is not None:
        financing = np.isin(codes, model.financing_products)
        row_grades = np.full(len(frame), None, dtype=object) if grades is None else grades
        if scale is None and grades is not None:
            raise ValueError("grades need the credit model's master scale")
        allowed = (
            credit_allows(
                row_grades, scale=scale, max_grade=model.max_credit_grade, ungraded=model.ungraded
            )
            if scale is not None
            else np.full(len(frame), model.ungraded == "include")
        )
        keep &= ~financing | allowed
    if with_reasons:
        # explained only where kept: the reasons of a row dropped here are never read
        kept = np.flatnonzero(keep).tolist()
        found = model.reasons(model.encoder.transform(frame.iloc[kept]), currency=currency)
        texts = ["[]"] * len(frame)
        reason_codes: list[list[str]] = [[] for _ in range(len(frame))]
        for i, text, row in zip(kept, reasons_json(found), found, strict=True):
            texts[i] = text
            reason_codes[i] = [r.code for r in row]
        out["reasons"] = texts
        out["reason_codes"] = reason_codes
    out["row"] = frame.index.to_numpy()
    out = out[keep]
    out = out.sort_values(
        [*group, "expected_value", "propensity"],
        ascending=[True] * len(group) + [False, False],
        kind="stable",
        na_position="last",  # an unknown value (see ProductTerms.annual_margin) ranks last
    )
    out.insert(len(group) + 3, "rank", out.groupby(list(group), sort=False).cumcount() + 1)
    return out.reset_index(drop=True)
