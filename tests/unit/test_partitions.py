"""The client-partitioned layout: what the generator writes with ``partitions``, what
``rmreco.data.partitions`` promises and checks, and how ingest reads a table given as parts."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rmreco.data.partitions import (
    PARTITIONS_FILE,
    client_blocks,
    is_partitioned,
    part_name,
    part_path,
    partition_problems,
    read_partitions,
    table_parts,
)
from rmreco.data.tables import find_table_files, read_input_folder
from rmreco.domain import contract
from rmreco.synthetic import generate_bank

N_PARTS = 3
#: Chunks of 64 clients: the parts' edges (67, 134) fall inside chunks, so chunks are split.
BANK: dict[str, Any] = {"n_clients": 200, "n_months": 13, "seed": 11, "chunk_clients": 64}
CLIENT_TABLES = (
    "clients",
    "account_months",
    "holdings",
    "credit_events",
    "financials",
    "truth/credit_pd",
    "truth/cross_sell",
)


@pytest.fixture(scope="module")
def banks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same bank written one file per table and in N_PARTS parts."""
    root = tmp_path_factory.mktemp("partitions")
    single, parted = root / "single", root / "parted"
    generate_bank(single, **BANK)
    generate_bank(parted, partitions=N_PARTS, **BANK)
    return single, parted


@pytest.fixture
def parted_copy(banks: tuple[Path, Path], tmp_path: Path) -> Path:
    """A private copy of the partitioned bank, to break."""
    target = tmp_path / "parted"
    shutil.copytree(banks[1], target)
    return target


def _parts(folder: Path, table: str) -> pd.DataFrame:
    return pd.concat(
        [pd.read_parquet(path) for path in table_parts(folder, table)], ignore_index=True
    )


def test_client_blocks_are_contiguous_balanced_and_cover_every_client() -> None:
    blocks = client_blocks(200, 3)
    assert blocks == [(0, 66), (66, 133), (133, 200)]
    assert client_blocks(5, 5) == [(k, k + 1) for k in range(5)]
    assert client_blocks(7, 1) == [(0, 7)]
    with pytest.raises(ValueError, match="at least as many clients"):
        client_blocks(2, 3)
    with pytest.raises(ValueError, match="between 1"):
        client_blocks(10, 0)


def test_the_layout_holds_every_client_table_in_n_parts(banks: tuple[Path, Path]) -> None:
    _, parted = banks
    assert is_partitioned(parted)
    assert not is_partitioned(banks[0])
    for table in CLIENT_TABLES:
        assert [p.name for p in table_parts(parted, table)] == [
            part_name(k) for k in range(N_PARTS)
        ], table
        assert not (parted / f"{table}.parquet").exists()
    for table in (contract.PRODUCTS.name, contract.RELATIONSHIP_MANAGERS.name):
        assert (parted / f"{table}.parquet").is_file()
        assert not (parted / table).exists()
    assert partition_problems(parted) == []


def test_a_client_lies_in_one_part_and_parts_follow_each_other(
    banks: tuple[Path, Path],
) -> None:
    _, parted = banks
    manifest, problems = read_partitions(parted)
    assert problems == []
    assert manifest is not None
    assert manifest.n_parts == N_PARTS
    assert set(manifest.tables) == set(CLIENT_TABLES)
    owner: dict[str, int] = {}
    for k, part in enumerate(manifest.parts):
        clients = pd.read_parquet(part_path(parted, "clients", k))["client_id"]
        assert (clients.iloc[0], clients.iloc[-1]) == (part.first_client, part.last_client)
        owner.update(dict.fromkeys(clients, k))
        if k:
            assert manifest.parts[k - 1].last_client < part.first_client
    assert len(owner) == BANK["n_clients"]
    for table in CLIENT_TABLES:
        for k, path in enumerate(table_parts(parted, table)):
            frame = pd.read_parquet(path)
            assert len(frame) == manifest.parts[k].rows[table], (table, k)
            assert {owner[c] for c in frame["client_id"]} <= {k}, (table, k)
            key = ["client_id", *(["month"] if "month" in frame.columns else [])]
            assert frame[key].equals(frame[key].sort_values(key, ignore_index=True))
    assert manifest.divisions()[0] == manifest.parts[0].first_client
    assert manifest.divisions()[-1] == manifest.parts[-1].last_client


