"""The feature refresh in blocks of clients: the same snapshots whatever the block size, on SQLite
and PostgreSQL, including a block none of whose clients reaches the data's last month (its offer
candidates cleared once the last block tells that month); and the driver-level reader of the
stored history gives the frames SQLAlchemy's ``pd.read_sql`` gives; its driver-level writer
stores what the ORM stores; a refresh whose blocks a Dask LocalCluster computes writes what one
process writes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from distributed import Client
from sqlalchemy import Engine, Table, delete, insert, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from rmreco.cli import app as cli
from rmreco.config import Settings
from rmreco.data.ingest import ingest_folder
from rmreco.db import schema
from rmreco.db.engine import create_engine_for, insert_rows, session_factory, transaction
from rmreco.db.migrate import create_if_empty
from rmreco.domain import contract
from rmreco.features import snapshots
from rmreco.features.config import SnapshotParams
from rmreco.synthetic import generate_bank
from rmreco.training.cluster import dask_client, parse_address
from rmreco.training.snapshots import cluster_blocks

CLIENTS = 60
BLOCK = 7


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small bank whose first block of clients (in client_id order) has no account row in the
    data's last month: that block's own last month is earlier than the data's."""
    folder = tmp_path_factory.mktemp("blocks") / "bank"
    generate_bank(folder, n_clients=CLIENTS, n_months=24, seed=5)
    months = pd.read_parquet(folder / "account_months.parquet")
    first_block = sorted(months["client_id"].astype(str).unique())[:BLOCK]
    last = pd.to_datetime(months["month"]).max()
    early = months["client_id"].isin(first_block) & (pd.to_datetime(months["month"]) >= last)
    months[~early].to_parquet(folder / "account_months.parquet", index=False)
    return folder


@pytest.fixture
def engine(db_url: str, bank: Path) -> Engine:
    create_if_empty(db_url)
    engine = create_engine_for(db_url)
    ingest_folder(bank, engine, settings=Settings())
    return engine


