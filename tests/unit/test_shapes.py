"""The generator writes each shape of bank extract from the same bank: same seed, same clients,
events and truth; each shape passes the contract (where the contract takes it) and says what it
kept. The statements' extra ratios carry signal where they should and none where they should not.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from rmreco.cli import app
from rmreco.data.contract import ValidatedTables, read_and_validate
from rmreco.domain import contract
from rmreco.domain.errors import DataContractError
from rmreco.synthetic import generate_bank
from rmreco.synthetic.applications import ATTRIBUTES
from rmreco.synthetic.extracts import ACCOUNT_KINDS
from rmreco.synthetic.ratios import RATIO_COLUMNS, RATIO_KINDS, RatioKind
from rmreco.synthetic.shape_options import Shape, ShapeOptions
from rmreco.synthetic.shapes import write_shape

BANK = {"n_clients": 300, "n_months": 24, "seed": 11}
OPTIONS = ShapeOptions(small_book_clients=120)
COHORT = OPTIONS.cohort_months
#: The refusal of a folder without account_months by a contract that requires the table.
MISSING_ACCOUNTS = "required table 'account_months' is missing"


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> dict[Shape, Path]:
    """Every shape of one small bank."""
    root = tmp_path_factory.mktemp("shapes")
    for shape in Shape:
        write_shape(root / shape.value, shape, options=OPTIONS, **BANK)
    return {shape: root / shape.value for shape in Shape}


def _read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(folder / f"{name}.parquet")


def _month(values: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(values)
    return stamps.dt.year * 12 + stamps.dt.month - 1


def _validate(folder: Path) -> ValidatedTables:
    """The folder read by the contract; skipped (not failed) while the contract still refuses
    a folder without account_months, so the check runs by itself once it takes one."""
    try:
        return read_and_validate(folder)
    except DataContractError as refused:
        if any(MISSING_ACCOUNTS in str(p) for p in refused.problems):
            pytest.skip(f"the contract does not take this shape yet: {MISSING_ACCOUNTS}")
        raise


# --- identity -------------------------------------------------------------------------------


def test_full_is_the_generated_bank_byte_for_byte(
    shapes: dict[Shape, Path], tmp_path: Path
) -> None:
    generate_bank(tmp_path / "bank", **BANK)
    assert _digests(shapes[Shape.FULL]) == _digests(tmp_path / "bank")


@pytest.mark.parametrize("shape", [s for s in Shape if s is not Shape.FULL])
def test_same_seed_same_bytes(shape: Shape, shapes: dict[Shape, Path], tmp_path: Path) -> None:
    summary = write_shape(tmp_path / "again", shape, options=OPTIONS, **BANK)
    assert _digests(tmp_path / "again") == _digests(shapes[shape])
    assert summary.shape is shape
    assert summary.notes
    assert summary.notes[0].startswith(f"{shape.value}:")
    for name, rows in summary.rows.items():
        assert len(pd.read_parquet(tmp_path / "again" / f"{name}.parquet")) == rows
    assert not [p for p in tmp_path.iterdir() if p.name != "again"], "work folder left behind"


def test_another_seed_gives_another_bank(shapes: dict[Shape, Path], tmp_path: Path) -> None:
    write_shape(tmp_path / "other", Shape.ACCOUNTS, **{**BANK, "seed": 12})
    other = _digests(tmp_path / "other")
    assert (
        other["account_months.parquet"]
        != _digests(shapes[Shape.ACCOUNTS])["account_months.parquet"]
    )


@pytest.mark.parametrize("shape", list(Shape))
def test_every_shape_passes_the_contract(shape: Shape, shapes: dict[Shape, Path]) -> None:
    validated = _validate(shapes[shape])
    assert len(validated.frame(contract.CLIENTS.name)) > 0


@pytest.mark.parametrize(
    "shape", [Shape.MONTH_END, Shape.ACCOUNTS, Shape.STATEMENTS_ONLY, Shape.RARE_PRODUCT]
)
def test_shapes_of_the_whole_book_keep_its_clients_events_and_truth(
    shape: Shape, shapes: dict[Shape, Path]
) -> None:
    full, digests = _digests(shapes[Shape.FULL]), _digests(shapes[shape])
    same = ["clients.parquet", "truth/credit_pd.parquet"]
    if shape is not Shape.MONTH_END:
        same.append("credit_events.parquet")
    for name in same:
        assert digests[name] == full[name], name


# --- month ends and accounts ----------------------------------------------------------------


def test_month_ends_read_as_the_full_bank(shapes: dict[Shape, Path]) -> None:
    raw = _read(shapes[Shape.MONTH_END], contract.ACCOUNT_MONTHS.name)
    days = pd.to_datetime(raw["month"])
    assert (days == days + pd.offsets.MonthEnd(0)).all()
    ended = _read(shapes[Shape.MONTH_END], contract.HOLDINGS.name)["end_month"]
    assert ended.notna().any()
    assert (pd.to_datetime(ended.dropna()).dt.is_month_end).all()
    shaped, full = read_and_validate(shapes[Shape.MONTH_END]), read_and_validate(shapes[Shape.FULL])
    for table in (contract.ACCOUNT_MONTHS, contract.HOLDINGS, contract.CREDIT_EVENTS):
        pd.testing.assert_frame_equal(shaped.frame(table.name), full.frame(table.name))
    assert f"account_months.month: {len(raw):,} dates within their month read as that month" in (
        shaped.notes
    )


def test_accounts_aggregate_back_to_the_client_months(shapes: dict[Shape, Path]) -> None:
    raw = _read(shapes[Shape.ACCOUNTS], contract.ACCOUNT_MONTHS.name)
    assert raw.columns[0] == "account_id"
    per_month = raw.groupby(["client_id", "month"]).size()
    assert set(per_month) == {2, 3}
    per_client = per_month.groupby(level="client_id").agg(["min", "max"])
    assert (per_client["min"] == per_client["max"]).all(), "a client keeps its accounts"
    assert 0.25 < (per_client["min"] == 3).mean() < 0.55
    kinds = raw["account_id"].str.split("-").str[0]
    assert set(kinds) == set(ACCOUNT_KINDS)
    assert raw.loc[kinds == "CARD", "overdraft_limit"].isna().all()
    shaped = read_and_validate(shapes[Shape.ACCOUNTS])
    full = read_and_validate(shapes[Shape.FULL])
    pd.testing.assert_frame_equal(
        shaped.frame(contract.ACCOUNT_MONTHS.name).reset_index(drop=True),
        full.frame(contract.ACCOUNT_MONTHS.name).reset_index(drop=True),
        check_exact=False,
        rtol=1e-12,
        atol=1e-6,  # amounts in cents, summed in floating point
    )


# --- single cohort --------------------------------------------------------------------------


def test_single_cohort_keeps_the_window_then_twelve_months_of_outcomes(
    shapes: dict[Shape, Path],
) -> None:
    folder, full = shapes[Shape.SINGLE_COHORT], shapes[Shape.FULL]
    accounts = _read(folder, contract.ACCOUNT_MONTHS.name)
    months = sorted(_month(accounts["month"]).unique())
    first = months[0]
    last = first + COHORT - 1
    assert months == list(range(first, last + 1))
    clients = _read(folder, contract.CLIENTS.name)
    assert set(clients["client_id"]) == set(accounts["client_id"])
    full_events = _read(full, contract.CREDIT_EVENTS.name)
    in_window = full_events[
        full_events["client_id"].isin(clients["client_id"])
        & (_month(full_events["month"]) <= last + OPTIONS.outcome_months)
    ]
    events = _read(folder, contract.CREDIT_EVENTS.name)
    pd.testing.assert_frame_equal(events.reset_index(drop=True), in_window.reset_index(drop=True))
    assert (_month(events["month"]) > last).sum() > 0, "outcomes after the last account month"
    holdings = _read(folder, contract.HOLDINGS.name)
    assert (_month(holdings["start_month"]) <= last).all()
    assert (_month(holdings["end_month"].dropna()) <= last).all()
    truth = _read(folder, f"{contract.TRUTH_DIR}/{contract.TRUTH_CREDIT_PD}")
    assert _month(truth["month"]).max() == last
    assert not (folder / f"{contract.FINANCIALS.name}.parquet").exists()  # no year ended yet
    validated = _validate(folder)
    assert len(validated.frame(contract.CREDIT_EVENTS.name)) == len(events)


# --- statements only ------------------------------------------------------------------------


def test_statements_only_every_firm_files_with_the_declared_ratios(
    shapes: dict[Shape, Path],
) -> None:
    folder, full = shapes[Shape.STATEMENTS_ONLY], shapes[Shape.FULL]
    assert not (folder / f"{contract.ACCOUNT_MONTHS.name}.parquet").exists()
    manifest = yaml.safe_load((folder / contract.MANIFEST_FILE).read_text())
    assert manifest == {
        "columns": {contract.FINANCIALS.name: dict.fromkeys(RATIO_COLUMNS, "numeric")}
    }
    assert all(re.match(contract.EXTRA_COLUMN_NAME, name) for name in RATIO_COLUMNS)
    statements = _read(folder, contract.FINANCIALS.name)
    assert list(statements.columns) == [*contract.FINANCIALS.column_names, *RATIO_COLUMNS]
    # every firm present at a December files that year's statement ...
    accounts = _read(full, contract.ACCOUNT_MONTHS.name)
    december = accounts[pd.to_datetime(accounts["month"]).dt.month == 12]
    present = set(
        zip(december["client_id"], pd.to_datetime(december["month"]).dt.year, strict=True)
    )
    assert set(zip(statements["client_id"], statements["year"], strict=True)) == present
    # ... and the usual filers' statements are those of the full bank
    usual = _read(full, contract.FINANCIALS.name)
    both = usual.merge(statements, on=["client_id", "year"], suffixes=("", "_shape"))
    assert len(both) == len(usual)
    for name in contract.FINANCIALS.column_names[2:]:
        assert (both[name] == both[f"{name}_shape"]).all(), name
    assert statements[list(RATIO_COLUMNS)].isna().mean().between(0.0, 0.6).all()
    _validate(folder)


def test_statements_only_leaves_personal_clients_out(tmp_path: Path) -> None:
    bank = {**BANK, "n_clients": 200, "personal_share": 0.3}
    summary = write_shape(tmp_path / "book", Shape.STATEMENTS_ONLY, **bank)
    clients = _read(tmp_path / "book", contract.CLIENTS.name)
    assert set(clients["segment"]) <= {"sme", "corporate"}
    dropped = 200 - len(clients)
    assert dropped > 30
    assert f"{dropped:,} personal clients left out" in " ".join(summary.notes)
    kept = set(clients["client_id"])
    for name in (contract.HOLDINGS.name, f"{contract.TRUTH_DIR}/{contract.TRUTH_CREDIT_PD}"):
        assert set(_read(tmp_path / "book", name)["client_id"]) <= kept
    rms = _read(tmp_path / "book", contract.RELATIONSHIP_MANAGERS.name)
    assert "prm" not in set(rms["role"])
    _validate(tmp_path / "book")


@pytest.fixture(scope="module")
def ratio_rows(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Statements of a bank large enough to measure its ratios: each with the truth's pd_12m at
    the year end and whether the firm defaulted in the twelve months after it."""
    folder = tmp_path_factory.mktemp("ratios") / "bank"
    write_shape(folder, Shape.STATEMENTS_ONLY, n_clients=2000, n_months=36, seed=5)
    statements = _read(folder, contract.FINANCIALS.name)
    statements["year_end"] = statements["year"] * 12 + 11
    truth = _read(folder, f"{contract.TRUTH_DIR}/{contract.TRUTH_CREDIT_PD}")
    truth["year_end"] = _month(truth["month"])
    rows = statements.merge(
        truth[["client_id", "year_end", "pd_12m"]], on=["client_id", "year_end"]
    )
    events = _read(folder, contract.CREDIT_EVENTS.name)
    defaults = events[events["event_type"] == contract.EventType.DEFAULT.value]
    pairs = rows[["client_id", "year_end"]].merge(
        defaults.assign(event=_month(defaults["month"]))[["client_id", "event"]], how="left"
    )
    pairs["hit"] = (pairs["event"] > pairs["year_end"]) & (pairs["event"] <= pairs["year_end"] + 12)
    hits = pairs.groupby(["client_id", "year_end"], as_index=False)["hit"].any()
    rows = rows.merge(hits.rename(columns={"hit": "default_12m"}), on=["client_id", "year_end"])
    return rows[rows["year_end"] + 12 <= truth["year_end"].max()]