def test_partitions_change_the_files_not_the_bank(banks: tuple[Path, Path]) -> None:
    single, parted = banks
    for table in CLIENT_TABLES:
        whole = pd.read_parquet(single / f"{table}.parquet")
        assert len(whole) > 0, table
        pd.testing.assert_frame_equal(_parts(parted, table), whole, check_dtype=True)
    for table in (contract.PRODUCTS.name, contract.RELATIONSHIP_MANAGERS.name):
        name = f"{table}.parquet"
        assert (parted / name).read_bytes() == (single / name).read_bytes()


def test_a_part_lists_only_its_own_clients(banks: tuple[Path, Path]) -> None:
    """The client dictionary of a part's file holds its own clients, not the whole chunk's."""
    _, parted = banks
    path = part_path(parted, "truth/cross_sell", 1)
    column = pq.read_table(path, columns=["client_id"], read_dictionary=["client_id"])
    values = set(column.column(0).combine_chunks().dictionary.to_pylist())
    assert values == set(pd.read_parquet(part_path(parted, "clients", 1))["client_id"])


def test_same_arguments_give_the_same_bytes(banks: tuple[Path, Path], tmp_path: Path) -> None:
    _, parted = banks
    again = tmp_path / "again"
    generate_bank(again, partitions=N_PARTS, **BANK)

    def digests(folder: Path) -> dict[str, str]:
        return {
            p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }

    expected = digests(parted)
    assert PARTITIONS_FILE in expected
    assert digests(again) == expected


def test_bad_partition_counts_are_refused_and_leave_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least as many clients"):
        generate_bank(tmp_path / "b", n_clients=5, n_months=13, seed=0, partitions=6)
    with pytest.raises(ValueError, match="partitions must be an integer"):
        generate_bank(tmp_path / "b", n_clients=5, n_months=13, seed=0, partitions=2.0)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


# --- a broken layout is refused, naming the file --------------------------------------------


def test_a_missing_part_is_named(parted_copy: Path) -> None:
    part_path(parted_copy, "holdings", 1).unlink()
    problems = partition_problems(parted_copy)
    assert [(p.file, p.message) for p in problems] == [
        ("holdings/", f"has 2 of the 3 parts {PARTITIONS_FILE} lists; missing: part-00001.parquet")
    ]


def test_a_part_beyond_n_is_named(parted_copy: Path) -> None:
    shutil.copy(part_path(parted_copy, "holdings", 2), part_path(parted_copy, "holdings", 3))
    problems = partition_problems(parted_copy)
    assert [p.file for p in problems] == ["holdings/part-00003.parquet"]
    assert "beyond the 3 parts" in problems[0].message


def test_clients_in_the_wrong_part_are_named(parted_copy: Path) -> None:
    first, last = (
        part_path(parted_copy, "account_months", 0),
        part_path(parted_copy, "account_months", 2),
    )
    first_bytes = first.read_bytes()
    first.write_bytes(last.read_bytes())
    last.write_bytes(first_bytes)
    problems = partition_problems(parted_copy, tables=["account_months"])
    files = {p.file for p in problems}
    assert files == {"account_months/part-00000.parquet", "account_months/part-00002.parquet"}
    outside = [p for p in problems if "outside its part's range" in p.message]
    assert {p.file for p in outside} == files
    assert all(p.column == "client_id" for p in outside)


def test_clients_outside_the_range_are_found_without_statistics(parted_copy: Path) -> None:
    """The truth files keep no statistics: their client ids are read."""
    path = part_path(parted_copy, "truth/credit_pd", 0)
    metadata = pq.read_metadata(path)
    assert not metadata.row_group(0).column(0).is_stats_set
    shutil.copy(part_path(parted_copy, "truth/credit_pd", 1), path)
    problems = partition_problems(parted_copy, tables=["truth/credit_pd"])
    assert any(
        p.file == "truth/credit_pd/part-00000.parquet" and "outside its part's range" in p.message
        for p in problems
    )