def _refreshed(engine: Engine, block: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(snapshots, "REFRESH_BLOCK_CLIENTS", block)
    steps: list[str] = []
    with transaction(session_factory(engine)) as session:
        written = snapshots.refresh_client_features(session, SnapshotParams(), steps.append)
    with Session(engine) as session:
        rows = {
            row.client_id: (row.month, row.in_default, row.features, row.offer_candidates)
            for row in session.scalars(select(schema.ClientFeatures))
        }
    assert written == len(rows)
    assert sum(s.startswith("computing the latest features") for s in steps) == math.ceil(
        CLIENTS / block
    )
    return rows


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def test_blocks_give_the_snapshots_of_one_block(
    engine: Engine, bank: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _refreshed(engine, 10 * CLIENTS, monkeypatch)
    blocks = _refreshed(engine, BLOCK, monkeypatch)
    assert blocks.keys() == whole.keys()
    assert [c for c in whole if not _same(blocks[c], whole[c])] == []

    # the first block's clients end a month early: no offer candidates, though their block alone
    # would list some at its own last month; the others' are listed
    first_block = sorted(whole)[:BLOCK]
    assert all(whole[c][3] is None for c in first_block)
    assert sum(whole[c][3] is not None for c in whole if c not in first_block) > CLIENTS // 2


def test_the_driver_reader_gives_what_read_sql_gives(engine: Engine) -> None:
    with transaction(session_factory(engine), read_only=True) as session:
        connection = session.connection()
        for table in (contract.ACCOUNT_MONTHS, contract.CLIENTS, contract.HOLDINGS):
            model = schema.CONTRACT_MODELS[table.name]
            query = select(*[getattr(model, c) for c in table.column_names])
            fast = snapshots._fetch_frame(connection, query)
            slow = pd.read_sql(query, connection)
            assert list(fast.columns) == list(slow.columns), table.name
            for name in slow.columns:
                mine, theirs = fast[name], slow[name]
                if pd.api.types.is_datetime64_any_dtype(mine.dtype):
                    theirs = pd.to_datetime(theirs)
                    assert mine.isna().equals(theirs.isna()), (table.name, name)
                    assert (mine[mine.notna()] == theirs[theirs.notna()]).all(), (table.name, name)
                elif pd.api.types.is_numeric_dtype(theirs.dtype):
                    np.testing.assert_array_equal(
                        mine.to_numpy(dtype=float), theirs.to_numpy(dtype=float), err_msg=name
                    )
                else:
                    assert mine.tolist() == theirs.tolist(), (table.name, name)


def test_the_driver_insert_stores_what_the_orm_stores(engine: Engine) -> None:
    """``insert_rows`` (the refresh's writer) and the ORM store the same values: JSON with
    nulls, nested objects and NaN-free floats, dates, flags and aware timestamps."""
    with Session(engine) as session:
        first, second = session.scalars(select(schema.Client.client_id).limit(2)).all()
    when = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    row = {
        "month": date(2024, 2, 1),
        "in_default": True,
        "features": {"a": 1.5, "b": None, "segment": "sme", "n": 3},
        "offer_candidates": {"holdings": {"x": 0.0}, "products": {"LOAN": {"y": None}}},
        "params": None,
        "computed_at": when,
    }
    table = schema.ClientFeatures.__table__
    assert isinstance(table, Table)
    with transaction(session_factory(engine)) as session:
        session.execute(delete(schema.ClientFeatures))
        assert insert_rows(session.connection(), table, [{"client_id": first, **row}]) == 1
        session.execute(insert(schema.ClientFeatures), [{"client_id": second, **row}])
    with Session(engine) as session:
        stored = {
            r.client_id: (r.month, r.in_default, r.features, r.offer_candidates, r.params)
            for r in session.scalars(select(schema.ClientFeatures))
        }
        times = session.execute(select(schema.ClientFeatures.computed_at)).scalars().all()
    assert stored[first] == stored[second]
    assert stored[first][0] == date(2024, 2, 1)
    assert stored[first][2]["b"] is None
    assert times[0] == times[1]
    assert insert_rows(engine.connect(), table, []) == 0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Client]:
    with dask_client(parse_address("local:2")) as client:
        yield client


@pytest.mark.slow
def test_a_refresh_on_a_cluster_writes_what_one_process_writes(
    engine: Engine, db_url: str, cluster: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers read and compute the blocks (the first of them without the data's last
    month), this process writes them: the rows of a refresh in one process, every client once."""
    alone = _refreshed(engine, BLOCK, monkeypatch)
    monkeypatch.setattr(snapshots, "REFRESH_BLOCK_CLIENTS", BLOCK)
    steps: list[str] = []
    with transaction(session_factory(engine)) as session:
        written = snapshots.refresh_client_features(
            session, SnapshotParams(), steps.append, compute=cluster_blocks(cluster, db_url)
        )
    with Session(engine) as session:
        rows = {
            row.client_id: (row.month, row.in_default, row.features, row.offer_candidates)
            for row in session.scalars(select(schema.ClientFeatures))
        }
    assert written == len(rows) == len(alone)
    assert sum(s.startswith("writing the snapshots") for s in steps) == math.ceil(CLIENTS / BLOCK)
    assert not any(s.startswith("reading the history") for s in steps)  # read by the workers
    assert rows.keys() == alone.keys()
    assert all(_same(rows[c], alone[c]) for c in alone)
    first_block = sorted(alone)[:BLOCK]
    assert all(rows[c][3] is None for c in first_block)  # cleared: no client at the last month


@pytest.mark.slow
def test_features_refresh_dask_completes_the_owed_refresh(
    engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RMRECO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RMRECO_MODELS_DIR", str(Path(__file__).parents[2] / "models"))
    result = CliRunner().invoke(cli, ["features", "refresh", "--db", db_url, "--dask", "local:1"])
    assert result.exit_code == 0, result.output
    assert "completed the refresh that was owed" in result.output
    assert f"feature snapshots refreshed for {CLIENTS} clients" in result.output
    with Session(engine) as session:
        assert len(session.scalars(select(schema.ClientFeatures.client_id)).all()) == CLIENTS


def test_the_stored_json_is_the_features_and_candidates_of_the_history(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh encodes its rows' JSON in polars: read back, each client's features and
    offer candidates are those the history gives as Python values (``latest_features``,
    ``offer_candidates``)."""
    stored = _refreshed(engine, CLIENTS, monkeypatch)
    with transaction(session_factory(engine), read_only=True) as session:
        inputs = snapshots.read_inputs(session)
    latest = snapshots.latest_features(inputs, SnapshotParams()).set_index("client_id")
    candidates = snapshots.offer_candidates(inputs, SnapshotParams())
    assert candidates
    assert stored.keys() == set(latest.index.astype(str))
    for client, (month, in_default, features, offers) in stored.items():
        row = latest.loc[client]
        assert month == row["month"].date()
        assert in_default == bool(row["in_default"])
        expected = {name: snapshots.json_ready(row[name]) for name in features}
        assert _same(features, expected), client
        assert "segment" in features
        assert _same(offers, candidates.get(client)), client
