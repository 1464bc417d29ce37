"""Settings: environment variables, embedded defaults, and the documented list of settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from rmreco.config import (
    CREDIT_SPEC_FILE,
    CROSS_SELL_SPEC_FILE,
    POLICY_FILE,
    Settings,
    shipped_models_dir,
)
from rmreco.modeling.spec import find_specs

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


def test_models_folder_defaults_to_the_shipped_specs_and_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RMRECO_MODELS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # never relative to the working directory
    settings = Settings()
    assert settings.resolved_models_dir == shipped_models_dir()
    assert settings.policy_path == settings.resolved_models_dir / POLICY_FILE
    for file in (POLICY_FILE, CREDIT_SPEC_FILE, CROSS_SELL_SPEC_FILE):
        assert settings.spec_path(file).is_file(), file
    assert {f.path.name for f in find_specs(settings.resolved_models_dir)} >= {
        CREDIT_SPEC_FILE,
        CROSS_SELL_SPEC_FILE,
    }


def test_models_folder_is_overridden_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RMRECO_MODELS_DIR", str(tmp_path / "bank-models"))
    settings = Settings()
    assert settings.resolved_models_dir == tmp_path / "bank-models"
    assert settings.policy_path == tmp_path / "bank-models" / POLICY_FILE
    assert settings.spec_path(CREDIT_SPEC_FILE) == tmp_path / "bank-models" / CREDIT_SPEC_FILE


def test_a_mistyped_spec_kind_is_refused_naming_the_file(tmp_path: Path) -> None:
    from rmreco.domain.errors import ConfigurationError
    from rmreco.modeling.spec import find_specs

    (tmp_path / "credit_policy.yaml").write_text("version: x\n")  # no kind: not a spec
    (tmp_path / "sme.yaml").write_text("kind: credit-risk\nname: x\n")
    with pytest.raises(ConfigurationError, match=r"sme\.yaml: kind 'credit-risk'"):
        find_specs(tmp_path)
    (tmp_path / "sme.yaml").unlink()
    assert find_specs(tmp_path) == []


def test_the_service_follows_one_model_per_family_and_segment(tmp_path: Path) -> None:
    """The shipped folder serves two cross-sell models side by side (business and personal)
    and two credit models; two specs of one family for one segment are refused, naming both."""
    from rmreco.domain.errors import ConfigurationError
    from rmreco.serving.runtime import served_kinds

    kinds = served_kinds(shipped_models_dir())
    assert sorted((k.family, k.name) for k in kinds) == [
        ("credit_risk", "rmreco-corporate-pd-12m"),
        ("credit_risk", "rmreco-sme-pd-12m"),
        ("cross_sell", "rmreco-personal-cross-sell-3m"),
        ("cross_sell", "rmreco-sme-corporate-cross-sell-3m"),
    ]
    for name in (CROSS_SELL_SPEC_FILE, "personal_cross_sell.yaml"):
        (tmp_path / name).write_text((shipped_models_dir() / name).read_text())
    text = (tmp_path / "personal_cross_sell.yaml").read_text()
    (tmp_path / "personal_cross_sell.yaml").write_text(
        text.replace("[personal]", "[personal, sme]").replace(
            "rmreco-personal-cross-sell-3m", "rmreco-personal-sme-cross-sell-3m"
        )
    )
    with pytest.raises(ConfigurationError, match=r"cross_sell.*personal_cross_sell\.yaml.*'sme'"):
        served_kinds(tmp_path)


def test_explained_offers_read_a_count_or_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RMRECO_EXPLAINED_OFFERS", raising=False)
    assert Settings().resolved_explained_offers == 5
    monkeypatch.setenv("RMRECO_EXPLAINED_OFFERS", "all")
    assert Settings().resolved_explained_offers is None
    monkeypatch.setenv("RMRECO_EXPLAINED_OFFERS", "0")
    assert Settings().resolved_explained_offers == 0
    for wrong in ("-1", "some"):
        monkeypatch.setenv("RMRECO_EXPLAINED_OFFERS", wrong)
        with pytest.raises(ValidationError, match="explained_offers"):
            Settings()
