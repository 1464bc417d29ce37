"""Every rule of the data contract, each broken on purpose in a copy of the tiny bank.

Each test asserts that the problem names the right file, row (the file's 1-based data row) and
column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rmreco.data.contract import (
    CREDIT_EVENT_GRACE_MONTHS,
    read_and_validate,
    validate_table,
)
from rmreco.data.tables import (
    MAX_PROBLEMS_PER_COLUMN,
    InputTable,
    read_input_folder,
)
from rmreco.domain import contract
from rmreco.domain.errors import DataContractError, Problem

Edit = Callable[[pd.DataFrame], pd.DataFrame | None]


def edit_csv(folder: Path, name: str, edit: Edit) -> None:
    """Apply ``edit`` to ``<name>.csv`` read as text, and write it back."""
    path = folder / f"{name}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    edited = edit(frame)
    (frame if edited is None else edited).to_csv(path, index=False)


def set_cell(folder: Path, name: str, row: int, column: str, value: str) -> None:
    """Set the cell at data row ``row`` (1-based, as problems count) of ``<name>.csv``."""

    def edit(frame: pd.DataFrame) -> None:
        frame.loc[row - 1, column] = value

    edit_csv(folder, name, edit)


def problems_of(folder: Path) -> list[Problem]:
    with pytest.raises(DataContractError) as caught:
        read_and_validate(folder)
    return caught.value.problems


def find(
    problems: list[Problem], *, file: str, row: int | None, column: str | None, text: str
) -> Problem:
    """The one problem at (file, row, column) whose message contains ``text``."""
    hits = [
        p
        for p in problems
        if p.file == file and p.row == row and p.column == column and text in p.message
    ]
    assert len(hits) == 1, f"no single problem {file}/{row}/{column} '{text}' in:\n" + "\n".join(
        map(str, problems)
    )
    return hits[0]


def to_parquet(folder: Path) -> None:
    """Rewrite every CSV of ``folder`` as Parquet with native types (dates as timestamps)."""
    read = read_input_folder(folder)
    assert read.problems == []
    for table in read.tables.values():
        table.frame.reset_index(drop=True).to_parquet(folder / f"{table.name}.parquet")
        table.path.unlink()


# --- the valid set --------------------------------------------------------------------------


def test_tiny_bank_is_valid(tiny_bank: Path) -> None:
    validated = read_and_validate(tiny_bank)
    assert validated.row_counts == {
        "relationship_managers": 2,
        "products": 5,
        "clients": 4,
        "account_months": 24,
        "holdings": 8,
        "credit_events": 1,
        "financials": 4,
    }
    assert validated.currency == "EUR"
    assert validated.tables["products"].extra_columns == ("collateral",)
    clients = validated.frame("clients")
    assert list(clients.index[:2]) == [1, 2]
    assert clients.loc[1, "client_id"] == "C001"
    assert clients["founded"].dtype.kind == "M"
    assert str(validated.frame("account_months")["n_credit_tx"].dtype) == "Int64"


def test_optional_columns_and_table_may_be_left_out(tiny_bank: Path) -> None:
    edit_csv(tiny_bank, "account_months", lambda f: f.drop(columns=["balance_min", "dpd_max"]))
    edit_csv(tiny_bank, "clients", lambda f: f.drop(columns=["currency", "onboarded"]))
    (tiny_bank / "financials.csv").unlink()
    validated = read_and_validate(tiny_bank)
    assert "financials" not in validated.tables
    assert validated.frame("financials").empty
    assert validated.currency is None


def test_ids_are_text_with_leading_zeros_kept(tiny_bank: Path) -> None:
    for name in ("clients", "account_months", "holdings", "credit_events", "financials"):
        edit_csv(
            tiny_bank,
            name,
            lambda f: f.assign(client_id=f["client_id"].str.replace("C", "00", regex=False)),
        )
    validated = read_and_validate(tiny_bank)
    assert validated.frame("clients").loc[1, "client_id"] == "00001"


def test_column_names_are_trimmed_and_lower_cased(tiny_bank: Path) -> None:
    edit_csv(tiny_bank, "clients", lambda f: f.rename(columns={"client_id": " Client_ID "}))
    assert "client_id" in read_and_validate(tiny_bank).frame("clients").columns


def test_unknown_columns_are_ignored_with_a_warning_where_no_one_uses_them(
    tiny_bank: Path,
) -> None:
    """account_months, holdings, credit_events and relationship_managers drop what they do not
    know; products keep it as parameters, clients and financials as features
    (tests/unit/test_manifest.py)."""
    edit_csv(tiny_bank, "account_months", lambda f: f.assign(internal_score="7"))
    validated = read_and_validate(tiny_bank)
    assert "internal_score" not in validated.frame("account_months").columns
    assert any(
        "internal_score" in w and "account_months.csv" in w and "ignored" in w
        for w in validated.warnings
    )
    assert "collateral" in validated.frame("products").columns


# --- files ----------------------------------------------------------------------------------


def test_required_file_missing(tiny_bank: Path) -> None:
    (tiny_bank / "clients.csv").unlink()
    problems = problems_of(tiny_bank)
    find(
        problems,
        file="clients.parquet or clients.csv",
        row=None,
        column=None,
        text="required table 'clients' is missing",
    )


def test_both_formats_present(tiny_bank: Path) -> None:
    pd.read_csv(tiny_bank / "products.csv").to_parquet(tiny_bank / "products.parquet")
    find(
        problems_of(tiny_bank),
        file="products.csv",
        row=None,
        column=None,
        text="both products.csv and products.parquet",
    )


def test_unreadable_file(tiny_bank: Path) -> None:
    (tiny_bank / "holdings.csv").unlink()
    (tiny_bank / "holdings.parquet").write_bytes(b"not parquet at all")
    find(
        problems_of(tiny_bank),
        file="holdings.parquet",
        row=None,
        column=None,
        text="cannot be read",
    )


def test_missing_folder(tmp_path: Path) -> None:
    problems = problems_of(tmp_path / "nowhere")
    assert problems[0].message == "input folder does not exist"


# --- one table ------------------------------------------------------------------------------


def test_missing_required_column(tiny_bank: Path) -> None:
    edit_csv(tiny_bank, "clients", lambda f: f.drop(columns=["segment"]))
    find(
        problems_of(tiny_bank),
        file="clients.csv",
        row=None,
        column="segment",
        text="required column is missing",
    )


def test_wrong_type(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "account_months", 3, "credit_turnover", "12,5")
    set_cell(tiny_bank, "account_months", 4, "n_debit_tx", "8.5")
    problems = problems_of(tiny_bank)
    find(
        problems,
        file="account_months.csv",
        row=3,
        column="credit_turnover",
        text="'12,5' is not a number",
    )
    find(problems, file="account_months.csv", row=4, column="n_debit_tx", text="not a whole number")
    # the unreadable cell is reported once, not again as a missing required value
    assert len([p for p in problems if p.row == 3]) == 1


def test_null_in_required_column(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "account_months", 2, "balance_avg", "")
    find(
        problems_of(tiny_bank),
        file="account_months.csv",
        row=2,
        column="balance_avg",
        text="a value is required",
    )


def test_out_of_range(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "clients", 2, "turnover", "-350000")
    set_cell(tiny_bank, "account_months", 5, "days_in_overdraft", "32")
    problems = problems_of(tiny_bank)
    find(problems, file="clients.csv", row=2, column="turnover", text="below the minimum 0")
    find(
        problems,
        file="account_months.csv",
        row=5,
        column="days_in_overdraft",
        text="above the maximum 31",
    )


def test_negative_balance_is_allowed(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "account_months", 1, "balance_avg", "-100")
    read_and_validate(tiny_bank)


def test_unknown_level(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "clients", 4, "segment", "giant")
    set_cell(tiny_bank, "credit_events", 1, "event_type", "late")
    problems = problems_of(tiny_bank)
    find(
        problems,
        file="clients.csv",
        row=4,
        column="segment",
        text="'giant' is not one of: sme, corporate, personal",
    )
    find(problems, file="credit_events.csv", row=1, column="event_type", text="'late'")


def test_duplicate_key(tiny_bank: Path) -> None:
    edit_csv(tiny_bank, "account_months", lambda f: pd.concat([f, f.iloc[[7]]]))
    problem = find(
        problems_of(tiny_bank),
        file="account_months.csv",
        row=25,
        column="client_id, month",
        text="duplicate key",
    )
    assert "row 8" in problem.message


def test_month_columns_take_any_date_within_the_month(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "account_months", 6, "month", "2024-06-15")
    set_cell(tiny_bank, "holdings", 2, "start_month", "2024-03-31")
    validated = read_and_validate(tiny_bank)
    assert validated.frame("account_months").loc[6, "month"] == pd.Timestamp("2024-06-01")
    assert validated.frame("holdings").loc[2, "start_month"] == pd.Timestamp("2024-03-01")
    assert "account_months.month: 1 dates within their month read as that month" in (
        validated.notes
    )


def test_month_that_is_not_a_date(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "account_months", 6, "month", "June 2024")
    set_cell(tiny_bank, "holdings", 2, "start_month", "2024-02-30")
    problems = problems_of(tiny_bank)
    find(problems, file="account_months.csv", row=6, column="month", text="'June 2024'")
    find(problems, file="holdings.csv", row=2, column="start_month", text="not a date")


def test_dates_must_be_iso(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "clients", 1, "founded", "12/03/2015")
    set_cell(tiny_bank, "clients", 2, "founded", "2021-9-1")
    set_cell(tiny_bank, "clients", 3, "founded", "2021-02-30")
    problems = problems_of(tiny_bank)
    for row in (1, 2, 3):
        find(problems, file="clients.csv", row=row, column="founded", text="YYYY-MM-DD")


def test_invalid_cells_are_capped_per_column_and_counted() -> None:
    n = 1000
    frame = pd.DataFrame(
        {
            "client_id": [f"C{i}" for i in range(n)],
            "month": np.full(n, np.datetime64("2024-01-01", "us")),
            "balance_avg": np.full(n, np.nan),
            "credit_turnover": np.full(n, -1.0),
            "debit_turnover": np.ones(n),
        },
        index=pd.RangeIndex(1, n + 1, name="row"),
    )
    frame.loc[2:, "client_id"] = "C0"  # 999 duplicates of row 1's key
    table = InputTable(contract.ACCOUNT_MONTHS, Path("account_months.csv"), frame)
    problems = validate_table(table)
    for column, text in (
        ("balance_avg", "a value is required"),
        ("credit_turnover", "below the minimum"),
        ("client_id, month", "duplicate key"),
    ):
        mine = [p for p in problems if p.column == column]
        assert len(mine) == MAX_PROBLEMS_PER_COLUMN + 1, column
        listed = n - 1 if column == "client_id, month" else n
        more = listed - MAX_PROBLEMS_PER_COLUMN
        assert any(
            p.row is None and f"{more} more rows" in p.message and text in p.message for p in mine
        ), column


def test_error_lists_twenty_but_keeps_every_problem(tiny_bank: Path) -> None:
    edit_csv(tiny_bank, "account_months", lambda f: f.assign(credit_turnover="-1"))
    with pytest.raises(DataContractError) as caught:
        read_and_validate(tiny_bank)
    assert len(caught.value.problems) == 24
    assert "and 4 more" in str(caught.value)


def test_empty_table(tiny_bank: Path) -> None:
    edit_csv(tiny_bank, "account_months", lambda f: f.iloc[0:0])
    find(
        problems_of(tiny_bank),
        file="account_months.csv",
        row=None,
        column=None,
        text="has no data rows",
    )


# --- across tables --------------------------------------------------------------------------


def test_unknown_client_in_holdings(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "holdings", 3, "client_id", "C999")
    find(
        problems_of(tiny_bank),
        file="holdings.csv",
        row=3,
        column="client_id",
        text="'C999' is not found in column 'client_id' of clients.csv",
    )


def test_unknown_client_in_histories(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "account_months", 24, "client_id", "C999")
    set_cell(tiny_bank, "credit_events", 1, "client_id", "C999")
    set_cell(tiny_bank, "financials", 2, "client_id", "C999")
    problems = problems_of(tiny_bank)
    for file, row in (("account_months.csv", 24), ("credit_events.csv", 1), ("financials.csv", 2)):
        find(problems, file=file, row=row, column="client_id", text="clients.csv")


def test_unknown_product(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "holdings", 5, "product_code", "GOLD_CARD")
    find(
        problems_of(tiny_bank),
        file="holdings.csv",
        row=5,
        column="product_code",
        text="'GOLD_CARD' is not found in column 'product_code' of products.csv",
    )


def test_unknown_rm(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "clients", 3, "rm_id", "RM77")
    find(
        problems_of(tiny_bank),
        file="clients.csv",
        row=3,
        column="rm_id",
        text="relationship_managers.csv",
    )


def test_client_without_rm_is_allowed(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "clients", 3, "rm_id", "")
    read_and_validate(tiny_bank)


def test_end_before_start(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "holdings", 8, "end_month", "2018-12-01")
    find(
        problems_of(tiny_bank),
        file="holdings.csv",
        row=8,
        column="end_month",
        text="is before start_month",
    )


def test_months_after_the_history(tiny_bank: Path) -> None:
    # an outcome window may follow the history (adoptions up to 24 months after its end)
    set_cell(tiny_bank, "holdings", 1, "start_month", "2026-07-01")
    set_cell(tiny_bank, "holdings", 2, "start_month", "2026-06-01")
    # an outcome window may follow the history (events up to 24 months after its end)
    set_cell(tiny_bank, "credit_events", 1, "month", "2026-07-01")
    set_cell(tiny_bank, "financials", 1, "year", "2025")
    problems = problems_of(tiny_bank)
    find(
        problems,
        file="holdings.csv",
        row=1,
        column="start_month",
        text="more than 24 months after the last month of account_months.csv (2024-06-01)",
    )
    assert not [p for p in problems if p.file == "holdings.csv" and p.row == 2]
    find(
        problems,
        file="credit_events.csv",
        row=1,
        column="month",
        text="more than 24 months after the last month of account_months.csv (2024-06-01)",
    )
    find(problems, file="financials.csv", row=1, column="year", text="after the last month")


def test_credit_event_long_after_the_clients_history(tiny_bank: Path) -> None:
    # C002's history moved two years back: its default in 2024-05 is then 23 months late
    edit_csv(
        tiny_bank,
        "account_months",
        lambda f: f.assign(
            month=f["month"].where(f["client_id"] != "C002", f["month"].str.replace("2024", "2022"))
        ),
    )
    find(
        problems_of(tiny_bank),
        file="credit_events.csv",
        row=1,
        column="month",
        text=f"more than {CREDIT_EVENT_GRACE_MONTHS} months after the client's last month",
    )


def test_holding_before_the_history_and_end_after_it_are_allowed(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "holdings", 8, "end_month", "2026-06-01")
    read_and_validate(tiny_bank)


def test_two_currencies(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "clients", 3, "currency", "USD")
    find(
        problems_of(tiny_bank),
        file="clients.csv",
        row=3,
        column="currency",
        text="'USD' differs from 'EUR' (row 1)",
    )


def test_currency_must_be_a_code(tiny_bank: Path) -> None:
    set_cell(tiny_bank, "clients", 2, "currency", "Euro")
    find(
        problems_of(tiny_bank),
        file="clients.csv",
        row=2,
        column="currency",
        text="three-letter ISO 4217",
    )


# --- Parquet --------------------------------------------------------------------------------


def test_parquet_set_is_valid_and_reads_like_csv(tiny_bank: Path) -> None:
    from_csv = read_and_validate(tiny_bank)
    to_parquet(tiny_bank)
    from_parquet = read_and_validate(tiny_bank)
    for name, table in from_csv.tables.items():
        pd.testing.assert_frame_equal(table.frame, from_parquet.frame(name), check_dtype=False)


def test_parquet_rows_are_numbered_like_csv(tiny_bank: Path) -> None:
    to_parquet(tiny_bank)
    path = tiny_bank / "account_months.parquet"
    frame = pd.read_parquet(path)
    frame.loc[6, "credit_turnover"] = -5.0  # the 7th data row
    frame.to_parquet(path)
    find(
        problems_of(tiny_bank),
        file="account_months.parquet",
        row=7,
        column="credit_turnover",
        text="below the minimum",
    )


def test_parquet_dates_timestamps_and_integer_ids(tiny_bank: Path) -> None:
    to_parquet(tiny_bank)
    path = tiny_bank / "clients.parquet"
    clients = pd.read_parquet(path)
    clients["founded"] = [d.date() for d in clients["founded"]]  # date32 instead of timestamp
    clients.to_parquet(path)
    rms = pd.read_parquet(tiny_bank / "relationship_managers.parquet")
    rms["rm_id"] = [101, 102]  # integer ids in one file, text in the other
    rms.to_parquet(tiny_bank / "relationship_managers.parquet")
    clients["rm_id"] = ["101", "101", "102", "102"]
    clients.to_parquet(path)
    validated = read_and_validate(tiny_bank)
    assert validated.frame("relationship_managers")["rm_id"].tolist() == ["101", "102"]
    assert validated.frame("clients").loc[1, "founded"] == pd.Timestamp("2015-03-12")


def test_parquet_timestamp_with_time_of_day(tiny_bank: Path) -> None:
    # a date that is not a month keeps its day: a time of day there is refused
    to_parquet(tiny_bank)
    path = tiny_bank / "clients.parquet"
    clients = pd.read_parquet(path)
    clients["founded"] = clients["founded"].astype("datetime64[us]")
    clients.loc[0, "founded"] = pd.Timestamp(dt.datetime(2015, 3, 12, 13, 30))
    clients.to_parquet(path)
    find(
        problems_of(tiny_bank),
        file="clients.parquet",
        row=1,
        column="founded",
        text="time of day",
    )
