"""This module owns the features made of a bank's own columns: the columns of ``clients`` and
``financials`` beyond the data contract (declared in the data's manifest, or inferred), their
kinds, their feature names and how a reason names them. The builder turns them into features;
training adds them to a run (``bank_columns: true``) and the model records their kinds.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import polars as pl

#: Prefix of the features made of a bank's own columns, by the table that carries them: the
#: ``clients`` column ``legal_form`` is the feature ``clients__legal_form``; a ``financials``
#: column is read from the client's latest known statements, like the ``fin_`` features.
BANK_COLUMN_PREFIXES: dict[str, str] = {"clients": "clients__", "financials": "financials__"}
#: The kinds a bank's own column may have.
NUMERIC, CATEGORICAL = "numeric", "categorical"


def bank_features(extra_columns: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The features made of a bank's own columns (``FeatureInputs.extra_columns``), each with
    its kind (``numeric`` or ``categorical``), in table then column order."""
    out: dict[str, str] = {}
    for table, prefix in BANK_COLUMN_PREFIXES.items():
        for column, kind in extra_columns.get(table, {}).items():
            if kind not in (NUMERIC, CATEGORICAL):
                raise ValueError(f"{table}.{column}: unknown kind {kind!r}")
            out[f"{prefix}{column}"] = kind
    return out


def is_bank_feature(name: str) -> bool:
    """Whether ``name`` is a feature made of a bank's own column (:data:`BANK_COLUMN_PREFIXES`)."""
    return any(
        name.startswith(prefix) and len(name) > len(prefix)
        for prefix in BANK_COLUMN_PREFIXES.values()
    )


def bank_feature_label(name: str) -> str | None:
    """How a reason names a feature made of a bank's own column (None for other features):
    ``financials__ratio_07`` is "ratio 07 in the latest accounts"."""
    if not is_bank_feature(name):
        return None
    table, column = name.split("__", 1)
    label = column.replace("_", " ")
    return f"{label} in the latest accounts" if table == "financials" else label


def bank_column_values(frame: pd.DataFrame, column: str, kind: str) -> np.ndarray:
    """A bank column as the builder carries it: floats, or text with None for missing."""
    if column not in frame.columns:
        return np.full(len(frame), np.nan if kind == NUMERIC else None, dtype=object)
    values = frame[column]
    if kind == NUMERIC:
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    text = values.astype(object).where(values.notna(), None)
    return np.asarray([None if v is None else str(v) for v in text], dtype=object)


def polars_schema(kinds: Mapping[str, str]) -> dict[str, pl.DataType]:
    """The polars type of each bank feature of ``kinds`` (feature name -> kind)."""
    return {name: pl.Float64() if kind == NUMERIC else pl.String() for name, kind in kinds.items()}
