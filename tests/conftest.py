"""Shared fixtures: database URLs (SQLite file, fresh PostgreSQL database) and the tiny bank;
and the test processes' one BLAS thread (see below).

``postgres_url`` creates a uniquely named database on the server at
``RMRECO_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``) and
drops it afterwards. When the server cannot be reached the test is skipped, or fails when
``CI=true`` (CI must not pass by skipping).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

TINY_BANK = Path(__file__).parent / "fixtures" / "tiny_bank"
DEFAULT_TEST_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# One BLAS thread in each test process and in the processes the tests start (they inherit the
# environment), unless another number is asked for: `make test` runs two test processes on two
# cores, and OpenBLAS's threads, which spin while they wait for each other, then compete for both
# cores with the other process. The logistic fits of training (the scorecard, the cross-sell
# baselines) ran many times slower: five fits of a 20,000 x 40 logistic regression took 1.3-2.7 s
# with two threads, 0.06-0.3 s with one, on the suite's shared 2-core machine. NumPy reads the
# setting once, when it is first imported: here, before any plugin's hook or test module can.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file in a fresh temporary folder (the file does not exist yet)."""
    return f"sqlite:///{tmp_path / 'db' / 'rmreco.db'}"


def _admin_conninfo() -> tuple[str, str]:
    url = make_url(os.environ.get("RMRECO_TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL))
    plain = url.set(drivername="postgresql")
    return plain.render_as_string(hide_password=False), url.render_as_string(hide_password=False)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a new, empty PostgreSQL database, dropped after the test."""
    admin, server_url = _admin_conninfo()
    try:
        admin_conn = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at {make_url(server_url).render_as_string()} unreachable: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    name = f"rmreco_test_{uuid.uuid4().hex[:12]}"
    with admin_conn:
        admin_conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            admin_conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database: SQLite, then PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def tiny_bank(tmp_path: Path) -> Path:
    """A private copy of the hand-made valid input set ``tests/fixtures/tiny_bank``."""
    target = tmp_path / "tiny_bank"
    shutil.copytree(TINY_BANK, target)
    return target


#: The test that waits for the type check started at collection (tests/test_code_quality.py).
MYPY_TEST = "test_mypy_finds_nothing"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start mypy as soon as the tests are known, when its test is among them: it runs on the
    machine's other core while the suite runs (half a minute on a clean clone), and its test
    only waits for the result."""
    if not any(item.name == MYPY_TEST for item in session.items):
        return
    # open until the test reads it, after this hook has returned
    output = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "mypy")],
        cwd=Path(__file__).resolve().parents[1],
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    session.config.stash[MYPY_RUN] = (process, output)


MYPY_RUN = pytest.StashKey[tuple["subprocess.Popen[str]", "tempfile._TemporaryFileWrapper[str]"]]()


@pytest.fixture
def started_mypy(
    request: pytest.FixtureRequest,
) -> tuple[subprocess.Popen[str], tempfile._TemporaryFileWrapper[str]] | None:
    """The type check started at collection, or None when it was not."""
    return request.config.stash.get(MYPY_RUN, None)
