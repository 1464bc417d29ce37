"""The documented data contract is generated from the code's one copy and must not drift."""

from __future__ import annotations

from pathlib import Path

from rmreco.domain.contract import TABLES
from rmreco.domain.contract_doc import END, START, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-format.md"


def test_docs_show_the_current_contract() -> None:
    text = DOC.read_text()
    generated = text[text.index(START) : text.index(END) + len(END)]
    assert generated == render(), (
        "docs/data-format.md is out of date: python -m rmreco.domain.contract_doc"
    )


def test_every_column_of_every_table_is_documented() -> None:
    text = DOC.read_text()
    for table in TABLES:
        assert f"### `{table.name}`" in text
        for column in table.columns:
            assert f"| `{column.name}` |" in text, f"{table.name}.{column.name} undocumented"


def test_contract_is_consistent() -> None:
    names = {t.name for t in TABLES}
    seen: set[str] = set()
    for table in TABLES:
        cols = set(table.column_names)
        assert len(cols) == len(table.columns), f"{table.name} repeats a column"
        assert set(table.key) <= set(table.required_columns)
        for ref in table.references:
            assert ref.column in cols
            assert ref.target_table in names
            assert ref.target_table in seen, f"{table.name} is loaded before {ref.target_table}"
        for start, end in table.ordered:
            assert {start, end} <= cols
        seen.add(table.name)
