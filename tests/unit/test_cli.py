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
from rmreco.domain.names import RM_ROLES, USER_ROLES

runner = CliRunner()

#: Every command, as MLproject, the Makefile and people call it.
COMMANDS = {
    "generate",
    "ingest",
    "data check",
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


def test_generate_makes_personal_clients_when_asked(tmp_path: Path) -> None:
    import pandas as pd

    out = tmp_path / "bank"
    args = ["generate", "--out", str(out), "--clients", "60", "--months", "13", "--seed", "3"]
    result = runner.invoke(app, [*args, "--personal-share", "0.5"])
    assert result.exit_code == 0, result.output
    clients = pd.read_parquet(out / "clients.parquet")
    rms = pd.read_parquet(out / "relationship_managers.parquet")
    assert (clients["segment"] == "personal").sum() > 10
    assert "prm" in set(rms["role"])
    too_many = runner.invoke(
        app, [*args, "--corporate-share", "0.6", "--personal-share", "0.5"], catch_exceptions=False
    )
    assert too_many.exit_code == EXIT_USAGE
    assert "personal_share" in _squeezed(too_many.output)


@pytest.mark.parametrize("role", RM_ROLES)
def test_rm_roles_need_an_rm(role: str) -> None:
    result = runner.invoke(app, ["users", "create", "--name", "x", "--role", role])
    assert result.exit_code == EXIT_USAGE
    assert "--rm-id" in result.output


def test_a_prm_user_is_created_for_a_personal_rm(db_url: str) -> None:
    """A personal RM's user: the migrated database takes the role, the user sees the RM's
    portfolio, and the key printed once is the one stored (as a hash)."""
    from rmreco.db import repository as repo
    from rmreco.db.engine import create_engine_for, session_factory, transaction
    from rmreco.db.schema import RelationshipManager
    from rmreco.serving.security import key_matches

    assert "prm" in USER_ROLES
    assert runner.invoke(app, ["db", "upgrade", "--db", db_url]).exit_code == 0
    engine = create_engine_for(db_url)
    try:
        with transaction(session_factory(engine)) as session:
            session.add(RelationshipManager(rm_id="RM9", name="Pia Berg", role="prm"))
        created = runner.invoke(
            app,
            ["users", "create", "--name", "pia", "--role", "prm", "--rm-id", "RM9",
             "--db", db_url],
        )  # fmt: skip
        assert created.exit_code == 0, created.output
        assert "user pia (prm) created" in created.output
        key = created.output.strip().splitlines()[-1]
        with transaction(session_factory(engine)) as session:
            user = repo.user_by_name(session, "pia")
        assert user is not None
        assert (user.role, user.rm_id) == ("prm", "RM9")
        assert key_matches(key, user.api_key_hash)
        unknown = runner.invoke(
            app,
            ["users", "create", "--name", "pat", "--role", "prm", "--rm-id", "RM404",
             "--db", db_url],
        )  # fmt: skip
        assert unknown.exit_code == EXIT_USAGE
        assert "RM404" in unknown.output
    finally:
        engine.dispose()


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
    if command[0] == "serve":  # serve refuses a database without the schema before anything
        assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
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
