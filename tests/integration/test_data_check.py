"""``rmreco data check`` end to end: exit codes scripts can trust, the same result as JSON, and
nothing written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rmreco.cli.check import EXIT_CANNOT_TRAIN, app
from rmreco.cli.main import EXIT_INPUT_REFUSED, EXIT_USAGE
from rmreco.config import shipped_models_dir
from rmreco.modeling.spec import find_specs, load_cross_sell_spec
from rmreco.synthetic import generate_bank

runner = CliRunner()
SHIPPED = sorted(found.spec.name for found in find_specs(shipped_models_dir()))
PERSONAL = load_cross_sell_spec(shipped_models_dir() / "personal_cross_sell.yaml").name


@pytest.fixture(scope="module")
def full_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bank every shipped spec can train on: three segments, three years."""
    out = tmp_path_factory.mktemp("data_check") / "bank"
    generate_bank(
        out, n_clients=1000, n_months=36, seed=3, corporate_share=0.35, personal_share=0.3
    )
    return out


def _squeezed(text: str) -> str:
    """Text without white space and rich's table borders, which wrap long cells."""
    return re.sub(r"[\s│┃┌┐└┘├┤┬┴┼─━┏┓┗┛┡┩╇╈]", "", text)


def _files(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_every_shipped_spec_can_train_exit_0(full_bank: Path) -> None:
    before = _files(full_bank)
    result = runner.invoke(
        app, ["data", "check", str(full_bank), "--models-dir", str(shipped_models_dir())]
    )
    assert result.exit_code == 0, result.output
    assert _files(full_bank) == before
    assert result.output.count("can train") == len(SHIPPED)
    assert "cannot train" not in result.output
    shown = _squeezed(result.output)
    for name in SHIPPED:
        assert name in shown

    as_json = runner.invoke(app, ["data", "check", str(full_bank), "--json"])
    assert as_json.exit_code == 0, as_json.output
    check = json.loads(as_json.output)
    assert check["can_all_train"] is True
    assert sorted(v["name"] for v in check["verdicts"]) == SHIPPED
    assert all(v["periods"]["test_period"] for v in check["verdicts"])
    assert set(check["profile"]["clients_by_segment"]) == {"sme", "corporate", "personal"}
    assert check["profile"]["account_months"]["count"] == 36
    assert check["profile"]["outcome_months"]["12"]["count"] == 24


def test_a_spec_that_cannot_train_exits_with_its_own_code(tiny_bank: Path) -> None:
    result = runner.invoke(app, ["data", "check", str(tiny_bank)])
    assert result.exit_code == EXIT_CANNOT_TRAIN, result.output
    assert "cannot train" in result.output
    as_json = runner.invoke(app, ["data", "check", str(tiny_bank), "--json"])
    assert as_json.exit_code == EXIT_CANNOT_TRAIN
    check = json.loads(as_json.output)
    assert check["can_all_train"] is False
    personal = next(v for v in check["verdicts"] if v["name"] == PERSONAL)
    assert personal["can_train"] is False
    assert "segments" in personal["reasons"][0]
    assert check["profile"]["currency"] == "EUR"


def test_data_that_breaks_the_contract_is_refused(tiny_bank: Path) -> None:
    (tiny_bank / "clients.csv").unlink()
    result = runner.invoke(app, ["data", "check", str(tiny_bank)])
    assert result.exit_code == EXIT_INPUT_REFUSED
    assert "clients" in result.output


def test_a_missing_models_folder_is_a_usage_error(tiny_bank: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["data", "check", str(tiny_bank), "--models-dir", str(tmp_path / "nowhere")]
    )
    assert result.exit_code == EXIT_USAGE
