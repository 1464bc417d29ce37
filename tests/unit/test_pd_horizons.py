"""A PD is named by its model's horizon: batch scoring's files carry ``pd_{h}m`` columns, one per
horizon when champions of different horizons score one book (a row's PD in its own model's
column, the others null); the frames in memory, the financing decision and the credit-aware
offers carry ``pd`` with its horizon beside it; the pyfunc model names its column by horizon."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import months, random_bank

from rmreco.features import FeatureInputs
from rmreco.features.config import FeatureConfig
from rmreco.modeling.calibration import Calibrator
from rmreco.modeling.credit_model import CreditRiskModel, pd_column
from rmreco.modeling.encoding import FeatureEncoder
from rmreco.modeling.master_scale import MasterScale
from rmreco.modeling.policy import load_policy
from rmreco.modeling.pyfunc import RmrecoCreditModel
from rmreco.modeling.scorecard import WoeScorecard
from rmreco.training.scoring import (
    CreditChampion,
    credit_views,
    financing_decisions,
    horizon_columns,
    score_table,
    scored_clients,
)

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ("dpd_12m", "overdraft_months_12m", "balance_to_inflow_3m")
N_MONTHS = 30


def _model(inputs: FeatureInputs, horizon: int, segments: tuple[str, ...]) -> CreditRiskModel:
    """A small scorecard of ``horizon`` months for ``segments`` (its fit is beside the point)."""
    config = FeatureConfig(
        family="credit_risk", horizon_months=horizon, segments=segments, features=FEATURES
    )
    panel = config.credit_panel(inputs)
    encoder = FeatureEncoder.fit(panel, list(FEATURES))
    X = encoder.transform(panel)
    # both classes whatever the labels: the fit is not what these tests look at
    used = panel["overdraft_months_12m"].fillna(0)
    y = (used > used.median()).to_numpy(dtype=int)
    card = WoeScorecard(bins=3).fit(X, y, monotone=[1, 1, 0])
    return CreditRiskModel(
        kind="scorecard",
        config=config,
        encoder=encoder,
        scorecard=card,
        calibrator=Calibrator.fit(card.raw_score(X), y),
        scale=MasterScale.from_bands([("1", 0.01), ("2", 0.05), ("3", None)]),
    )


@pytest.fixture(scope="module")
def book() -> FeatureInputs:
    return random_bank(n_clients=40, n_months=N_MONTHS, seed=3)


def test_champions_of_two_horizons_each_fill_their_own_pd_column(book: FeatureInputs) -> None:
    as_of = months(N_MONTHS)[-1]
    twelve = CreditChampion("t-sme-pd-12m", "1", _model(book, 12, ("sme",)))
    one = CreditChampion("t-corporate-pd-1m", "4", _model(book, 1, ("corporate",)))
    scored = scored_clients([twelve, one], book, [as_of])
    table = score_table(scored)
    is_sme = (table["segment"] == "sme").to_numpy()
    assert is_sme.any()
    assert (~is_sme).any()
    assert table["pd_horizon_months"].tolist() == [12 if s else 1 for s in is_sme]

    written = horizon_columns(table, [12, 1])
    # where the PD stood, in increasing order of horizon; no unnamed PD is left
    assert list(written.columns[3:5]) == ["pd_1m", "pd_12m"]
    assert "pd" not in written.columns
    assert "pd_horizon_months" not in written.columns
    np.testing.assert_array_equal(written["pd_12m"].to_numpy()[is_sme], table["pd"][is_sme])
    np.testing.assert_array_equal(written["pd_1m"].to_numpy()[~is_sme], table["pd"][~is_sme])
    assert written["pd_12m"][~is_sme].isna().all()
    assert written["pd_1m"][is_sme].isna().all()
    # one horizon: one column
    assert [c for c in horizon_columns(score_table(scored[:1]), [12]).columns if "pd" in c] == [
        "pd_12m"
    ]
    # a row whose horizon no champion has is an error, never a silently misnamed PD
    with pytest.raises(ValueError, match=r"PD over \[1\] months.*horizons are \[12\]"):
        horizon_columns(table, [12])

    # the financing decisions carry each client's PD with its horizon, and so do the views the
    # credit-aware offers read from them
    policy = load_policy(ROOT / "models" / "credit_policy.yaml")
    financing = financing_decisions(scored, book, as_of, policy, None)
    horizon_of = dict(zip(table["client_id"], table["pd_horizon_months"], strict=True))
    assert dict(zip(financing["client_id"], financing["pd_horizon_months"], strict=True)) == (
        horizon_of
    )
    views = credit_views(financing)
    assert {c: v.pd_horizon_months for c, v in views.items()} == horizon_of
    filed = horizon_columns(financing, [1, 12])
    assert {"pd_1m", "pd_12m"} <= set(filed.columns)
    assert (filed["pd_1m"].notna() != filed["pd_12m"].notna()).all()


def test_an_ungraded_row_has_no_pd_under_any_horizon() -> None:
    offers = pd.DataFrame(
        {
            "client_id": ["a", "b"],
            "pd": [0.02, np.nan],
            "pd_horizon_months": pd.array([12, None], dtype="Int64"),
            "grade": ["2", None],
        }
    )
    written = horizon_columns(offers, [12, 3])
    assert list(written.columns) == ["client_id", "pd_3m", "pd_12m", "grade"]
    assert written["pd_12m"].iloc[0] == 0.02
    assert written[["pd_3m", "pd_12m"]].iloc[1].isna().all()
    assert np.isnan(written["pd_3m"].iloc[0])


def test_the_pyfunc_model_names_its_pd_column_by_its_horizon(book: FeatureInputs) -> None:
    as_of = months(N_MONTHS)[-1]
    for horizon in (1, 12):
        model = _model(book, horizon, ("sme",))
        frame = scored_clients([CreditChampion("m", "1", model)], book, [as_of])[0].frame
        pyfunc = RmrecoCreditModel()
        pyfunc.model = model
        out = pyfunc.predict(None, frame)
        assert list(out.columns) == [pd_column(horizon), "grade", "reasons"]
        assert out[f"pd_{horizon}m"].between(0, 1).all()
        result = model.predict(frame, with_reasons=False)
        assert (result.horizon_months, result.pd_column) == (horizon, f"pd_{horizon}m")
