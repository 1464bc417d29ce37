"""The feature configuration a model carries, the one population rule, and the one encoding:
a frame and the service's records give the same matrix."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmreco.domain.contract import CONTRACT_VERSION
from rmreco.domain.errors import ConfigurationError
from rmreco.features.config import FeatureConfig, SnapshotParams, shared_snapshot_params
from rmreco.modeling.encoding import FeatureEncoder

CONFIG = FeatureConfig(
    family="credit_risk",
    horizon_months=12,
    segments=("sme",),
    features=("dpd_3m", "sector"),
    snapshot=SnapshotParams(financials_lag_months=9, cure_months=5),
    label_events=("default",),
)


def test_configuration_round_trips_and_refuses_another_contract() -> None:
    assert FeatureConfig.from_dict(CONFIG.to_dict()) == CONFIG
    other = {**CONFIG.to_dict(), "contract_version": CONTRACT_VERSION + ".x"}
    with pytest.raises(ValueError, match="data contract"):
        FeatureConfig.from_dict(other)
    missing = {k: v for k, v in CONFIG.to_dict().items() if k != "snapshot"}
    with pytest.raises(ValueError, match="snapshot"):
        FeatureConfig.from_dict(missing)


def test_one_population_rule_segments_and_default_status() -> None:
    frame = pd.DataFrame(
        {
            "segment": pd.Categorical(["sme", "corporate", "sme", "sme", None]),
            "in_default": [False, False, True, None, False],
        }
    )
    assert CONFIG.scored(frame).tolist() == [True, False, False, True, False]
    assert CONFIG.covers_segment("sme")
    assert not CONFIG.covers_segment("corporate")
    assert not CONFIG.covers_segment(None)


def test_models_served_together_must_share_snapshot_settings() -> None:
    six = FeatureConfig(
        family="cross_sell", horizon_months=3, segments=("sme",), features=("dpd_3m",)
    )
    assert shared_snapshot_params({}) == SnapshotParams()
    assert shared_snapshot_params({"a": CONFIG, "b": CONFIG}) == CONFIG.snapshot
    with pytest.raises(ConfigurationError, match="financials_lag_months=9") as error:
        shared_snapshot_params({"credit": CONFIG, "offers": six})
    assert "credit" in str(error.value)
    assert "offers" in str(error.value)


# --- one encoding path ------------------------------------------------------------------------

LEVELS = ("C", "F", "G")
ENCODER = FeatureEncoder(features=("x", "sector", "y"), categories={"sector": LEVELS})

numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.booleans(),
)
levels = st.one_of(st.none(), st.sampled_from([*LEVELS, "Z", "", "nan"]), st.just(float("nan")))


@st.composite
def records(draw: Any) -> list[dict[str, Any]]:
    rows = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        row: dict[str, Any] = {}
        if draw(st.booleans()):
            row["x"] = draw(numbers)
        if draw(st.booleans()):
            row["sector"] = draw(levels)
        row["y"] = draw(numbers)
        rows.append(row)
    return rows


@settings(max_examples=300, deadline=None)
@given(records())
def test_records_and_frames_encode_alike(rows: list[dict[str, Any]]) -> None:
    frame = pd.DataFrame(
        {name: pd.Series([r.get(name) for r in rows], dtype=object) for name in ENCODER.features}
    )
    by_frame = ENCODER.transform(frame)
    by_records = ENCODER.transform_records(rows)
    assert by_frame.shape == by_records.shape
    np.testing.assert_array_equal(by_frame, by_records)


@settings(max_examples=200, deadline=None)
@given(records(), records())
def test_a_shared_base_encodes_as_the_whole_records(
    bases: list[dict[str, Any]], variants: list[dict[str, Any]]
) -> None:
    base = bases[0]
    whole = ENCODER.transform_records([{**base, **v} for v in variants])
    np.testing.assert_array_equal(ENCODER.transform_variants(base, variants), whole)


def test_unseen_levels_and_missing_values_are_nan_on_both_paths() -> None:
    rows = [{"x": None, "sector": "Z", "y": math.nan}, {"x": 1.5, "sector": "F"}]
    expected = np.array([[np.nan, np.nan, np.nan], [1.5, 1.0, np.nan]])
    np.testing.assert_array_equal(ENCODER.transform_records(rows), expected)
    np.testing.assert_array_equal(ENCODER.transform(pd.DataFrame(rows)), expected)
