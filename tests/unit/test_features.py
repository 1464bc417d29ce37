"""The point-in-time feature builder, default status and credit labels on tiny hand-made frames."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import polars as pl
import pytest
from conftest import months, random_bank

from rmreco.domain.errors import DataContractError
from rmreco.features import (
    FeatureInputs,
    build_credit_panel,
    build_features,
    builder,
    default_status,
    feature_names,
)
from rmreco.features.builder import (
    NEVER,
    feature_frame,
    features_to_pandas,
    month_from_index,
    month_index,
)


def _one_client(values: Mapping[str, Sequence[float]], n: int, **client: object) -> FeatureInputs:
    frame = pd.DataFrame({"client_id": ["A"] * n, "month": months(n)})
    base = {"balance_avg": 1000.0, "credit_turnover": 100.0, "debit_turnover": 90.0}
    for name, default in base.items():
        frame[name] = values.get(name, [default] * n)
    for name, column in values.items():
        frame[name] = column
    clients = pd.DataFrame(
        {
            "client_id": ["A"],
            "segment": ["sme"],
            "sector": ["C"],
            "region": ["North"],
            "founded": [client.get("founded", date(2015, 1, 1))],
            "employees": [10],
            "turnover": [1200.0],
            "rm_id": ["RM1"],
        }
    )
    return FeatureInputs(account_months=frame, clients=clients)


def _at(features: pd.DataFrame, month: date, client: str = "A") -> pd.Series:
    row = features[(features["client_id"] == client) & (features["month"] == pd.Timestamp(month))]
    assert len(row) == 1, f"expected one row for {client} at {month}"
    return row.iloc[0]


def _future_changed(bank: FeatureInputs, cutoff: date, seed: int) -> FeatureInputs:
    """The same bank with everything after ``cutoff`` replaced by other values."""
    rng = np.random.default_rng(seed)
    cut = pd.Timestamp(cutoff)
    am = bank.account_months.copy()
    later = pd.to_datetime(am["month"]) > cut
    for name in am.columns:
        if name not in ("client_id", "month") and pd.api.types.is_numeric_dtype(am[name]):
            am.loc[later, name] = rng.permutation(am.loc[later, name].to_numpy()) * 3 + 7
    assert bank.holdings is not None
    assert bank.credit_events is not None
    assert bank.financials is not None
    holdings = pd.concat(
        [
            bank.holdings,
            pd.DataFrame(
                {
                    "client_id": ["C003", "C004"],
                    "product_code": ["overdraft", "term_loan"],
                    "start_month": [cut + pd.DateOffset(months=1), cut + pd.DateOffset(months=2)],
                    "end_month": [None, None],
                }
            ),
        ],
        ignore_index=True,
    )
    # a spell that ends after the cutoff must still count as held at the cutoff
    holdings.loc[holdings["end_month"].isna() & (holdings["client_id"] == "C000"), "end_month"] = (
        cut + pd.DateOffset(months=1)
    ).date()
    events = pd.concat(
        [
            bank.credit_events,
            pd.DataFrame(
                {
                    "client_id": ["C001", "C002"],
                    "month": [(cut + pd.DateOffset(months=1)).date()] * 2,
                    "event_type": ["default", "restructuring"],
                }
            ),
        ],
        ignore_index=True,
    )
    financials = pd.concat(
        [
            bank.financials,
            pd.DataFrame(
                {"client_id": ["C002"], "year": [cutoff.year], "revenue": [9e9], "ebitda": [1.0]}
            ),
        ],
        ignore_index=True,
    )
    return replace(
        bank, account_months=am, holdings=holdings, credit_events=events, financials=financials
    )


@pytest.mark.parametrize("cutoff_index", [5, 12, 20])
def test_no_feature_reads_a_month_after_the_snapshot(cutoff_index: int) -> None:
    bank = random_bank(n_clients=30, n_months=30, seed=cutoff_index)
    cutoff = months(30)[cutoff_index]
    before = build_features(bank)
    after = build_features(_future_changed(bank, cutoff, seed=cutoff_index))
    at_before = before[before["month"] <= pd.Timestamp(cutoff)].reset_index(drop=True)
    at_after = after[after["month"] <= pd.Timestamp(cutoff)].reset_index(drop=True)
    pd.testing.assert_frame_equal(at_before, at_after)
    # and the change did reach the later months, so the comparison above could have failed
    later_before = before[before["month"] > pd.Timestamp(cutoff)]
    later_after = after[after["month"] > pd.Timestamp(cutoff)]
    assert not later_before["inflow_1m_log"].equals(later_after["inflow_1m_log"])


def test_snapshot_months_give_the_same_rows_as_the_full_build() -> None:
    bank = random_bank(seed=3)
    full = build_features(bank)
    snapshot = months(30)[17]
    only = build_features(bank, months=[snapshot])
    expected = full[full["month"] == pd.Timestamp(snapshot)].reset_index(drop=True)
    pd.testing.assert_frame_equal(only.reset_index(drop=True), expected)


def test_every_feature_is_returned_and_described() -> None:
    features = build_features(random_bank(seed=1))
    assert list(features.columns[3:]) == feature_names()
    assert features[["client_id", "month"]].duplicated().sum() == 0


def test_rolling_windows_by_hand() -> None:
    n = 14
    inflows = [100.0 * (k + 1) for k in range(n)]
    dpd = [0, 0, 0, 45, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0]
    limit = [0.0] * 10 + [1000.0] * 4
    use = [0.0] * 10 + [500.0, 1000.0, 0.0, 250.0]
    bank = _one_client(
        {
            "credit_turnover": inflows,
            "debit_turnover": [x * 0.5 for x in inflows],
            "dpd_max": dpd,
            "overdraft_limit": limit,
            "overdraft_peak_use": use,
            "days_in_overdraft": [0] * 10 + [3, 8, 0, 2],
            "returned_payments": [1] * n,
        },
        n,
    )
    row = _at(build_features(bank), months(n)[-1])
    assert row["history_months"] == n
    assert row["inflow_1m_log"] == pytest.approx(math.log(1401.0))
    assert row["inflow_3m_log"] == pytest.approx(math.log(1200 + 1300 + 1400 + 1.0))
    assert row["net_flow_ratio_3m"] == pytest.approx(0.5)
    assert row["inflow_growth_3m"] == pytest.approx((1200 + 1300 + 1400) / (900 + 1000 + 1100) - 1)
    # a year earlier the 3-month window holds only two months of history: mean of those
    assert row["inflow_growth_yoy"] == pytest.approx(1300 / ((100 + 200) / 2) - 1)
    assert row["dpd_1m"] == 0
    assert row["dpd_3m"] == 10
    assert row["dpd_12m"] == 45
    assert row["months_since_dpd"] == 2
    assert row["months_since_dpd30"] == 10
    assert row["overdraft_months_3m"] == 2
    assert row["overdraft_days_12m"] == 13
    assert row["overdraft_use_1m"] == pytest.approx(0.25)
    assert row["overdraft_use_3m"] == pytest.approx((1.0 + 0.0 + 0.25) / 3)
    assert row["returned_payments_3m"] == 3
    assert row["returned_payments_12m"] == 12
    # inflows rise by 100 a month: the 6-month slope is 100 against a mean of 1150
    assert row["inflow_trend_6m"] == pytest.approx(100 / np.mean(inflows[-6:]))
    assert row["business_age_months"] == (2023 - 2015) * 12 + 1


def test_a_missing_month_is_a_calendar_month_not_skipped() -> None:
    bank = _one_client({"credit_turnover": [100.0, 200.0, 300.0, 400.0]}, 4)
    bank = replace(bank, account_months=bank.account_months.drop(index=2))  # no row for month 3
    features = build_features(bank)
    assert len(features) == 4
    missing = _at(features, months(4)[2])
    assert not missing["observed"]
    last = _at(features, months(4)[3])
    assert last["history_months"] == 3
    # mean monthly inflow over the last 3 calendar months is over the 2 observed ones
    assert last["inflow_3m_log"] == pytest.approx(math.log(3 * (200 + 400) / 2 + 1))


def test_recency_is_never_when_nothing_happened() -> None:
    row = _at(build_features(_one_client({"dpd_max": [0, 0, 0]}, 3)), months(3)[-1])
    assert row["months_since_dpd"] == NEVER
    assert row["prior_default"] == 0
    assert math.isnan(row["n_products"])  # no holdings table given: unknown, not zero


def test_holdings_counted_at_each_month() -> None:
    bank = _one_client({}, 14)
    m = months(14)
    bank = replace(
        bank,
        holdings=pd.DataFrame(
            {
                "client_id": ["A", "A", "A"],
                "product_code": ["overdraft", "payroll", "term_loan"],
                "start_month": [date(2019, 5, 1), m[2], m[4]],
                "end_month": [None, m[5], None],
            }
        ),
        products=pd.DataFrame(
            {
                "product_code": ["overdraft", "payroll", "term_loan"],
                "kind": ["financing", "service", "financing"],
            }
        ),
    )
    features = build_features(bank)
    assert _at(features, m[0])["n_products"] == 1
    assert _at(features, m[0])["tenure_months"] == (2022 - 2019) * 12 - 4
    assert _at(features, m[4])["n_products"] == 3
    assert _at(features, m[4])["n_credit_products"] == 2
    assert _at(features, m[5])["n_products"] == 3  # end_month is the last month held
    assert _at(features, m[6])["n_products"] == 2
    assert _at(features, m[5])["products_closed_12m"] == 0
    assert _at(features, m[6])["products_closed_12m"] == 1
    assert _at(features, m[6])["products_opened_12m"] == 2


def test_financial_statements_are_used_only_after_the_lag() -> None:
    bank = _one_client({}, 24)
    bank = replace(
        bank,
        financials=pd.DataFrame(
            {
                "client_id": ["A", "A"],
                "year": [2021, 2022],
                "revenue": [1000.0, 1500.0],
                "ebitda": [100.0, 300.0],
                "total_assets": [2000.0, 2000.0],
                "total_debt": [500.0, 400.0],
            }
        ),
    )
    features = build_features(bank, financials_lag_months=6)
    assert _at(features, date(2023, 5, 1))["fin_ebitda_margin"] == pytest.approx(0.1)
    june = _at(features, date(2023, 6, 1))
    assert june["fin_ebitda_margin"] == pytest.approx(0.2)
    assert june["fin_revenue_growth"] == pytest.approx(0.5)
    assert june["fin_age_months"] == 6
    assert math.isnan(_at(features, date(2022, 5, 1))["fin_ebitda_margin"])


def test_default_status_and_cure() -> None:
    m = months(12)
    dpd = [0, 0, 95, 95, 95, 20, 0, 0, 0, 0, 0, 0]
    bank = replace(
        _one_client({"dpd_max": dpd}, 12),
        credit_events=pd.DataFrame(
            {"client_id": ["A"], "month": [m[2]], "event_type": ["default"]}
        ),
    )
    status = default_status(bank).set_index("month")["in_default"]
    assert (
        list(status.to_numpy()) == [False, False, True, True, True, True, True, False] + [False] * 4
    )


def test_write_off_is_default_for_good() -> None:
    m = months(8)
    bank = replace(
        _one_client({"dpd_max": [0] * 8}, 8),
        credit_events=pd.DataFrame(
            {"client_id": ["A", "A"], "month": [m[1], m[2]], "event_type": ["default", "write_off"]}
        ),
    )
    status = default_status(bank)["in_default"].to_numpy()
    assert list(status) == [False] + [True] * 7


def test_labels_look_exactly_horizon_months_ahead() -> None:
    n = 30
    m = months(n)
    bank = replace(
        _one_client({}, n),
        credit_events=pd.DataFrame(
            {"client_id": ["A"], "month": [m[20]], "event_type": ["default"]}
        ),
    )
    panel = build_credit_panel(bank, horizon_months=12).set_index("month")
    label = panel["default_12m"]
    assert label[pd.Timestamp(m[7])] == 0  # t+13 is too late
    assert label[pd.Timestamp(m[8])] == 1  # t+12
    assert label[pd.Timestamp(m[19])] == 1  # t+1
    assert pd.Timestamp(m[20]) not in label.index  # in default at t: not a row
    assert panel.loc[pd.Timestamp(m[17]), "label_complete"]
    assert not panel.loc[pd.Timestamp(m[18]), "label_complete"]


def test_integer_ids_and_missing_optional_columns() -> None:
    frame = pd.DataFrame(
        {
            "client_id": [7, 7, 7],
            "month": months(3),
            "balance_avg": [1.0, 2.0, 3.0],
            "credit_turnover": [10.0, 10.0, None],
            "debit_turnover": [5.0, 5.0, 5.0],
        }
    )
    clients = pd.DataFrame({"client_id": [7], "segment": ["sme"]})
    features = build_features(FeatureInputs(account_months=frame, clients=clients))
    assert list(features["client_id"]) == ["7", "7", "7"]
    last = features.iloc[-1]
    assert math.isnan(last["inflow_1m_log"])
    assert last["inflow_3m_log"] == pytest.approx(math.log(31.0))
    assert math.isnan(last["dpd_1m"])
    assert pd.isna(last["sector"])


@pytest.mark.parametrize("is_shuffled", [False, True])
def test_blocks_of_clients_give_the_frames_of_one_pass(
    monkeypatch: pytest.MonkeyPatch, is_shuffled: bool
) -> None:
    bank = random_bank(n_clients=30, seed=11)
    if is_shuffled:  # rows not grouped by client: blocks are taken row by row, not sliced
        shuffled = bank.account_months.sample(frac=1.0, random_state=2).reset_index(drop=True)
        bank = replace(bank, account_months=shuffled)
    snapshot = months(30)[20]

    def frames() -> list[pd.DataFrame]:
        return [
            build_features(bank),
            build_features(bank, months=[snapshot]),
            build_credit_panel(bank),
            build_credit_panel(bank, months=[snapshot], horizon_months=6),
        ]

    one_pass = frames()
    blocks = 0
    add = builder._PandasEdge.add

    def counted(self: builder._PandasEdge, block: object) -> None:
        nonlocal blocks
        blocks += 1
        add(self, block)  # type: ignore[arg-type]

    monkeypatch.setattr(builder._PandasEdge, "add", counted)
    # a few clients per block: most blocks hold no holding, no event and no statement, which
    # must still read as tables the bank sent (zero products held, not unknown)
    monkeypatch.setattr(builder, "BLOCK_ROWS", 90)
    in_blocks = frames()
    assert blocks > 4 * len(one_pass)
    for one, many in zip(one_pass, in_blocks, strict=True):
        pd.testing.assert_frame_equal(one, many)
    assert (one_pass[0]["n_products"] == 0).any()


def test_month_index_reads_dates_timestamps_and_text_alike() -> None:
    days = [date(1969, 12, 31), date(1970, 1, 1), date(2023, 5, 17)]
    expected = [1969 * 12 + 11, 1970 * 12, 2023 * 12 + 4]
    assert list(month_index(days)) == expected  # datetime.date objects, as Parquet dates read
    assert list(month_index(pd.Series(pd.to_datetime(days)))) == expected
    assert list(month_index(pd.Series(["1969-12-31", "1970-01-01", "2023-05-17"]))) == expected
    with pytest.raises(ValueError, match="not a date"):
        month_index(pd.Series(["not a date"]))


def test_pandas_edge_converts_as_to_pandas_does() -> None:
    frame = feature_frame(random_bank(seed=2))
    expected = (
        frame.select(
            "client_id",
            month_from_index(pl.col("_mi")).alias("month"),
            "observed",
            *feature_names(),
        )
        .collect()
        .to_pandas()
    )
    expected["month"] = pd.to_datetime(expected["month"])
    for name in ("segment", "sector", "region"):
        expected[name] = expected[name].astype("category")
    pd.testing.assert_frame_equal(features_to_pandas(frame), expected)


def test_a_client_on_two_rows_of_clients_is_refused() -> None:
    bank = random_bank(seed=1)
    twice = pd.concat([bank.clients, bank.clients.iloc[:1]], ignore_index=True)
    with pytest.raises(DataContractError, match="client_id is on more than one row"):
        build_features(replace(bank, clients=twice))
