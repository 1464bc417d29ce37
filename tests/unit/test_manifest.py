"""The extracts banks have: manifest.yaml, optional tables, the bank's own columns of clients and
financials, undated credit status and clients' as-of month (each on a copy of the tiny bank)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rmreco.data.contract import read_and_validate
from rmreco.data.manifest import Manifest, read_manifest
from rmreco.data.tables import read_feature_columns
from rmreco.domain import contract
from rmreco.domain.errors import DataContractError, Problem
from rmreco.features.inputs import read_feature_inputs

MANIFEST = contract.MANIFEST_FILE


def write_manifest(folder: Path, text: str) -> None:
    (folder / MANIFEST).write_text(text, encoding="utf-8")


def edit_csv(folder: Path, name: str, **columns: list[str | None]) -> None:
    """Set (or add) whole columns of ``<name>.csv``, read and written as text."""
    path = folder / f"{name}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column, values in columns.items():
        frame[column] = ["" if v is None else v for v in values]
    frame.to_csv(path, index=False)


def problems_of(folder: Path) -> list[Problem]:
    with pytest.raises(DataContractError) as caught:
        read_and_validate(folder)
    return caught.value.problems


def only(problems: list[Problem], *, file: str, text: str) -> Problem:
    hits = [p for p in problems if p.file == file and text in p.message]
    assert len(hits) == 1, f"no single problem of {file} with '{text}' in:\n" + "\n".join(
        map(str, problems)
    )
    return hits[0]


# --- the manifest ---------------------------------------------------------------------------


def test_manifest_keys_are_parsed(tmp_path: Path) -> None:
    write_manifest(
        tmp_path,
        "# every key optional\n"
        "extract_date: 2024-12-31\n"
        "observation_month: 2023-12\n"
        "columns:\n"
        "  clients:   {Legal_Form: categorical, bureau_score: numeric}\n"
        "  financials: {ratio_01: Numeric}\n",
    )
    manifest, problems = read_manifest(tmp_path)
    assert problems == []
    assert manifest is not None
    assert manifest.extract_date == dt.date(2024, 12, 31)
    assert manifest.extract_month() == dt.date(2024, 12, 1)
    assert manifest.observation_month == dt.date(2023, 12, 1)
    assert manifest.declared("clients") == {"legal_form": "categorical", "bureau_score": "numeric"}
    assert manifest.declared("financials") == {"ratio_01": "numeric"}
    with pytest.raises(Exception, match="frozen"):
        manifest.extract_date = None  # type: ignore[misc]


def test_no_manifest_and_an_empty_manifest(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) == (None, [])
    write_manifest(tmp_path, "# nothing to say\n")
    assert read_manifest(tmp_path) == (Manifest(), [])


def test_observation_month_takes_any_date_within_the_month(tmp_path: Path) -> None:
    write_manifest(tmp_path, "observation_month: '2023-12-31'\n")
    manifest, _ = read_manifest(tmp_path)
    assert manifest is not None
    assert manifest.observation_month == dt.date(2023, 12, 1)


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        ("extract_date: 2024-12-31\nextrakt: 1\n", "extrakt", "is unknown; the keys are"),
        ("extract_date: yesterday\n", "extract_date", "is not a date YYYY-MM-DD"),
        ("extract_date: 2024-02-30\n", "extract_date", "is not a date YYYY-MM-DD"),
        ("observation_month: 2023-13\n", "observation_month", "is not a date YYYY-MM-DD or"),
        ("columns: {clients: {score: number}}\n", "columns.clients.score", "'numeric'"),
        ("columns: {loans: {score: numeric}}\n", "columns.loans", "clients, financials"),
        ("columns: {clients: {segment: numeric}}\n", "columns.clients.segment", "contract column"),
        ("columns: {clients: {'Bureau Score': numeric}}\n", "Bureau Score", "not a plain"),
        ("columns: [clients]\n", "columns", "expected a mapping"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_bad_keys_and_values_are_refused_naming_the_file_and_the_key(
    tmp_path: Path, text: str, key: str, says: str
) -> None:
    write_manifest(tmp_path, text)
    manifest, problems = read_manifest(tmp_path)
    assert manifest is None
    assert len(problems) == 1, problems
    assert problems[0].file == MANIFEST
    assert f"'{key}" in problems[0].message, problems[0].message
    assert says in problems[0].message, problems[0].message


def test_bad_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    write_manifest(tmp_path, "extract_date: 2024-12-31\ncolumns: {clients: [\n")
    _, problems = read_manifest(tmp_path)
    assert problems[0].file == MANIFEST
    assert "is not valid YAML at line" in problems[0].message
    write_manifest(tmp_path, "- just\n- a list\n")
    _, problems = read_manifest(tmp_path)
    assert "must be a mapping of keys" in problems[0].message


def test_a_refused_manifest_refuses_the_load(tiny_bank: Path) -> None:
    write_manifest(tiny_bank, "extract_date: 2024-12-31\nobservaton_month: 2023-12\n")
    only(problems_of(tiny_bank), file=MANIFEST, text="key 'observaton_month' is unknown")


def test_the_manifest_is_part_of_the_fingerprint(tiny_bank: Path) -> None:
    without = read_and_validate(tiny_bank).fingerprint
    write_manifest(tiny_bank, "extract_date: 2024-06-30\n")
    assert read_and_validate(tiny_bank).fingerprint != without


# --- optional tables ------------------------------------------------------------------------


def test_only_clients_is_required_and_absent_tables_read_empty(tiny_bank: Path) -> None:
    for name in ("account_months", "holdings", "credit_events", "products", "financials"):
        (tiny_bank / f"{name}.csv").unlink()
    validated = read_and_validate(tiny_bank)
    assert validated.given_tables == ["relationship_managers", "clients"]
    assert validated.absent_tables == [
        "products",
        "account_months",
        "holdings",
        "credit_events",
        "financials",
    ]
    assert validated.notes[0] == (
        "tables not given, read as empty: products, account_months, holdings, credit_events, "
        "financials"
    )
    for name in validated.absent_tables:
        frame = validated.frame(name)
        assert frame.empty
        assert list(frame.columns) == list(contract.TABLES_BY_NAME[name].column_names)
    assert validated.frame("account_months")["month"].dtype.kind == "M"
    assert str(validated.frame("account_months")["n_credit_tx"].dtype) == "Int64"
    assert validated.frame("account_months")["balance_avg"].dtype == np.float64
    inputs, _ = read_feature_inputs(tiny_bank)
    assert inputs.account_months.empty
    assert inputs.financials is None
    assert inputs.extra_columns == {}
    assert inputs.outcome_end is None


def test_rm_reference_without_the_rm_table(tiny_bank: Path) -> None:
    (tiny_bank / "relationship_managers.csv").unlink()
    problem = only(problems_of(tiny_bank), file="clients.csv", text="relationship_managers")
    assert problem.column == "rm_id"
    assert problem.message.startswith("4 rows name a relationship_managers.rm_id")
    assert "leave rm_id empty" in problem.message
    edit_csv(tiny_bank, "clients", rm_id=[None] * 4)
    assert read_and_validate(tiny_bank).absent_tables == ["relationship_managers"]


def test_holdings_without_the_catalog_are_refused_naming_both(tiny_bank: Path) -> None:
    (tiny_bank / "products.csv").unlink()
    problem = only(problems_of(tiny_bank), file="holdings.csv", text="products.parquet")
    assert problem.column == "product_code"


def test_financials_need_only_client_and_year(tiny_bank: Path) -> None:
    (tiny_bank / "financials.csv").write_text("client_id,year,ratio_01\nC001,2023,0.5\n")
    validated = read_and_validate(tiny_bank)
    frame = validated.frame("financials")
    assert frame.loc[1, "ratio_01"] == 0.5
    assert validated.extra_columns == {"financials": {"ratio_01": "numeric"}}


def test_an_empty_account_months_file_is_still_refused(tiny_bank: Path) -> None:
    (tiny_bank / "account_months.csv").write_text(
        (tiny_bank / "account_months.csv").read_text().splitlines()[0] + "\n"
    )
    only(problems_of(tiny_bank), file="account_months.csv", text="has no data rows")


# --- the bank's own columns -----------------------------------------------------------------


def test_undeclared_columns_are_inferred_with_one_warning(tiny_bank: Path) -> None:
    edit_csv(
        tiny_bank,
        "clients",
        **{
            " Legal_Form ": ["gmbh", " ag ", None, "gmbh"],
            "bureau_score": ["1.5", "2", None, "1e3"],
        },
    )
    validated = read_and_validate(tiny_bank)
    assert (
        "clients.csv: 2 columns the contract does not know are used as features, kinds inferred "
        "(declare them in manifest.yaml to fix them): legal_form (categorical), "
        "bureau_score (numeric)"
    ) in validated.warnings
    assert validated.extra_columns == {
        "clients": {"legal_form": "categorical", "bureau_score": "numeric"}
    }
    assert validated.tables["clients"].extra_columns == ("legal_form", "bureau_score")
    inputs, _ = read_feature_inputs(tiny_bank)
    assert inputs.extra_columns == {
        "clients": {"legal_form": "categorical", "bureau_score": "numeric"}
    }
    clients = inputs.clients
    assert clients["bureau_score"].dtype == np.float64
    assert clients["bureau_score"].tolist()[:2] == [1.5, 2.0]
    assert np.isnan(clients["bureau_score"].iloc[2])
    assert clients["bureau_score"].iloc[3] == 1000.0
    assert clients["legal_form"].dtype == object
    assert clients["legal_form"].tolist() == ["gmbh", "ag", None, "gmbh"]


def test_one_inferred_column_reads_in_the_singular(tiny_bank: Path) -> None:
    edit_csv(tiny_bank, "financials", ratio_01=["0.1", "n/a", "0.3", "0.4"])
    validated = read_and_validate(tiny_bank)
    assert (
        "financials.csv: 1 column the contract does not know is used as feature, kind inferred "
        "(declare them in manifest.yaml to fix them): ratio_01 (categorical)"
    ) in validated.warnings


def test_declared_kinds_are_converted_and_a_bad_cell_is_located(tiny_bank: Path) -> None:
    edit_csv(tiny_bank, "clients", code=["01", "02", "01", "03"], score=["1", "2", "x", "4"])
    write_manifest(tiny_bank, "columns:\n  clients: {code: categorical, score: numeric}\n")
    problem = only(problems_of(tiny_bank), file="clients.csv", text="is not a number")
    assert (problem.row, problem.column) == (3, "score")
    assert problem.message == "'x' is not a number"

    edit_csv(tiny_bank, "clients", score=["1", "2", "", "4"])
    validated = read_and_validate(tiny_bank)
    assert validated.warnings == []  # declared: nothing inferred
    clients = validated.frame("clients")
    assert clients["code"].tolist() == ["01", "02", "01", "03"]  # text, not numbers
    assert clients["score"].dtype == np.float64


def test_a_declared_column_missing_from_the_file(tiny_bank: Path) -> None:
    write_manifest(tiny_bank, "columns:\n  clients: {score: numeric}\n")
    problem = only(problems_of(tiny_bank), file="clients.csv", text="declared in manifest.yaml")
    assert problem.column == "score"


def test_declared_columns_of_a_table_left_out(tiny_bank: Path) -> None:
    (tiny_bank / "financials.csv").unlink()
    write_manifest(tiny_bank, "columns:\n  financials: {ratio_01: numeric}\n")
    only(problems_of(tiny_bank), file=MANIFEST, text="key 'columns.financials' declares columns")


def test_a_column_name_that_is_not_plain_is_refused(tiny_bank: Path) -> None:
    edit_csv(tiny_bank, "clients", **{"roa(c) before tax": ["1", "2", "3", "4"]})
    problem = only(problems_of(tiny_bank), file="clients.csv", text="needs a plain name")
    assert problem.column == "roa(c) before tax"


def test_empty_columns_are_dropped_and_many_levels_warned(tiny_bank: Path) -> None:
    edit_csv(tiny_bank, "clients", unused=[None] * 4)
    validated = read_and_validate(tiny_bank)
    assert "unused" not in validated.frame("clients").columns
    assert validated.extra_columns == {}
    assert (
        "clients.csv: columns the contract does not know without any value are dropped: unused"
        in validated.warnings
    )
    raw = pd.DataFrame(
        {"auditor": [f"A{i}" for i in range(230)], "grade": ["a", "b"] * 115},
        index=pd.RangeIndex(1, 231, name="row"),
    )
    read = read_feature_columns(raw, ("auditor", "grade"), {}, file="financials.csv")
    assert read.kinds == {"auditor": "categorical", "grade": "categorical"}
    many = [w for w in read.warnings if "probably an identifier" in w]
    assert len(many) == 1
    assert many[0].startswith("financials.csv: column auditor is categorical with 230 distinct")


def test_parquet_columns_keep_their_kinds(tiny_bank: Path) -> None:
    clients = read_and_validate(tiny_bank).frame("clients").reset_index(drop=True)
    clients["bureau_score"] = [1, 2, 3, 4]
    clients["listed"] = [True, False, True, None]
    clients.to_parquet(tiny_bank / "clients.parquet")
    (tiny_bank / "clients.csv").unlink()
    validated = read_and_validate(tiny_bank)
    assert validated.extra_columns == {
        "clients": {"bureau_score": "numeric", "listed": "categorical"}
    }
    assert validated.frame("clients")["listed"].tolist() == ["true", "false", "true", None]


def test_extra_columns_of_other_tables_are_ignored(tiny_bank: Path) -> None:
    edit_csv(tiny_bank, "holdings", branch=["x"] * 8)
    validated = read_and_validate(tiny_bank)
    assert "branch" not in validated.frame("holdings").columns
    assert validated.extra_columns == {}
    assert any("holdings.csv" in w and "ignored: branch" in w for w in validated.warnings)


# --- undated status and the as-of month -----------------------------------------------------


def test_undated_status_is_an_event_of_the_extract_month(tiny_bank: Path) -> None:
    (tiny_bank / "credit_events.csv").write_text(
        "client_id,month,event_type\nC002,2024-05-01,default\nC004,,default\nC003,,restructuring\n"
    )
    write_manifest(tiny_bank, "extract_date: 2024-06-30\n")
    validated = read_and_validate(tiny_bank)
    events = validated.frame("credit_events")
    assert events["month"].tolist() == [
        pd.Timestamp("2024-05-01"),
        pd.Timestamp("2024-06-01"),
        pd.Timestamp("2024-06-01"),
    ]
    assert (
        "credit_events.month: 2 events without a month dated 2024-06 (extract_date of "
        "manifest.yaml)"
    ) in validated.notes
    inputs, _ = read_feature_inputs(tiny_bank)
    assert inputs.outcome_end == dt.date(2024, 6, 1)


def test_undated_status_without_an_extract_date_is_refused(tiny_bank: Path) -> None:
    (tiny_bank / "credit_events.csv").write_text(
        "client_id,month,event_type\nC002,2024-05-01,default\nC004,,default\n"
    )
    problems = problems_of(tiny_bank)
    problem = only(problems, file="credit_events.csv", text="extract_date")
    assert (problem.row, problem.column) == (2, "month")
    assert "set extract_date in manifest.yaml" in problem.message
    assert len(problems) == 1  # not again as "a value is required"


def test_a_status_table_without_months_is_dated_as_a_whole(tiny_bank: Path) -> None:
    (tiny_bank / "credit_events.csv").write_text("client_id,event_type\nC004,default\n")
    only(problems_of(tiny_bank), file="credit_events.csv", text="required column is missing")
    write_manifest(tiny_bank, "extract_date: 2024-06-15\n")
    events = read_and_validate(tiny_bank).frame("credit_events")
    assert events["month"].tolist() == [pd.Timestamp("2024-06-01")]


def test_as_of_month_is_filled_from_the_observation_month(tiny_bank: Path) -> None:
    edit_csv(tiny_bank, "clients", as_of_month=["2023-06-30", None, None, "2023-09"])
    validated = read_and_validate(tiny_bank)
    assert validated.frame("clients")["as_of_month"].tolist()[:2] == [
        pd.Timestamp("2023-06-01"),
        pd.NaT,
    ]
    write_manifest(tiny_bank, "observation_month: 2023-12\n")
    validated = read_and_validate(tiny_bank)
    assert validated.frame("clients")["as_of_month"].tolist() == [
        pd.Timestamp("2023-06-01"),
        pd.Timestamp("2023-12-01"),
        pd.Timestamp("2023-12-01"),
        pd.Timestamp("2023-09-01"),
    ]
    assert (
        "clients.as_of_month: 2 empty values dated 2023-12 (observation_month of manifest.yaml)"
        in validated.notes
    )


def test_as_of_month_column_left_out_is_the_observation_month(tiny_bank: Path) -> None:
    write_manifest(tiny_bank, "observation_month: 2023-12\n")
    clients = read_and_validate(tiny_bank).frame("clients")
    assert set(clients["as_of_month"]) == {pd.Timestamp("2023-12-01")}


# --- rmreco data check on such data ---------------------------------------------------------


def test_data_check_profiles_a_book_without_account_history(tiny_bank: Path) -> None:
    from typer.testing import CliRunner

    from rmreco.cli import app
    from rmreco.config import shipped_models_dir
    from rmreco.training.feasibility import check_data

    for name in ("account_months", "holdings", "products", "relationship_managers"):
        (tiny_bank / f"{name}.csv").unlink()
    edit_csv(tiny_bank, "clients", rm_id=[None] * 4, legal_form=["gmbh", "ag", "ag", "se"])
    edit_csv(tiny_bank, "financials", ratio_01=["0.1", "0.2", "0.3", "0.4"])
    (tiny_bank / "credit_events.csv").write_text("client_id,month,event_type\nC004,,default\n")
    write_manifest(
        tiny_bank, "extract_date: 2024-12-31\ncolumns: {financials: {ratio_01: numeric}}\n"
    )
    check = check_data(tiny_bank, shipped_models_dir())
    profile = check.profile
    assert profile.account_months.count == 0
    assert profile.months_from == ["financials.year"]
    # statements of 2022 and 2023, known six months after the year's end
    assert (profile.observation_months.first, profile.observation_months.last) == (
        "2023-06",
        "2024-06",
    )
    assert profile.extra_columns == {
        "clients": {"legal_form": "categorical"},
        "financials": {"ratio_01": "numeric"},
    }
    assert profile.extract_date == "2024-12-31"
    assert profile.absent_tables == [
        "relationship_managers",
        "products",
        "account_months",
        "holdings",
    ]
    assert any("1 events without a month dated 2024-12" in n for n in profile.notes)
    assert check.verdicts  # every spec answered, with a reason where it cannot train
    assert all(v.can_train or v.reasons for v in check.verdicts)

    result = CliRunner().invoke(app, ["data", "check", str(tiny_bank)])
    assert result.exit_code in (0, 6), result.output
    assert "Traceback" not in result.output
    assert "tables not given" in result.output


def test_an_undated_status_of_a_client_gone_long_ago_is_taken(tiny_bank: Path) -> None:
    """The grace after a client's last account month applies to dated events only: a status
    known at the extract date says nothing of when it began."""
    path = tiny_bank / "account_months.csv"
    months = pd.read_csv(path, dtype=str, keep_default_na=False)
    gone = (months["client_id"] == "C004") & (months["month"] > "2024-02-01")
    months[~gone].to_csv(path, index=False)
    write_manifest(tiny_bank, "extract_date: 2025-06-30\n")
    (tiny_bank / "credit_events.csv").write_text("client_id,month,event_type\nC004,,write_off\n")
    assert read_and_validate(tiny_bank).frame("credit_events")["month"].tolist() == [
        pd.Timestamp("2025-06-01")
    ]
    (tiny_bank / "credit_events.csv").write_text(
        "client_id,month,event_type\nC004,2025-06-30,write_off\n"
    )
    only(problems_of(tiny_bank), file="credit_events.csv", text="after the client's last month")


def test_the_documented_manifest_is_valid_and_documents_every_key(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "data-format.md").read_text()
    section = doc[doc.index("## Manifest") :]
    example = section[section.index("```yaml") + len("```yaml") : section.index("```\n\n")]
    write_manifest(tmp_path, example)
    manifest, problems = read_manifest(tmp_path)
    assert problems == []
    assert manifest is not None
    assert manifest.extract_date is not None
    for key in Manifest.model_fields:
        assert f"| `{key}` |" in section, f"manifest key {key} undocumented"


def test_every_filled_column_names_a_manifest_month() -> None:
    filled = [c for t in contract.TABLES for c in t.columns if c.filled_from is not None]
    assert {c.filled_from for c in filled} == {
        contract.MANIFEST_EXTRACT_DATE,
        contract.MANIFEST_OBSERVATION_MONTH,
    }
    manifest = Manifest(extract_date=dt.date(2024, 12, 31), observation_month=dt.date(2023, 12, 1))
    for column in filled:
        assert column.kind == "date"
        assert column.filled_from in Manifest.model_fields
        assert manifest.month_of(str(column.filled_from)) is not None


def test_an_unreadable_manifest_is_refused_naming_the_file_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / contract.MANIFEST_FILE
    manifest.write_text("extract_date: 2024-06-30\n")
    real = Path.read_text

    def denied(self: Path, *args: object, **kwargs: object) -> str:
        if self == manifest:
            raise PermissionError(13, "Permission denied")
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", denied)
    found, problems = read_manifest(tmp_path)
    assert found is None
    assert problems == [
        Problem(file=contract.MANIFEST_FILE, message="cannot be read: Permission denied")
    ]
