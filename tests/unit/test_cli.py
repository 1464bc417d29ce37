"""The CLI: help on every command, arguments checked, defaults from the settings, errors
translated to exit codes, and no heavy import before a command runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from rmreco.cli import app
from rmreco.cli.main import (
    EXIT_CONFIGURATION,
    EXIT_INPUT_REFUSED,
    EXIT_USAGE,
    translate_errors,
)
from rmreco.config import CREDIT_SPEC_FILE, CROSS_SELL_SPEC_FILE, POLICY_FILE
from rmreco.domain.errors import ConfigurationError, DataContractError, Problem
from rmreco.domain.names import USER_ROLES

runner = CliRunner()

#: Every command, as MLproject, the Makefile and people call it.
COMMANDS = {
    "generate",
    "ingest",
    "db upgrade",
    "db current",
    "features refresh",
    "train credit-risk",
    "train cross-sell",
    "evaluate",
    "evaluate-cross-sell",
    "models list",
    "models promote",
    "models rollback",
    "score-batch",
    "users create",
    "users revoke",
    "serve",
    "demo",
}


def _command_paths() -> list[list[str]]:
    paths: list[list[str]] = []

    def walk(command: Any, prefix: list[str]) -> None:
        paths.append(prefix)
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*prefix, name])

    walk(get_command(app), [])
    return paths


def _leaf_commands() -> set[str]:
    """Commands that run something (not groups of commands)."""
    paths = _command_paths()
    return {" ".join(p) for p in paths if not any(q[: len(p)] == p and q != p for q in paths)}


def _squeezed(text: str) -> str:
    """Text without white space and rich's panel borders, which wrap long messages."""
    return re.sub(r"[\s│╭╮╰╯─]", "", text)


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "rmreco")
def test_every_command_has_help(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert len(result.output.strip().splitlines()) > 3


def test_expected_commands_exist() -> None:
    assert _leaf_commands() == COMMANDS


def test_bad_month_is_a_usage_error(tmp_path: object) -> None:
    result = runner.invoke(app, ["generate", "--out", str(tmp_path), "--start", "2022/01"])
    assert result.exit_code == EXIT_USAGE
    assert "YYYY-MM" in result.output


def test_unknown_role_is_a_usage_error_listing_the_roles() -> None:
    result = runner.invoke(app, ["users", "create", "--name", "x", "--role", "boss"])
    assert result.exit_code == EXIT_USAGE
    assert _squeezed(", ".join(USER_ROLES)) in _squeezed(result.output)


def test_rm_roles_need_an_rm() -> None:
    result = runner.invoke(app, ["users", "create", "--name", "x", "--role", "brm"])
    assert result.exit_code == EXIT_USAGE
    assert "--rm-id" in result.output


@pytest.mark.parametrize(
    ("command", "file"),
    [
        (["evaluate", "--data", "{data}"], CREDIT_SPEC_FILE),
        (["evaluate-cross-sell", "--data", "{data}"], CROSS_SELL_SPEC_FILE),
        (["serve", "--port", "1"], POLICY_FILE),
    ],
    ids=["evaluate", "evaluate-cross-sell", "serve"],
)
def test_default_specs_and_policy_come_from_the_models_folder(
    command: list[str],
    file: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("RMRECO_MODELS_DIR", str(models))
    monkeypatch.setenv("RMRECO_HOME", str(tmp_path / "home"))
    args = [a.replace("{data}", str(tmp_path)) for a in command]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_CONFIGURATION, result.output
    assert _squeezed(str(models / file)) in _squeezed(result.output + capsys.readouterr().err)


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from rmreco.cli import app\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
        "heavy = {'mlflow', 'sqlalchemy', 'pandas', 'lightgbm', 'fastapi', 'uvicorn'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"


def test_domain_errors_become_exit_codes_and_messages(capsys: pytest.CaptureFixture[str]) -> None:
    @translate_errors
    def refuses() -> None:
        raise DataContractError([Problem("clients.csv", "must be >= 0", row=4, column="turnover")])

    with pytest.raises(typer.Exit) as excinfo:
        refuses()
    assert excinfo.value.exit_code == EXIT_INPUT_REFUSED

    @translate_errors
    def misconfigured() -> None:
        raise ConfigurationError("spec file missing")

    with pytest.raises(typer.Exit) as excinfo:
        misconfigured()
    assert excinfo.value.exit_code == EXIT_CONFIGURATION
    assert "spec file missing" in capsys.readouterr().err
