"""The --dask option's address: a local cluster of N workers, or a scheduler's address."""

from __future__ import annotations

import os

import pytest

from rmreco.domain.errors import ConfigurationError
from rmreco.training.cluster import ClusterAddress, parse_address
from rmreco.training.snapshots import unreachable_database


def test_local_with_and_without_a_number_of_workers() -> None:
    assert parse_address("local:3") == ClusterAddress(None, 3)
    assert parse_address(" local ") == ClusterAddress(None, max(1, os.cpu_count() or 1))
    assert parse_address("local:2").describe() == "a local Dask cluster of 2 workers"


def test_anything_else_is_a_scheduler_address() -> None:
    address = parse_address("tcp://10.0.0.5:8786")
    assert address == ClusterAddress("tcp://10.0.0.5:8786")
    assert not address.local
    assert address.describe() == "the Dask scheduler at tcp://10.0.0.5:8786"
    assert parse_address("localhost:8786") == ClusterAddress("localhost:8786")


@pytest.mark.parametrize("text", ["", "  ", "local:0", "local:two", "local:-1"])
def test_a_malformed_address_is_refused_saying_what_is_expected(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"--dask"):
        parse_address(text)


def test_a_remote_cluster_is_refused_a_sqlite_file_and_a_local_one_is_not() -> None:
    remote = ["tcp://10.0.0.5:40123", "tcp://127.0.0.1:40124"]
    local = ["tcp://127.0.0.1:40123", "tcp://127.0.0.1:40124"]
    problem = unreachable_database("sqlite:////data/rmreco.db", remote)
    assert problem is not None
    assert "SQLite file" in problem
    assert "PostgreSQL" in problem
    assert unreachable_database("sqlite:////data/rmreco.db", local) is None
    assert unreachable_database("postgresql://bank@db:5432/rmreco", remote) is None