def _auc(rows: pd.DataFrame, column: str) -> float:
    known = rows[column].notna()
    return float(roc_auc_score(rows.loc[known, "default_12m"], rows.loc[known, column]))


def test_the_extra_ratios_carry_signal_and_the_noise_ratios_none(ratio_rows: pd.DataFrame) -> None:
    assert ratio_rows["default_12m"].sum() >= 40  # enough defaults to measure an AUC
    strength = {name: abs(_auc(ratio_rows, name) - 0.5) for name in RATIO_COLUMNS}
    signal = [n for n, kind in RATIO_KINDS.items() if kind is not RatioKind.NOISE]
    noise = [n for n, kind in RATIO_KINDS.items() if kind is RatioKind.NOISE]
    assert max(strength[n] for n in signal) + 0.5 > 0.6
    assert max(strength[n] for n in noise) < 0.12, {n: strength[n] for n in noise}
    rank = {n: ratio_rows[n].corr(ratio_rows["pd_12m"], method="spearman") for n in RATIO_COLUMNS}
    assert max(abs(rank[n]) for n in noise) < 0.08, {n: rank[n] for n in noise}
    health = [n for n, kind in RATIO_KINDS.items() if kind is RatioKind.HEALTH]
    assert min(abs(rank[n]) for n in health) > 0.15, {n: rank[n] for n in health}
    assert sum(abs(rank[n]) > 0.3 for n in signal) >= 20