def test_rows_unlike_the_manifest_and_overlapping_ranges_are_named(parted_copy: Path) -> None:
    manifest_path = parted_copy / PARTITIONS_FILE
    document = json.loads(manifest_path.read_text())
    document["parts"][1]["rows"]["credit_events"] += 5
    document["parts"][1]["first_client"] = document["parts"][0]["last_client"]
    manifest_path.write_text(json.dumps(document))
    problems = partition_problems(parted_copy)
    messages = {(p.file, p.message.split(";")[0].split(":")[0]) for p in problems}
    assert any(f == "credit_events/part-00001.parquet" and "rows" in m for f, m in messages)
    assert any(p.file == PARTITIONS_FILE and "without overlapping" in p.message for p in problems)


def test_an_unreadable_manifest_is_named(parted_copy: Path) -> None:
    (parted_copy / PARTITIONS_FILE).write_text("{not json")
    problems = partition_problems(parted_copy)
    assert len(problems) == 1
    assert problems[0].file == PARTITIONS_FILE
    assert problems[0].message.startswith("cannot be read")
    (parted_copy / PARTITIONS_FILE).write_text(json.dumps({"format": 1, "n_parts": 2, "parts": []}))
    assert "non-empty list" in partition_problems(parted_copy)[0].message


# --- ingest reads a table given as parts --------------------------------------------------------


def test_a_partitioned_folder_reads_as_the_single_files(banks: tuple[Path, Path]) -> None:
    single, parted = banks
    whole, parts = read_input_folder(single), read_input_folder(parted)
    assert parts.problems == []
    assert set(parts.tables) == set(whole.tables)
    for name, table in whole.tables.items():
        given = parts.tables[name]
        pd.testing.assert_frame_equal(given.frame, table.frame)
        if name in CLIENT_TABLES:
            assert given.file == f"{name}/"
            assert [p for p, _ in given.parts] == [f"{name}/{part_name(k)}" for k in range(N_PARTS)]
    clients = parts.tables["clients"]
    assert clients.locate(1) == ("clients/part-00000.parquet", 1)
    assert clients.locate(67) == ("clients/part-00001.parquet", 1)
    assert clients.locate(200) == ("clients/part-00002.parquet", 67)
    assert parts.fingerprint != whole.fingerprint


def test_a_bad_cell_in_a_part_names_the_part_and_its_row(parted_copy: Path) -> None:
    path = part_path(parted_copy, "clients", 1)
    frame = pq.read_table(path).to_pandas()
    frame["employees"] = frame["employees"].astype("Int64").astype("string")  # as text
    frame.loc[4, "employees"] = "many"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    problems = read_input_folder(parted_copy).problems
    assert [(p.file, p.row, p.column) for p in problems] == [
        ("clients/part-00001.parquet", 5, "employees")
    ]


def test_parts_with_other_columns_are_refused(parted_copy: Path) -> None:
    path = part_path(parted_copy, "financials", 2)
    pq.write_table(pq.read_table(path).drop_columns(["equity"]), path)
    read = read_input_folder(parted_copy)
    assert "financials" not in read.tables
    problem = next(p for p in read.problems if p.file == "financials/part-00002.parquet")
    assert "every part of a table has the same columns" in problem.message


def test_a_table_given_twice_or_as_an_empty_folder_is_refused(parted_copy: Path) -> None:
    shutil.copy(part_path(parted_copy, "holdings", 0), parted_copy / "holdings.parquet")
    _, problems = find_table_files(parted_copy)
    assert [(p.file, p.message) for p in problems] == [
        ("holdings.parquet", "both holdings.parquet and holdings/ are present; keep only one")
    ]
    (parted_copy / "holdings.parquet").unlink()
    for path in table_parts(parted_copy, "credit_events"):
        path.unlink()
    read = read_input_folder(parted_copy)
    assert "credit_events" not in read.tables
    assert any(
        p.file == "credit_events/" and "without part files" in p.message for p in read.problems
    )
