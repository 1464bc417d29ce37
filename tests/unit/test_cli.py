"""The CLI: help on every command, arguments checked, errors translated to exit codes."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from rmreco.cli.app import EXIT_CONFIGURATION, EXIT_INPUT_REFUSED, app, translate_errors
from rmreco.domain.errors import ConfigurationError, DataContractError, Problem

runner = CliRunner()


def _command_paths() -> list[list[str]]:
    paths: list[list[str]] = []

    def walk(command: Any, prefix: list[str]) -> None:
        paths.append(prefix)
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*prefix, name])

    walk(get_command(app), [])
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "rmreco")
def test_every_command_has_help(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert len(result.output.strip().splitlines()) > 3


def test_expected_commands_exist() -> None:
    names = {" ".join(p) for p in _command_paths()}
    assert {"generate", "ingest", "db upgrade", "db current"} <= names


def test_bad_month_is_a_usage_error(tmp_path: object) -> None:
    result = runner.invoke(app, ["generate", "--out", str(tmp_path), "--start", "2022/01"])
    assert result.exit_code == 2
    assert "YYYY-MM" in result.output


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
