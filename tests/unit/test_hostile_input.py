"""Input a database cannot hold is refused by the contract, naming file, row and column, before
anything is written (it used to crash a PostgreSQL load mid-way with a traceback)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rmreco.data.contract import read_and_validate
from rmreco.domain.errors import DataContractError, Problem


def _set(folder: Path, table: str, row: int, column: str, value: str) -> None:
    path = folder / f"{table}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[row - 1, column] = value
    frame.to_csv(path, index=False)


def _problems(folder: Path) -> list[Problem]:
    with pytest.raises(DataContractError) as caught:
        read_and_validate(folder)
    return caught.value.problems


def test_a_whole_number_beyond_32_bits_is_refused(tiny_bank: Path) -> None:
    _set(tiny_bank, "clients", 2, "employees", "3000000000")
    _set(tiny_bank, "account_months", 3, "n_credit_tx", "2147483648")
    problems = _problems(tiny_bank)
    beyond = [p for p in problems if "beyond 2,147,483,647" in p.message]
    assert {(p.file, p.row, p.column) for p in beyond} == {
        ("clients.csv", 2, "employees"),
        ("account_months.csv", 3, "n_credit_tx"),
    }


def test_a_parquet_integer_beyond_32_bits_is_refused(tiny_bank: Path) -> None:
    clients = pd.read_csv(tiny_bank / "clients.csv", dtype={"employees": "Int64"})
    clients.loc[0, "employees"] = 2**40
    clients.to_parquet(tiny_bank / "clients.parquet", index=False)
    (tiny_bank / "clients.csv").unlink()
    problems = _problems(tiny_bank)
    assert any(
        (p.file, p.row, p.column) == ("clients.parquet", 1, "employees")
        and "largest whole number" in p.message
        for p in problems
    ), problems


def test_a_nul_character_in_text_is_refused(tiny_bank: Path) -> None:
    _set(tiny_bank, "clients", 1, "region", "Nor\x00th")
    problems = _problems(tiny_bank)
    hits = [p for p in problems if "NUL character" in p.message]
    assert [(p.file, p.row, p.column) for p in hits] == [("clients.csv", 1, "region")]
    assert "\x00" not in hits[0].message  # said, not echoed


@pytest.mark.parametrize("amount", [1e308, float("inf"), 2e15])
def test_request_and_feedback_amounts_are_bounded(amount: float) -> None:
    from pydantic import ValidationError

    from rmreco.serving.schemas import MAX_AMOUNT, FeedbackRequest, FinancingRequest

    for model, extra in ((FinancingRequest, {}), (FeedbackRequest, {"outcome": "accepted"})):
        with pytest.raises(ValidationError, match="amount"):
            model.model_validate({"amount": amount, **extra})
        assert model.model_validate({"amount": MAX_AMOUNT, **extra}).amount == MAX_AMOUNT