# --- attributes only ------------------------------------------------------------------------


def test_attributes_only_is_one_row_per_client_with_an_undated_outcome(
    shapes: dict[Shape, Path],
) -> None:
    folder, full = shapes[Shape.ATTRIBUTES_ONLY], shapes[Shape.FULL]
    for name in (contract.ACCOUNT_MONTHS, contract.HOLDINGS, contract.FINANCIALS):
        assert not (folder / f"{name.name}.parquet").exists()
    observed = 2022 * 12 + BANK["n_months"] - 1 - OPTIONS.outcome_months  # 2022-12
    manifest = yaml.safe_load((folder / contract.MANIFEST_FILE).read_text())
    assert manifest == {
        contract.MANIFEST_EXTRACT_DATE: date(2023, 12, 31),
        contract.MANIFEST_OBSERVATION_MONTH: "2022-12",
        "columns": {contract.CLIENTS.name: ATTRIBUTES},
    }
    assert 10 <= len(ATTRIBUTES) <= 20
    assert {"numeric", "categorical"} == set(ATTRIBUTES.values())
    assert all(re.match(contract.EXTRA_COLUMN_NAME, name) for name in ATTRIBUTES)
    clients = _read(folder, contract.CLIENTS.name)
    assert list(clients.columns)[-len(ATTRIBUTES) :] == list(ATTRIBUTES)
    truth = _read(full, f"{contract.TRUTH_DIR}/{contract.TRUTH_CREDIT_PD}")
    performing = truth[_month(truth["month"]) == observed]
    assert list(clients["client_id"]) == list(performing["client_id"])

    events = _read(folder, contract.CREDIT_EVENTS.name)
    assert events["month"].isna().all()
    assert set(events["event_type"]) <= {contract.EventType.DEFAULT.value}
    full_events = _read(full, contract.CREDIT_EVENTS.name)
    after = _month(full_events["month"])
    defaulted = full_events[
        (full_events["event_type"] == contract.EventType.DEFAULT.value)
        & (after > observed)
        & (after <= observed + OPTIONS.outcome_months)
        & full_events["client_id"].isin(clients["client_id"])
    ]
    assert sorted(events["client_id"]) == sorted(set(defaulted["client_id"]))

    shaped_truth = _read(folder, f"{contract.TRUTH_DIR}/{contract.TRUTH_CREDIT_PD}")
    assert (_month(shaped_truth["month"]) == observed).all()
    scored = clients.merge(shaped_truth, on="client_id")
    assert scored["bureau_score"].corr(scored["pd_12m"], method="spearman") < -0.5
    assert set(clients["bureau_band"]) <= {"A", "B", "C", "D", "E", "no_hit"}
    assert clients["legal_form"].nunique() >= 3
    validated = _validate(folder)
    assert len(validated.frame(contract.CLIENTS.name)) == len(clients)


