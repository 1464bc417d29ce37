"""The feature set follows the data: features without information in the fit rows are left out
and named, and the bank's own columns are added."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rmreco.training.data_features import choose_features
from rmreco.training.splits import TrainingDataError


def _fit() -> pd.DataFrame:
    n = 50
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "inflow_3m_log": np.full(n, np.nan),  # no account history given
            "history_months": np.zeros(n),  # one value
            "fin_equity_ratio": rng.normal(size=n),
            "clients__legal_form": pd.Categorical(rng.choice(["llc", "plc"], n)),
            "financials__ratio_01": rng.normal(size=n),
        }
    )


EXTRAS = {"clients": {"legal_form": "categorical"}, "financials": {"ratio_01": "numeric"}}


def test_features_without_information_are_left_out_and_bank_columns_added() -> None:
    choice = choose_features(
        ["inflow_3m_log", "history_months", "fin_equity_ratio"], _fit(), EXTRAS, bank_columns=True
    )
    assert choice.used == ("fin_equity_ratio", "clients__legal_form", "financials__ratio_01")
    assert choice.left_out == {
        "inflow_3m_log": "no value in the fit rows",
        "history_months": "one value in the fit rows",
    }
    assert choice.added == ("clients__legal_form", "financials__ratio_01")
    notes = choice.notes()
    assert notes[0] == "1 features of the spec left out (no value in the fit rows): inflow_3m_log"
    assert "2 of the bank's own columns added as features" in notes[2]


def test_bank_columns_stay_out_when_the_spec_says_so() -> None:
    choice = choose_features(["fin_equity_ratio"], _fit(), EXTRAS, bank_columns=False)
    assert choice.used == ("fin_equity_ratio",)
    assert choice.added == ()


def test_a_bank_column_the_spec_lists_keeps_its_place() -> None:
    choice = choose_features(
        ["financials__ratio_01", "fin_equity_ratio"], _fit(), EXTRAS, bank_columns=True
    )
    assert choice.used == ("financials__ratio_01", "fin_equity_ratio", "clients__legal_form")


def test_no_informative_feature_is_refused_naming_the_tables_to_give() -> None:
    with pytest.raises(TrainingDataError, match="none of the tables or columns"):
        choose_features(["inflow_3m_log", "history_months"], _fit(), {}, bank_columns=True)


def test_the_service_refuses_a_model_whose_bank_columns_the_snapshots_lack() -> None:
    from types import SimpleNamespace

    from rmreco.serving.model_store import missing_bank_columns

    model = SimpleNamespace(
        config=SimpleNamespace(
            bank_columns=(
                ("financials__ratio_01", "numeric"),
                ("clients__legal_form", "categorical"),
            )
        )
    )
    stored = [{"fin_equity_ratio": 0.3, "financials__ratio_01": None}]
    why = missing_bank_columns(model, stored)  # type: ignore[arg-type]
    assert why is not None
    assert "clients.legal_form" in why
    assert "financials.ratio_01" not in why
    assert "rmreco features refresh" in why
    assert missing_bank_columns(model, [{**stored[0], "clients__legal_form": "llc"}]) is None  # type: ignore[arg-type]
    assert missing_bank_columns(model, []) is None  # type: ignore[arg-type]
