"""This module owns the empty MLflow stores the integration tests train into: each test that
needs a registry of its own gets a new SQLite store, a copy of one that MLflow created once per
test process.

Creating a SQLite store runs MLflow's schema migrations, about 5 s on the shared 2-core machine,
and two dozen tests each used to pay them for a store of their own; copying the file takes a few
milliseconds. The copy is the store MLflow would have created (the same tables and the default
experiment, whose artifact folder is the working directory's ``mlruns``, which rmreco never uses:
its jobs log into experiments created with their own artifact location). Tests of a newcomer's
first run (``test_first_hour_cli``, ``test_demo``, ``test_wheel``) still let MLflow create
theirs.

It is a helper, not a test module: pytest collects nothing here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

#: the file name of a store in its folder, as the tests have always named it
STORE = "mlflow.db"

_TEMPLATE: Path | None = None


def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store MLflow created in this process, made on first use (each xdist worker makes
    its own, under its own temporary folder)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        path = tmp_path_factory.mktemp("mlflow_template") / STORE
        uri = f"sqlite:///{path}"
        # opening the store creates it: the migrations and the default experiment
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()
        _TEMPLATE = path
    return _TEMPLATE


def new_store(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URI of a new, empty MLflow store at ``folder/mlflow.db`` (``folder`` is created).

    Raises:
        FileExistsError: ``folder`` already holds a store (a test's registry is its own).
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / STORE
    if target.exists():
        raise FileExistsError(f"{target} already holds an MLflow store")
    shutil.copyfile(_template(tmp_path_factory), target)
    return f"sqlite:///{target}"