# --- rare product and small book ------------------------------------------------------------


def test_rare_product_has_fewer_than_five_adopters_and_the_rest_unchanged(
    shapes: dict[Shape, Path],
) -> None:
    folder, full = shapes[Shape.RARE_PRODUCT], shapes[Shape.FULL]
    code = OPTIONS.rare_product
    holdings = _read(folder, contract.HOLDINGS.name)
    full_holdings = _read(full, contract.HOLDINGS.name)
    rare = holdings[holdings["product_code"] == code]
    assert 0 < rare["client_id"].nunique() <= OPTIONS.rare_adopters < 5
    assert (full_holdings["product_code"] == code).sum() > 5 * OPTIONS.rare_adopters
    pd.testing.assert_frame_equal(
        holdings[holdings["product_code"] != code].reset_index(drop=True),
        full_holdings[full_holdings["product_code"] != code].reset_index(drop=True),
    )
    truth = _read(folder, f"{contract.TRUTH_DIR}/{contract.TRUTH_CROSS_SELL}")
    assert code not in set(truth["product_code"])
    assert code in set(_read(folder, contract.PRODUCTS.name)["product_code"])


def test_small_book_is_the_first_clients_with_all_their_rows(shapes: dict[Shape, Path]) -> None:
    folder, full = shapes[Shape.SMALL_BOOK], shapes[Shape.FULL]
    clients = _read(folder, contract.CLIENTS.name)
    full_clients = _read(full, contract.CLIENTS.name)
    pd.testing.assert_frame_equal(clients, full_clients.head(OPTIONS.small_book_clients))
    kept = set(clients["client_id"])
    for table in (contract.ACCOUNT_MONTHS, contract.HOLDINGS, contract.CREDIT_EVENTS):
        mine, theirs = _read(folder, table.name), _read(full, table.name)
        pd.testing.assert_frame_equal(
            mine.reset_index(drop=True),
            theirs[theirs["client_id"].isin(kept)].reset_index(drop=True),
        )
    rms = _read(folder, contract.RELATIONSHIP_MANAGERS.name)
    assert set(rms["rm_id"]) == set(clients["rm_id"])


