"""Settings: environment variables, embedded defaults, and the documented list of settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from rmreco.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_embedded_defaults_live_under_one_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RMRECO_DATABASE_URL", "RMRECO_TRACKING_URI", "RMRECO_ARTIFACT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RMRECO_HOME", str(tmp_path / "home"))
    settings = Settings()
    home = (tmp_path / "home").resolve()
    assert settings.resolved_database_url == f"sqlite:///{home / 'rmreco.db'}"
    assert settings.resolved_tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
    assert settings.resolved_artifact_root == (home / "mlartifacts").as_uri()
    assert not home.exists(), "settings must not create folders when read"
    settings.ensure_home()
    assert home.is_dir()


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RMRECO_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("RMRECO_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("RMRECO_CURRENCY", "chf")
    settings = Settings()
    assert settings.resolved_database_url == "postgresql+psycopg://u@h/db"
    assert settings.resolved_tracking_uri == "http://mlflow:5000"
    assert settings.currency == "CHF"


def test_bad_currency_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RMRECO_CURRENCY", "euro")
    with pytest.raises(ValidationError, match="currency"):
        Settings()


def test_env_example_lists_every_setting() -> None:
    text = (ROOT / "serving" / ".env.example").read_text()
    listed = set(re.findall(r"^RMRECO_([A-Z_]+)=", text, flags=re.MULTILINE))
    expected = {name.upper() for name in Settings.model_fields}
    assert listed == expected
