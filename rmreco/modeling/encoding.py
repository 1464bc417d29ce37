"""Feature frames to the float matrix models read, the same way in training and serving.

Categorical features become the index of their level among the levels seen in fitting (unknown
levels and missing values become NaN), so that a model can be scored from a numpy row without
pandas categoricals, and the encoding travels with the model as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rmreco.features.builder import CATEGORICAL_FEATURES
from rmreco.features.config import FeatureMismatchError


@dataclass(frozen=True)
class FeatureEncoder:
    """Column order and categorical levels of a model's input."""

    features: tuple[str, ...]
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        features: Sequence[str],
        categorical: Sequence[str] = CATEGORICAL_FEATURES,
    ) -> FeatureEncoder:
        """Record the column order and, for categorical features (those named in
        ``categorical``, the builder's by default, and any column of ``frame`` held as a
        pandas categorical, as the bank's own text columns are), the levels seen in ``frame``."""
        _require(frame, features)
        categories = {}
        for name in features:
            if name in categorical or isinstance(frame[name].dtype, pd.CategoricalDtype):
                levels = pd.Series(frame[name]).dropna().astype(str).unique()
                categories[name] = tuple(sorted(levels))
        return cls(features=tuple(features), categories=categories)

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, name in enumerate(self.features) if name in self.categories]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The model matrix of ``frame``: one float64 column per feature, in model order.

        Raises:
            FeatureMismatchError: a feature of the model is not a column of ``frame``.
        """
        _require(frame, self.features)
        matrix = np.empty((len(frame), len(self.features)), dtype=np.float64)
        for j, name in enumerate(self.features):
            column = frame[name]
            if name in self.categories:
                # vectorised lookup: unknown levels and missing values give code -1, then NaN
                present = column.notna().to_numpy()
                text = np.asarray(column.astype(object).where(present, ""), dtype=str)
                codes = pd.Index(list(self.categories[name])).get_indexer(pd.Index(text))
                matrix[:, j] = np.where(present & (codes >= 0), codes, np.nan)
            else:
                matrix[:, j] = pd.to_numeric(column, errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
        return matrix

    def transform_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The model matrix of feature dicts (the service's fast path: no pandas).

        The same matrix as :meth:`transform` of a frame of these records (a property test holds
        them equal): a missing key, None or NaN is NaN; a categorical value is looked up by its
        text (unknown levels NaN); any other value is read as a number (NaN where it is none).
        """
        matrix = np.full((len(records), len(self.features)), np.nan, dtype=np.float64)
        lookups = self._lookups()
        for i, record in enumerate(records):
            for j, name in enumerate(self.features):
                matrix[i, j] = _encode(record.get(name), lookups.get(name))
        return matrix

    def transform_variants(
        self, base: Mapping[str, Any], variants: Sequence[Mapping[str, Any]]
    ) -> np.ndarray:
        """:meth:`transform_records` of ``[{**base, **v} for v in variants]``, with the shared
        ``base`` encoded once (a client's features, and one variant per product it may be
        offered: the financing answer's propensities)."""
        lookups = self._lookups()
        row = self.transform_records([base])[0]
        matrix = np.tile(row, (len(variants), 1))
        position = {name: j for j, name in enumerate(self.features)}
        for i, variant in enumerate(variants):
            for name, value in variant.items():
                j = position.get(name)
                if j is not None:
                    matrix[i, j] = _encode(value, lookups.get(name))
        return matrix

    def _lookups(self) -> dict[str, dict[str, float]]:
        return {
            name: {level: float(i) for i, level in enumerate(levels)}
            for name, levels in self.categories.items()
        }

    def level(self, feature: str, code: float) -> str | None:
        """The categorical level of an encoded value (None when missing or unknown)."""
        if np.isnan(code):
            return None
        return self.categories[feature][int(code)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "categories": {k: list(v) for k, v in self.categories.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureEncoder:
        return cls(
            features=tuple(data["features"]),
            categories={k: tuple(v) for k, v in data["categories"].items()},
        )


def _encode(value: Any, lookup: dict[str, float] | None) -> float:
    """One value as the model reads it: its level's code for a categorical feature (``lookup``),
    a number otherwise; NaN where missing or unknown."""
    if _is_missing(value):
        return np.nan
    if lookup is not None:
        return lookup.get(str(value), np.nan)
    return _number(value)


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and bool(np.isnan(value))


def _number(value: Any) -> float:
    """A value as :func:`pandas.to_numeric` with ``errors="coerce"`` reads it."""
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    try:
        return float(pd.to_numeric(value))
    except (ValueError, TypeError):
        return np.nan


def _require(frame: pd.DataFrame, features: Sequence[str]) -> None:
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise FeatureMismatchError(f"the input lacks the model's features: {missing}")
