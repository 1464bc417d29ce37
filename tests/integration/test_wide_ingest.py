"""Ingest of the extracts banks have, into SQLite and PostgreSQL: the bank's own columns of
clients and financials (declared in the manifest or inferred), undated credit status, clients'
as-of month, tables left out; and the stored tables read back as the folder reads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from rmreco.config import Settings
from rmreco.data.ingest import ingest_folder
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.db.migrate import upgrade
from rmreco.db.schema import Client, CreditEvent, ExtraColumn, Financial
from rmreco.domain import contract
from rmreco.domain.errors import DataContractError
from rmreco.features.inputs import read_feature_inputs
from rmreco.features.snapshots import read_inputs

EXTRAS = {
    "clients": {"legal_form": "categorical", "bureau_score": "numeric"},
    "financials": {"ratio_01": "numeric"},
}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    upgrade(db_url)
    engine = create_engine_for(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", currency="EUR")


def set_columns(folder: Path, name: str, **columns: list[str | None]) -> None:
    path = folder / f"{name}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column, values in columns.items():
        frame[column] = ["" if v is None else v for v in values]
    frame.to_csv(path, index=False)


@pytest.fixture
def wide_bank(tiny_bank: Path) -> Path:
    """The tiny bank with its own columns, an undated status and a manifest."""
    set_columns(
        tiny_bank,
        "clients",
        legal_form=["gmbh", "ag", None, "gmbh"],
        bureau_score=["1.5", "2", "7", None],
        as_of_month=["2024-03-31", None, None, None],
    )
    set_columns(tiny_bank, "financials", ratio_01=["0.1", "0.25", None, "3"])
    (tiny_bank / "credit_events.csv").write_text(
        "client_id,month,event_type\nC002,2024-05-01,default\nC004,,restructuring\n"
    )
    (tiny_bank / contract.MANIFEST_FILE).write_text(
        "extract_date: 2024-06-30\n"
        "observation_month: 2024-06\n"
        "columns:\n"
        "  clients: {legal_form: categorical, bureau_score: numeric}\n"
    )
    return tiny_bank


def _stored(engine: Engine) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, str]]]:
    with transaction(session_factory(engine), read_only=True) as session:
        inputs = read_inputs(session)
    return inputs.clients, inputs.financials, {k: dict(v) for k, v in inputs.extra_columns.items()}


def test_extras_and_manifest_load_and_read_back_as_the_folder(
    engine: Engine, wide_bank: Path, settings: Settings
) -> None:
    summary = ingest_folder(wide_bank, engine, settings=settings)
    assert summary.extra_columns == EXTRAS
    assert any(
        "credit_events.month: 1 events without a month dated 2024-06" in n for n in summary.notes
    )
    folder, _ = read_feature_inputs(wide_bank)
    clients, financials, kinds = _stored(engine)
    assert kinds == EXTRAS == {k: dict(v) for k, v in folder.extra_columns.items()}

    by_id = clients.set_index("client_id").sort_index()
    expected = folder.clients.set_index("client_id").sort_index()
    assert by_id["bureau_score"].dtype == np.float64
    np.testing.assert_array_equal(by_id["bureau_score"], expected["bureau_score"])
    assert by_id["legal_form"].tolist() == expected["legal_form"].tolist()
    assert by_id["legal_form"].tolist() == ["gmbh", "ag", None, "gmbh"]
    assert pd.to_datetime(by_id["as_of_month"]).tolist() == list(expected["as_of_month"])
    assert pd.to_datetime(by_id["as_of_month"]).tolist() == [
        pd.Timestamp("2024-03-01"),
        *[pd.Timestamp("2024-06-01")] * 3,
    ]
    assert folder.financials is not None
    stored_ratio = financials.sort_values(["client_id", "year"])["ratio_01"].tolist()
    folder_ratio = folder.financials.sort_values(["client_id", "year"])["ratio_01"].tolist()
    np.testing.assert_array_equal(stored_ratio, folder_ratio)

    with engine.connect() as connection:
        months = connection.execute(
            select(CreditEvent.month).where(CreditEvent.client_id == "C004")
        ).scalars()
        assert list(months) == [dt.date(2024, 6, 1)]
        extra = connection.execute(
            select(Client.extra).where(Client.client_id == "C001")
        ).scalar_one()
        assert extra == {"legal_form": "gmbh", "bureau_score": 1.5}


def test_a_column_keeps_its_kind_across_loads(
    engine: Engine, wide_bank: Path, settings: Settings
) -> None:
    first = ingest_folder(wide_bank, engine, settings=settings)
    # the next extract has a text cell in the score and no manifest: inferred categorical
    (wide_bank / contract.MANIFEST_FILE).write_text("extract_date: 2024-06-30\n")
    set_columns(wide_bank, "clients", bureau_score=["1.5", "n/a", "7", None])
    with pytest.raises(DataContractError) as refused:
        ingest_folder(wide_bank, engine, settings=settings)
    message = str(refused.value)
    assert "clients.bureau_score is numeric in the database" in message
    assert f"ingest run {first.run_id}" in message
    assert "declare it numeric under columns.clients in manifest.yaml" in message
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(ExtraColumn)) == 3

    # declared as the database has it, the bad cell is refused with its row
    (wide_bank / contract.MANIFEST_FILE).write_text(
        "extract_date: 2024-06-30\ncolumns: {clients: {bureau_score: numeric}}\n"
    )
    with pytest.raises(DataContractError) as located:
        ingest_folder(wide_bank, engine, settings=settings)
    problem = located.value.problems[0]
    assert (problem.file, problem.row, problem.column) == ("clients.csv", 2, "bureau_score")


def test_a_load_without_extras_leaves_them(
    engine: Engine, wide_bank: Path, tiny_bank: Path, settings: Settings
) -> None:
    ingest_folder(wide_bank, engine, settings=settings)
    plain = tiny_bank.parent / "plain"
    plain.mkdir()
    for name in ("relationship_managers", "clients", "financials"):
        frame = pd.read_csv(wide_bank / f"{name}.csv", dtype=str, keep_default_na=False)
        known = list(contract.TABLES_BY_NAME[name].column_names)
        frame[[c for c in known if c in frame]].to_csv(plain / f"{name}.csv", index=False)
    summary = ingest_folder(plain, engine, settings=settings)
    assert summary.absent == ["products", "account_months", "holdings", "credit_events"]
    clients, _, kinds = _stored(engine)
    assert kinds == EXTRAS
    assert clients.set_index("client_id").loc["C002", "legal_form"] == "ag"


def test_a_database_without_extras_reads_none(
    engine: Engine, tiny_bank: Path, settings: Settings
) -> None:
    ingest_folder(tiny_bank, engine, settings=settings)
    clients, financials, kinds = _stored(engine)
    assert kinds == {}
    assert set(clients.columns) == set(contract.CLIENTS.column_names)
    assert set(financials.columns) == set(contract.FINANCIALS.column_names)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).where(Financial.extra.is_not(None))) == 0


def test_cli_ingest_of_a_statements_only_book(
    db_url: str, tiny_bank: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rmreco.cli.main import app

    monkeypatch.setenv("RMRECO_HOME", str(tmp_path / "home"))
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("RMRECO_MODELS_DIR", str(models))
    monkeypatch.setenv("RMRECO_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    book = tmp_path / "statements"
    book.mkdir()
    clients = pd.read_csv(tiny_bank / "clients.csv", dtype=str, keep_default_na=False)
    clients.assign(rm_id="").to_csv(book / "clients.csv", index=False)
    financials = pd.read_csv(tiny_bank / "financials.csv", dtype=str, keep_default_na=False)
    financials[["client_id", "year", "revenue"]].assign(ratio_01="0.5").to_csv(
        book / "financials.csv", index=False
    )
    result = CliRunner().invoke(app, ["ingest", str(book), "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "tables not given, read as empty: relationship_managers, products" in result.output
    assert "account_months:         not given" in result.output
    assert "financials: the bank's own columns loaded: ratio_01 (numeric)" in result.output
