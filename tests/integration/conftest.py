"""Fixtures of the integration tests: a new MLflow store per test (see ``mlflow_store``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow_store import new_store


@pytest.fixture
def mlflow_uri(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URI of a new, empty MLflow SQLite store at ``tmp_path/mlflow.db``."""
    return new_store(tmp_path, tmp_path_factory)