# --- refusals and the command line ----------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "arguments", "options", "message"),
    [
        ("statement_only", {}, ShapeOptions(), "unknown shape 'statement_only'; the shapes are"),
        (Shape.SINGLE_COHORT, {"n_months": 18}, ShapeOptions(), "cohort_months + outcome_months"),
        (Shape.SMALL_BOOK, {}, ShapeOptions(), "n_clients (300) must be more than"),
        (
            Shape.ATTRIBUTES_ONLY,
            {},
            ShapeOptions(observation_month=date(2023, 6, 1)),
            "observation_month must be a first of month from 2022-01-01 to 2022-12-01",
        ),
        (Shape.RARE_PRODUCT, {}, ShapeOptions(rare_product="yacht"), "'yacht' is not in the"),
    ],
)
def test_bad_shapes_and_options_are_refused_leaving_nothing(
    shape: str, arguments: dict[str, int], options: ShapeOptions, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        write_shape(tmp_path / "out", shape, options=options, **{**BANK, **arguments})
    assert list(tmp_path.iterdir()) == []


def test_a_non_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "busy.txt").write_text("x")
    with pytest.raises(ValueError, match="exists and is not empty"):
        write_shape(tmp_path, Shape.MONTH_END, **BANK)


def test_the_command_writes_a_shape_and_says_what_it_kept(tmp_path: Path) -> None:
    out = tmp_path / "bank"
    args = ["generate", "--out", str(out), "--clients", "80", "--months", "14", "--seed", "3"]
    result = CliRunner().invoke(app, [*args, "--shape", "accounts"])
    assert result.exit_code == 0, result.output
    assert "account rows" in result.output
    assert "account_id" in pd.read_parquet(out / "account_months.parquet").columns
    refused = CliRunner().invoke(app, [*args[:2], str(tmp_path / "x"), "--shape", "weekly"])
    assert refused.exit_code == 2
    assert "single_cohort" in refused.output  # the choices are listed
