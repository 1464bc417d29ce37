"""Clients have names: an optional contract column that is never a feature, checked for length,
and realistic, varied, deterministic names from the synthetic bank."""

from __future__ import annotations

import collections
import hashlib
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rmreco.data.contract import read_and_validate
from rmreco.data.ingest import too_long_problems
from rmreco.domain import contract
from rmreco.domain.errors import DataContractError
from rmreco.features.builder import build_features, feature_names
from rmreco.features.inputs import read_feature_inputs
from rmreco.synthetic import generate_bank, simulation
from rmreco.synthetic import names as naming
from rmreco.synthetic.parameters import CORPORATE, PERSONAL, REGIONS, SECTOR_CODES, SME

NAME = "name"
LIMIT = contract.CLIENT_NAME_MAX_LENGTH


def _edit_clients(folder: Path, **columns: list[str]) -> None:
    path = folder / "clients.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column, values in columns.items():
        frame[column] = values
    frame.to_csv(path, index=False)


def _drop_names(folder: Path) -> None:
    path = folder / "clients.csv"
    pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns=[NAME]).to_csv(
        path, index=False
    )


def _clients(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments (half SMEs, a tenth corporates, the rest persons), regions, sectors."""
    rng = np.random.default_rng(seed)
    segment = rng.choice([SME, CORPORATE, PERSONAL], n, p=[0.5, 0.1, 0.4])
    region = rng.integers(0, len(REGIONS), n)
    sector = np.where(segment == PERSONAL, -1, rng.integers(0, len(SECTOR_CODES), n))
    return segment, region, sector


def _names(n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    segment, region, sector = _clients(n, seed)
    names = naming.client_names(np.random.default_rng(seed), segment, region, sector)
    assert names.null_count == 0
    return names.to_pylist(), segment, region


# --- the contract ---------------------------------------------------------------------------


def test_the_name_is_an_optional_nullable_text_of_bounded_length() -> None:
    column = contract.CLIENTS.column(NAME)
    assert (column.kind, column.required, column.nullable) == ("str", False, True)
    assert column.max_length == LIMIT == 200
    assert contract.CLIENTS.column_names[:2] == ("client_id", NAME)


def test_names_load_and_an_empty_cell_is_no_name(tiny_bank: Path) -> None:
    clients = read_and_validate(tiny_bank).frame(contract.CLIENTS.name).set_index("client_id")
    assert clients.loc["C001", NAME] == "Peeters Handel BV"
    assert clients.loc["C003", NAME] == "Lambert Métal Industries SA"
    assert clients.loc[["C002", "C004"], NAME].isna().all()


def test_a_folder_without_names_loads_as_before(tiny_bank: Path) -> None:
    _drop_names(tiny_bank)
    validated = read_and_validate(tiny_bank)
    assert NAME not in validated.frame(contract.CLIENTS.name).columns
    assert not validated.warnings


def test_a_name_is_never_a_bank_column_nor_a_feature(tiny_bank: Path, tmp_path: Path) -> None:
    inputs, validated = read_feature_inputs(tiny_bank)
    assert validated.extra_columns == {}, "a name became one of the bank's own columns"
    with_names = build_features(inputs)
    assert set(with_names.columns) == {"client_id", "month", "observed", *feature_names()}
    # the same book without names gives the very same features
    _drop_names(tiny_bank)
    without, _ = read_feature_inputs(tiny_bank)
    pd.testing.assert_frame_equal(with_names, build_features(without))


def test_a_manifest_cannot_declare_the_name_a_feature(tiny_bank: Path) -> None:
    (tiny_bank / contract.MANIFEST_FILE).write_text("columns: {clients: {name: categorical}}\n")
    with pytest.raises(DataContractError) as caught:
        read_and_validate(tiny_bank)
    assert any("contract column" in p.message for p in caught.value.problems)


def test_a_name_longer_than_the_limit_is_refused_naming_where_not_what(tiny_bank: Path) -> None:
    long_name = "Établissements " + "x" * (LIMIT - 15)  # 200 characters: still fits
    assert len(long_name) == LIMIT
    too_long = "Secret Person " + "y" * LIMIT
    _edit_clients(tiny_bank, name=[long_name, "", too_long, too_long])
    problems = too_long_problems(read_and_validate(tiny_bank))
    assert [(p.file, p.row, p.column) for p in problems] == [
        ("clients.csv", 3, NAME),
        ("clients.csv", 4, NAME),
    ]
    assert all(str(LIMIT) in p.message and "Secret" not in p.message for p in problems)


def test_names_within_the_limit_raise_no_problem(tiny_bank: Path) -> None:
    assert too_long_problems(read_and_validate(tiny_bank)) == []


# --- the synthetic bank's names -------------------------------------------------------------


def test_names_are_deterministic_for_a_seed() -> None:
    first, _, _ = _names(2_000, seed=3)
    again, _, _ = _names(2_000, seed=3)
    other, _, _ = _names(2_000, seed=4)
    assert first == again
    assert sum(a != b for a, b in zip(first, other, strict=True)) > 1_900


def test_names_are_varied_enough_to_find_a_client_by_name() -> None:
    names, _, _ = _names(20_000, seed=1)
    counts = collections.Counter(names)
    alone = sum(1 for name in names if counts[name] == 1)
    assert alone / len(names) > 0.85, "too many clients share their name"
    assert max(counts.values()) <= 8, counts.most_common(3)
    assert len(counts) < len(names), "no two clients share a name: real banks have some"


def test_firms_have_legal_names_and_persons_personal_names() -> None:
    names, segment, _ = _names(5_000, seed=2)
    sme_forms = {form for forms in naming._SME_FORMS for form, _ in forms}
    corporate_forms = {form for forms in naming._CORPORATE_FORMS for form, _ in forms}
    larger = {"Groep", "Groupe", "Gruppe", "Holding", "International", "Industries", "Industrie"}

    def form(name: str) -> str | None:
        for candidate in sorted(sme_forms | corporate_forms, key=len, reverse=True):
            if name.endswith(" " + candidate):
                return candidate
        return None

    smes = [n for n, s in zip(names, segment, strict=True) if s == SME]
    corporates = [n for n, s in zip(names, segment, strict=True) if s == CORPORATE]
    persons = [n for n, s in zip(names, segment, strict=True) if s == PERSONAL]
    # most SMEs carry an SME legal form; the rest are sole traders without one
    sme_with_form = [form(n) for n in smes if form(n) is not None]
    assert 0.9 < len(sme_with_form) / len(smes) < 1.0
    assert set(sme_with_form) <= sme_forms
    # every corporate has a corporate form, and many sound larger than an SME ever does
    assert all(form(n) in corporate_forms for n in corporates)
    assert sum(any(w in n.split() for w in larger) for n in corporates) > 0.4 * len(corporates)
    assert not any(any(w in n.split() for w in larger) for n in smes)
    # a person: a given name, perhaps an initial, a family name (perhaps double); no form
    assert all(len(n.split()) >= 2 and form(n) is None for n in persons)
    assert any(n.split()[1].endswith(".") for n in persons), "no middle initial"
    assert any("-" in n.split()[-1] for n in persons), "no double family name"
    assert max(len(n) for n in names) <= LIMIT


def _family_of(person: str) -> str:
    """A person's (first) family name: after the given name and any middle initial."""
    rest = person.split(" ", 1)[1]
    if rest[1:3] == ". ":
        rest = rest[3:]
    return rest.split("-")[0]


def test_a_clients_language_follows_its_region() -> None:
    names, segment, region = _names(6_000, seed=5)

    def share(language: int, where: str) -> float:
        rows = np.flatnonzero((segment == PERSONAL) & (region == REGIONS.index(where)))
        family = set(naming._FAMILY[language])
        return sum(_family_of(names[i]) in family for i in rows) / rows.size

    assert share(naming.FR, "South") > 0.8 > 0.2 > share(naming.FR, "North")
    assert share(naming.DE, "East") > 0.7 > 0.1 > share(naming.DE, "West")
    assert share(naming.NL, "North") > 0.8 > 0.2 > share(naming.NL, "South")


def _trade_words(sectors: set[str]) -> set[str]:
    return {
        word
        for trades in naming._TRADES
        for code, templates in trades.items()
        if code in sectors
        for template in templates
        for word in template.replace("{}", " ").split()
    }


def test_a_firms_trade_word_comes_from_its_sector() -> None:
    n = 3_000
    segment = np.full(n, SME)
    region = np.random.default_rng(1).integers(0, len(REGIONS), n)
    sector = np.full(n, SECTOR_CODES.index("H"))  # transport
    names = naming.client_names(np.random.default_rng(0), segment, region, sector).to_pylist()
    transport = _trade_words({"H"})
    others = _trade_words(set(SECTOR_CODES) - {"H"}) - transport
    assert sum(bool(transport & set(n.split())) for n in names) > 0.7 * n
    assert not [n for n in names if others & set(n.split())]


# --- the generator ---------------------------------------------------------------------------


def _generate(out: Path, personal_share: float) -> None:
    generate_bank(
        out,
        n_clients=260,
        n_months=14,
        seed=11,
        start_month=date(2023, 1, 1),
        chunk_clients=100,
        personal_share=personal_share,
    )


def test_every_generated_client_has_a_name_in_the_contracts_place(tmp_path: Path) -> None:
    _generate(tmp_path / "bank", personal_share=0.3)
    clients = pq.read_table(tmp_path / "bank" / f"{contract.CLIENTS.name}.parquet")
    assert clients.column_names[:2] == ["client_id", NAME]
    assert clients.schema.field(NAME).type == pa.string()
    names = clients.column(NAME).to_pylist()
    assert all(isinstance(n, str) and 0 < len(n) <= LIMIT for n in names)
    read_and_validate(tmp_path / "bank")  # raises on any contract problem


@pytest.mark.parametrize("personal_share", [0.0, 0.3])
def test_names_change_nothing_else_the_generator_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, personal_share: float
) -> None:
    _generate(tmp_path / "named", personal_share)
    with monkeypatch.context() as patch:
        patch.setattr(simulation, "with_names", lambda clients, *args: clients)
        _generate(tmp_path / "unnamed", personal_share)
    named, unnamed = tmp_path / "named", tmp_path / "unnamed"
    files = sorted(p.relative_to(named) for p in named.rglob("*.parquet"))
    assert files == sorted(p.relative_to(unnamed) for p in unnamed.rglob("*.parquet"))
    clients = Path(f"{contract.CLIENTS.name}.parquet")
    for file in files:
        if file != clients:
            digest = [
                hashlib.sha256((root / file).read_bytes()).digest() for root in (named, unnamed)
            ]
            assert digest[0] == digest[1], f"{file} changed with names"
    with_names = pq.read_table(named / clients)
    assert with_names.drop_columns([NAME]).equals(pq.read_table(unnamed / clients))
