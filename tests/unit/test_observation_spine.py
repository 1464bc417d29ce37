"""Books without account history: statements-only and attributes-only clients are observed at
the months their statements become known or their attributes describe, and a bank's own columns
of ``clients`` and ``financials`` become features."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from rmreco.domain.contract import ACCOUNT_MONTHS, EventType
from rmreco.features import FeatureInputs, build_credit_panel, build_features
from rmreco.features.bank_columns import bank_features
from rmreco.features.observations import observation_months


def _no_accounts() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=float) for c in ACCOUNT_MONTHS.column_names})
    frame["client_id"] = frame["client_id"].astype(object)
    frame["month"] = pd.Series(dtype="datetime64[ns]")
    return frame


def _clients(**extra: list[object]) -> pd.DataFrame:
    return pd.DataFrame(
        {"client_id": ["a", "b"], "segment": ["sme", "sme"], "sector": ["C", "G"], **extra}
    )


def _statements() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_id": ["a", "a", "b"],
            "year": [2021, 2022, 2022],
            "revenue": [100.0, 120.0, 50.0],
            "ebitda": [10.0, 18.0, -5.0],
            "total_assets": [80.0, 90.0, 40.0],
            "ratio_01": [0.5, 0.7, np.nan],
            "audit": ["clean", "qualified", None],
        }
    )


EXTRAS = {
    "clients": {"legal_form": "categorical", "bureau_score": "numeric"},
    "financials": {"ratio_01": "numeric", "audit": "categorical"},
}


def test_statements_only_clients_are_observed_when_their_statements_become_known() -> None:
    inputs = FeatureInputs(
        account_months=_no_accounts(),
        clients=_clients(legal_form=["llc", None], bureau_score=[710, 640]),
        financials=_statements(),
        extra_columns=EXTRAS,
    )
    months = observation_months(inputs, financials_lag_months=6)
    assert sorted(zip(months["client_id"], months["month"].dt.strftime("%Y-%m"), strict=True)) == [
        ("a", "2022-06"),
        ("a", "2023-06"),
        ("b", "2023-06"),
    ]
    features = build_features(inputs, financials_lag_months=6)
    observed = features[features["observed"]].set_index(["client_id", "month"])
    a_2023 = observed.loc[("a", pd.Timestamp("2023-06-01"))]
    assert a_2023["fin_ebitda_margin"] == pytest.approx(0.15)
    assert a_2023["fin_revenue_growth"] == pytest.approx(0.2)
    assert a_2023["financials__ratio_01"] == pytest.approx(0.7)
    assert a_2023["financials__audit"] == "qualified"
    assert a_2023["clients__legal_form"] == "llc"
    assert a_2023["clients__bureau_score"] == pytest.approx(710)
    assert np.isnan(observed.loc[("b", pd.Timestamp("2023-06-01")), "financials__ratio_01"])
    # the statements of 2021 are what 2022-06 sees, not those of 2022 (known only a year later)
    assert observed.loc[("a", pd.Timestamp("2022-06-01")), "financials__ratio_01"] == (
        pytest.approx(0.5)
    )
    assert isinstance(features["financials__audit"].dtype, pd.CategoricalDtype)
    assert isinstance(features["clients__legal_form"].dtype, pd.CategoricalDtype)
    # nothing of an account history is made up
    assert observed["inflow_3m_log"].isna().all()
    assert observed["dpd_12m"].isna().all()


def test_an_attributes_only_sample_is_labelled_by_the_extract_date() -> None:
    clients = _clients(
        as_of_month=[pd.Timestamp("2023-12-01")] * 2,
        legal_form=["llc", "sole"],
        bureau_score=[1, 2],
    )
    events = pd.DataFrame(
        {
            "client_id": ["b"],
            "month": [pd.Timestamp("2024-12-01")],
            "event_type": [str(EventType.DEFAULT)],
        }
    )
    inputs = FeatureInputs(
        account_months=_no_accounts(),
        clients=clients,
        credit_events=events,
        extra_columns={"clients": EXTRAS["clients"]},
        outcome_end=date(2024, 12, 1),
    )
    panel = build_credit_panel(inputs, horizon_months=12)
    assert list(panel["client_id"]) == ["a", "b"]
    assert list(panel["month"].dt.strftime("%Y-%m")) == ["2023-12", "2023-12"]
    assert list(panel["default_12m"]) == [0, 1]
    assert panel["label_complete"].all()
    assert list(panel["clients__legal_form"].astype(str)) == ["llc", "sole"]


def test_without_the_extract_date_a_sample_without_later_months_is_not_labelled() -> None:
    clients = _clients(as_of_month=[pd.Timestamp("2023-12-01")] * 2)
    inputs = FeatureInputs(account_months=_no_accounts(), clients=clients)
    panel = build_credit_panel(inputs, horizon_months=12)
    assert not panel["label_complete"].any()


def test_a_client_with_account_history_is_observed_at_its_account_months_only() -> None:
    accounts = pd.DataFrame(
        {
            "client_id": ["a"] * 3,
            "month": pd.to_datetime(["2023-04-01", "2023-05-01", "2023-06-01"]),
            "balance_avg": [1.0, 2.0, 3.0],
            "credit_turnover": [10.0, 10.0, 10.0],
            "debit_turnover": [9.0, 9.0, 9.0],
        }
    )
    inputs = FeatureInputs(account_months=accounts, clients=_clients(), financials=_statements())
    months = observation_months(inputs, financials_lag_months=6)
    by_client = months.groupby("client_id")["month"].apply(lambda m: sorted(m.dt.strftime("%Y-%m")))
    assert by_client["a"] == ["2023-04", "2023-05", "2023-06"]
    assert by_client["b"] == ["2023-06"]  # b has statements only


def test_bank_features_are_named_by_their_table_and_keep_their_kind() -> None:
    assert bank_features(EXTRAS) == {
        "clients__legal_form": "categorical",
        "clients__bureau_score": "numeric",
        "financials__ratio_01": "numeric",
        "financials__audit": "categorical",
    }
    with pytest.raises(ValueError, match=r"clients\.x: unknown kind 'text'"):
        bank_features({"clients": {"x": "text"}})
