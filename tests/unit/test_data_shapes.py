"""Shapes real banks send: any date within a month, several accounts per client.

Month columns read any date within a month as that month (``rmreco.data.dates``), and an
``account_months`` file with ``account_id`` is aggregated to the client-month by the contract's
rules (``rmreco.data.accounts``); both on the one read path that ingest and training share.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rmreco.data.accounts import aggregate_details, aggregation_rules
from rmreco.data.contract import read_and_validate
from rmreco.data.dates import read_month_column
from rmreco.data.tables import InputTable, ProblemCollector
from rmreco.domain import contract
from rmreco.domain.errors import DataContractError, Problem
from rmreco.features.builder import build_features
from rmreco.features.inputs import read_feature_inputs
from rmreco.synthetic import generate_bank
from rmreco.synthetic.extracts import split_accounts, to_month_ends

MONTH_COLUMNS = {
    "account_months": ["month"],
    "holdings": ["start_month", "end_month"],
    "credit_events": ["month"],
}


# --- dates ----------------------------------------------------------------------------------


def _read_months(values: list[object]) -> tuple[pd.Series, int, list[Problem]]:
    series = pd.Series(values, index=pd.RangeIndex(1, len(values) + 1, name="row"))
    collector = ProblemCollector("account_months.csv", "month")
    months, moved = read_month_column(series.astype("str").where(series.notna()), collector)
    return months, moved, collector.problems


def test_any_day_of_the_month_is_that_month() -> None:
    months, moved, problems = _read_months(
        [
            "2024-01-31",
            "2024-02-15",
            "2024-03-01",
            "2024-04",
            "2024-05-31 23:59:59",
            "2024-06-30T10:00",
            None,
        ]
    )
    assert problems == []
    expected = [pd.Timestamp(f"2024-0{m}-01") for m in range(1, 7)]
    assert months.iloc[:6].tolist() == expected
    assert pd.isna(months.iloc[6])
    assert moved == 4  # the first day and "YYYY-MM" needed no move


def test_garbage_is_refused_naming_the_row() -> None:
    months, moved, problems = _read_months(["2024-01-31", "31/01/2024", "2024-02-30", "soon"])
    assert [(p.row, p.column) for p in problems] == [(2, "month"), (3, "month"), (4, "month")]
    assert all("not a date within a month" in p.message for p in problems)
    assert "'31/01/2024'" in problems[0].message
    assert months.iloc[1:].isna().all()
    assert moved == 1


def test_parquet_dates_timestamps_and_zones_are_their_month() -> None:
    collector = ProblemCollector("f.parquet", "month")
    stamps = pd.Series(pd.to_datetime(["2024-01-31 18:00", "2024-02-01 00:00"]))
    months, moved = read_month_column(stamps, collector)
    assert months.tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01")]
    assert moved == 1
    zoned = stamps.dt.tz_localize("Europe/Vienna")  # wall-clock date kept
    assert read_month_column(zoned, collector)[0].tolist() == months.tolist()
    dates = pd.Series([dt.date(2024, 3, 31), dt.date(2024, 4, 1)], dtype=object)
    assert read_month_column(dates, collector)[0].tolist() == [
        pd.Timestamp("2024-03-01"),
        pd.Timestamp("2024-04-01"),
    ]
    assert collector.problems == []


def test_month_end_folder_reads_as_the_original_with_one_note_per_column(
    tiny_bank: Path, tmp_path: Path
) -> None:
    original = read_and_validate(tiny_bank)
    to_month_ends(tiny_bank)
    moved = read_and_validate(tiny_bank)
    for name in MONTH_COLUMNS:
        pd.testing.assert_frame_equal(moved.frame(name), original.frame(name))
    counts = {  # a month's last day is never its first: every date given was moved
        f"{name}.{column}": int(original.frame(name)[column].notna().sum())
        for name, columns in MONTH_COLUMNS.items()
        for column in columns
    }
    assert counts["account_months.month"] == 24
    expected = [
        f"{column}: {n:,} dates within their month read as that month"
        for column, n in counts.items()
        if n
    ]
    assert sorted(moved.notes) == sorted(expected)
    assert original.notes == []


def test_month_end_garbage_in_a_folder_names_file_row_and_column(tiny_bank: Path) -> None:
    to_month_ends(tiny_bank)
    path = tiny_bank / "credit_events.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[0, "month"] = "2024-13-31"
    frame.to_csv(path, index=False)
    with pytest.raises(DataContractError) as caught:
        read_and_validate(tiny_bank)
    [problem] = caught.value.problems
    assert (problem.file, problem.row, problem.column) == ("credit_events.csv", 1, "month")


def test_two_dates_of_one_month_are_a_duplicate_month(tiny_bank: Path) -> None:
    path = tiny_bank / "account_months.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    extra = frame.iloc[[0]].copy()
    extra["month"] = "2024-01-20"  # the tiny bank's row 1 is 2024-01-01 of the same client
    pd.concat([frame, extra]).to_csv(path, index=False)
    with pytest.raises(DataContractError) as caught:
        read_and_validate(tiny_bank)
    [problem] = caught.value.problems
    assert problem.row == len(frame) + 1
    assert "same values as row 1" in problem.message
    assert "dates within a month count as that month" in problem.message


# --- accounts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "table", [t for t in contract.TABLES if t.detail_columns], ids=lambda t: t.name
)
def test_every_column_of_a_table_with_details_has_an_aggregation_rule(
    table: contract.Table,
) -> None:
    rules = aggregation_rules(table)
    outside_key = [c for c in table.column_names if c not in table.key]
    assert sorted(rules) == sorted(outside_key), "a column without a rule, or a rule too many"
    assert len(rules) == len(table.aggregation)
    assert not {c.name for c in table.detail_columns} & set(table.column_names)


def test_account_id_is_an_optional_detail_of_account_months() -> None:
    table = contract.ACCOUNT_MONTHS
    assert [c.name for c in table.detail_columns] == ["account_id"]
    account_id = table.detail_columns[0]
    assert not account_id.required  # an optional column ...
    assert not account_id.nullable  # ... that, when given, names every row's account


def _accounts(rows: list[dict[str, object]]) -> InputTable:
    frame = pd.DataFrame(rows, index=pd.RangeIndex(1, len(rows) + 1, name="row"))
    for column in contract.ACCOUNT_MONTHS.columns:
        if column.name in frame and column.kind == "int":
            frame[column.name] = frame[column.name].astype("Int64")
    frame["month"] = pd.to_datetime(frame["month"]).astype("datetime64[us]")
    return InputTable(contract.ACCOUNT_MONTHS, Path("account_months.csv"), frame)


def _row(client: str, account: str, **values: object) -> dict[str, object]:
    return {"client_id": client, "month": "2024-01-01", "account_id": account, **values}


def test_two_accounts_of_one_client_month_aggregate_by_the_rules() -> None:
    current = _row(
        "C1",
        "A1",
        balance_avg=1000.0,
        balance_min=-200.0,
        balance_max=3000.0,
        credit_turnover=5000.0,
        debit_turnover=4000.0,
        n_credit_tx=10,
        n_debit_tx=20,
        overdraft_limit=1000.0,
        overdraft_peak_use=400.0,
        days_in_overdraft=3,
        dpd_max=10,
        returned_payments=1,
        intl_payments=np.nan,
        payroll_outflow=1500.0,
        card_spend=np.nan,
        acquiring_inflow=200.0,
    )
    card = _row(
        "C1",
        "K7",
        balance_avg=-300.0,
        balance_min=-500.0,
        balance_max=0.0,
        credit_turnover=300.0,
        debit_turnover=600.0,
        n_credit_tx=1,
        n_debit_tx=15,
        overdraft_limit=np.nan,
        overdraft_peak_use=np.nan,
        days_in_overdraft=12,
        dpd_max=35,
        returned_payments=None,
        intl_payments=np.nan,
        payroll_outflow=0.0,
        card_spend=600.0,
        acquiring_inflow=np.nan,
    )
    other = _row("C2", "A9", balance_avg=50.0, credit_turnover=1.0, debit_turnover=2.0)
    aggregated = aggregate_details(_accounts([current, other, card]))
    frame = aggregated.table.frame
    assert "account_id" not in frame.columns
    assert frame.index.tolist() == [1, 2]  # the first file row of each client-month
    c1 = frame.loc[1]
    assert c1["balance_avg"] == 700.0
    assert (c1["balance_min"], c1["balance_max"]) == (-700.0, 3000.0)
    assert (c1["credit_turnover"], c1["debit_turnover"]) == (5300.0, 4600.0)
    assert (c1["n_credit_tx"], c1["n_debit_tx"]) == (11, 35)
    assert (c1["overdraft_limit"], c1["overdraft_peak_use"]) == (1000.0, 400.0)
    assert (c1["days_in_overdraft"], c1["dpd_max"]) == (12, 35)
    assert c1["returned_payments"] == 1  # a missing count is skipped, not a zero or a gap
    assert pd.isna(c1["intl_payments"])  # missing on every account: missing
    assert (c1["card_spend"], c1["acquiring_inflow"]) == (600.0, 200.0)
    assert frame["n_credit_tx"].dtype == "Int64"
    assert frame.loc[2, "balance_avg"] == 50.0
    assert (aggregated.rows_read, aggregated.rows_kept) == (3, 2)
    assert aggregated.note == (
        "account_months: 3 rows of one account_id each aggregated to 2 rows of client_id, month"
    )


def test_without_account_id_nothing_is_aggregated() -> None:
    table = _accounts([_row("C1", "A1", balance_avg=1.0)])
    table = InputTable(table.table, table.path, table.frame.drop(columns="account_id"))
    aggregated = aggregate_details(table)
    assert aggregated.table is table
    assert aggregated.note is None


def _with_accounts(folder: Path) -> pd.DataFrame:
    path = folder / "account_months.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.insert(1, "account_id", "A1")
    return frame


def test_duplicate_client_month_without_account_id_stays_refused(tiny_bank: Path) -> None:
    path = tiny_bank / "account_months.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    pd.concat([frame, frame.iloc[[2]]]).to_csv(path, index=False)
    with pytest.raises(DataContractError) as caught:
        read_and_validate(tiny_bank)
    [problem] = caught.value.problems
    assert problem.column == "client_id, month"
    assert "duplicate key" in problem.message


def test_account_rows_are_checked_one_by_one_before_aggregating(tiny_bank: Path) -> None:
    frame = _with_accounts(tiny_bank)
    second = frame.copy()
    second["account_id"] = "A2"
    second.loc[4, "credit_turnover"] = "-5"  # each account row keeps its own checks
    repeated = frame.iloc[[3]]  # the same account twice in a month
    blank = frame.iloc[[6]].assign(account_id="")
    pd.concat([frame, second, repeated, blank]).to_csv(
        tiny_bank / "account_months.csv", index=False
    )
    with pytest.raises(DataContractError) as caught:
        read_and_validate(tiny_bank)
    found = {(p.row, p.column): p.message for p in caught.value.problems}
    n = len(frame)
    assert "below the minimum" in found[(n + 5, "credit_turnover")]
    duplicate = found[(2 * n + 1, "client_id, month, account_id")]
    assert "same values as row 4" in duplicate
    assert "a value is required" in found[(2 * n + 2, "account_id")]


def test_references_after_aggregation_name_a_file_row(tiny_bank: Path) -> None:
    frame = _with_accounts(tiny_bank)
    second = frame.copy()
    second["account_id"] = "A2"
    both = pd.concat([frame, second])
    both.iloc[len(frame) + 2, 0] = "C404"  # a client of the second account only
    both.to_csv(tiny_bank / "account_months.csv", index=False)
    with pytest.raises(DataContractError) as caught:
        read_and_validate(tiny_bank)
    [problem] = caught.value.problems
    assert (problem.row, problem.column) == (len(frame) + 3, "client_id")
    assert "'C404'" in problem.message


# --- end to end: the same bank in the shapes banks send -------------------------------------


def test_month_ends_and_several_accounts_build_the_same_feature_panel(tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    generate_bank(bank, n_clients=120, n_months=18, seed=3)
    reshaped = tmp_path / "reshaped"
    reshaped.mkdir()
    for path in bank.glob("*.parquet"):
        (reshaped / path.name).write_bytes(path.read_bytes())
    to_month_ends(reshaped)
    split_accounts(reshaped)

    inputs, _ = read_feature_inputs(bank)
    shaped_inputs, validated = read_feature_inputs(reshaped)
    pd.testing.assert_frame_equal(
        shaped_inputs.account_months.reset_index(drop=True),
        inputs.account_months.reset_index(drop=True),
        check_exact=False,
        rtol=1e-12,  # amounts in cents split over accounts and summed in floating point
        atol=1e-9,
    )
    n_rows = len(inputs.account_months)
    n_accounts = len(pd.read_parquet(reshaped / "account_months.parquet"))
    assert 2 * n_rows <= n_accounts <= 3 * n_rows
    assert (
        f"account_months: {n_accounts:,} rows of one account_id each aggregated to {n_rows:,} "
        "rows of client_id, month"
    ) in validated.notes
    assert f"account_months.month: {n_accounts:,} dates within their month read as that month" in (
        validated.notes
    )

    panel = build_features(inputs)
    shaped_panel = build_features(shaped_inputs)
    assert len(panel) > 1000
    pd.testing.assert_frame_equal(shaped_panel, panel, check_exact=False, rtol=1e-9, atol=1e-9)
