"""The code checks run by the test suite: ruff, mypy and the import-linter layer contracts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: timing-bound (or the type check): run alone, not beside other tests (see Makefile)
pytestmark = pytest.mark.serial
BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    result = _run(str(BIN / "ruff"), "check", "rmreco", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_formatted() -> None:
    result = _run(str(BIN / "ruff"), "format", "--check", "rmreco", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing(started_mypy: Any) -> None:
    started = started_mypy  # by tests/conftest.py, at collection
    if started is None:
        result = _run(str(BIN / "mypy"))
        assert result.returncode == 0, result.stdout + result.stderr
        return
    process, output = started
    returncode = process.wait(timeout=600)
    output.seek(0)
    assert returncode == 0, output.read()


def test_imports_point_one_way() -> None:
    result = _run(str(BIN / "lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "path",
    [
        "rmreco",
        "models",
        "training",
        "serving",
        "tests",
        "pyproject.toml",
        "MLproject",
        "uv.lock",
        ".ci/run",
    ],
)
def test_layout_of_the_design_card(path: str) -> None:
    assert (ROOT / path).exists(), f"{path} is part of the required layout"


def test_test_modules_have_unique_names() -> None:
    """pytest imports test modules by basename (rootdir mode): two files of one name in
    different folders stop the whole collection."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
