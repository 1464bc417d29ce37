"""A small book (about 1,300 clients, two years of history) trained with the shipped SME spec:
a model that ranks (out-of-time AUC above 0.6) or a refusal that names the cause, never a
silent 0.500 challenger; and the same book with the old fixed ``min_data_in_leaf: 1000``, which
gives LightGBM no split, refused by the gate with that reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from rmreco.config import Settings
from rmreco.modeling.spec import load_credit_risk_spec
from rmreco.synthetic import generate_bank
from rmreco.training.credit_risk import train_credit_risk
from rmreco.training.registry import CHALLENGER

ROOT = Path(__file__).resolve().parents[2]
NAME = load_credit_risk_spec(ROOT / "models" / "sme_credit_risk.yaml").name
CAUSES = ("no split", "same score", "below the floor")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("small") / "bank"
    generate_bank(out, n_clients=1300, n_months=24, seed=11)
    return out


def _spec(tmp_path: Path, change: dict[str, object] | None = None) -> Path:
    raw = yaml.safe_load((ROOT / "models" / "sme_credit_risk.yaml").read_text())
    raw["validation"]["bootstrap_resamples"] = 50  # fast; the gate does not read intervals
    if change:
        raw["model"]["lightgbm"].update(change)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_shipped_sme_spec_on_a_small_book_ranks_or_says_why(
    small_bank: Path, tmp_path: Path, mlflow_uri: str
) -> None:
    uri = mlflow_uri
    result = train_credit_risk(
        small_bank,
        spec_path=_spec(tmp_path),
        settings=Settings(home=tmp_path / "home"),
        tracking_uri=uri,
    )
    if result.gate.passed:
        assert result.metrics["oot_auc"] > 0.6, result.gate.reason
    else:
        assert any(cause in result.gate.reason for cause in CAUSES), result.gate.reason
    # never a model without a split served, and the choice of model is stated
    assert "no split" not in result.gate.reason or result.registered_kind == "lightgbm"
    assert f"registered: {result.registered_kind} (model.registered: best)" in result.comparison
    run = MlflowClient(tracking_uri=uri).get_run(result.run_id)
    assert run.data.params["registered_rule"] == "best"
    assert int(run.data.params["lgb_min_data_in_leaf"]) < int(run.data.params["rows_fit"]) / 2


def test_the_old_fixed_leaf_size_gives_no_split_and_is_refused_naming_it(
    small_bank: Path, tmp_path: Path, mlflow_uri: str
) -> None:
    uri = mlflow_uri
    spec = _spec(tmp_path, {"min_data_in_leaf_share": None})
    raw = yaml.safe_load(spec.read_text())
    raw["model"]["registered"] = "lightgbm"
    raw["model"]["lightgbm"]["params"]["min_data_in_leaf"] = 1000
    spec.write_text(yaml.safe_dump(raw))
    result = train_credit_risk(
        small_bank, spec_path=spec, settings=Settings(home=tmp_path / "home"), tracking_uri=uri
    )
    assert not result.gate.passed
    assert result.gate.reason.startswith("refused: the LightGBM model has no split")
    assert "min_data_in_leaf 1,000" in result.gate.reason
    assert "warning: LightGBM made no split" in result.comparison
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert str(client.get_model_version_by_alias(NAME, CHALLENGER).version) == result.version
    card = Path(
        client.download_artifacts(result.run_id, "model_card.md", str(tmp_path))
    ).read_text()
    assert "## Warnings" in card
    assert "no split" in card
