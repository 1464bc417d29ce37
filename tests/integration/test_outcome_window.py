"""An observation-window extract (seven monthly statements per client, then the default events
of the twelve months after the last statement) is ingested with its outcomes after the last
account month, trains with ``split.kind: client`` into a model that ranks and whose report and
card say it was measured on the weaker stratified hold-out, and is refused by the default
out-of-time split with a message that proposes ``split.kind: client``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from rmreco.config import Settings
from rmreco.data.contract import OUTCOME_WINDOW_MAX_MONTHS, read_and_validate
from rmreco.domain.errors import DataContractError
from rmreco.features.inputs import read_feature_inputs
from rmreco.modeling.credit_estimator import credit_feature_config
from rmreco.modeling.spec import load_credit_risk_spec
from rmreco.synthetic import generate_bank
from rmreco.training.credit_risk import build_split, train_credit_risk
from rmreco.training.splits import TrainingDataError

ROOT = Path(__file__).resolve().parents[2]
STATEMENTS = 7
OUTCOME_MONTHS = 12


@pytest.fixture(scope="module")
def window_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bank cut to its first seven account months; its credit events run twelve months on."""
    out = tmp_path_factory.mktemp("window") / "bank"
    generate_bank(out, n_clients=2500, n_months=STATEMENTS + OUTCOME_MONTHS, seed=5)
    months = pd.read_parquet(out / "account_months.parquet", columns=["month"])["month"]
    last = pd.to_datetime(months).sort_values().unique()[STATEMENTS - 1]
    accounts = pd.read_parquet(out / "account_months.parquet")
    accounts[pd.to_datetime(accounts["month"]) <= last].to_parquet(out / "account_months.parquet")
    holdings = pd.read_parquet(out / "holdings.parquet")
    holdings[pd.to_datetime(holdings["start_month"]) <= last].to_parquet(out / "holdings.parquet")
    financials = pd.read_parquet(out / "financials.parquet")
    financials[financials["year"] <= last.year].to_parquet(out / "financials.parquet")
    events = pd.to_datetime(pd.read_parquet(out / "credit_events.parquet")["month"])
    assert (events > last).sum() > 20  # the outcomes lie after the last statement
    return out


def _event_month(folder: Path, month: str) -> None:
    path = folder / "credit_events.csv"
    events = pd.read_csv(path, dtype=str)
    events.loc[0, "month"] = month  # C002, whose history reaches the extract's last month
    events.to_csv(path, index=False)


def test_events_may_follow_the_last_account_month_up_to_the_outcome_window(
    tiny_bank: Path,
) -> None:
    _event_month(tiny_bank, "2024-09-01")  # three months after the last one, 2024-06
    read_and_validate(tiny_bank)
    _event_month(tiny_bank, "2026-06-01")  # 24 months after: still the outcome window
    read_and_validate(tiny_bank)
    _event_month(tiny_bank, "2026-07-01")
    with pytest.raises(DataContractError) as refused:
        read_and_validate(tiny_bank)
    [problem] = refused.value.problems
    assert (problem.file, problem.row, problem.column) == ("credit_events.csv", 1, "month")
    assert f"more than {OUTCOME_WINDOW_MAX_MONTHS} months after the last month" in problem.message


def _spec(tmp_path: Path, kind: str | None) -> Path:
    raw = yaml.safe_load((ROOT / "models" / "sme_credit_risk.yaml").read_text())
    raw["validation"]["bootstrap_resamples"] = 50  # fast; the gate does not read intervals
    if kind is not None:
        raw["split"]["kind"] = kind
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_events_after_the_last_statement_are_accepted_and_label_the_window(
    window_bank: Path,
) -> None:
    read_and_validate(window_bank)  # no problem: outcomes may follow the observation window
    inputs, _ = read_feature_inputs(window_bank)
    spec = load_credit_risk_spec(ROOT / "models" / "sme_credit_risk.yaml")
    panel = credit_feature_config(spec).credit_panel(inputs)
    # without the events after the last statement no snapshot would have a complete outcome
    assert panel["label_complete"].any()
    assert panel.loc[panel["label_complete"], "default_12m"].sum() > 50


def test_the_default_out_of_time_split_is_refused_proposing_the_client_split(
    window_bank: Path, tmp_path: Path
) -> None:
    inputs, _ = read_feature_inputs(window_bank)
    spec = load_credit_risk_spec(_spec(tmp_path, None))
    assert spec.split.kind == "out_of_time"
    with pytest.raises(TrainingDataError) as refused:
        build_split(inputs, spec)
    message = str(refused.value)
    assert "snapshot months with a complete 12-month outcome" in message
    assert "split.kind: client" in message


@pytest.mark.slow
def test_the_client_split_trains_a_ranking_model_and_says_it_is_the_weaker_test(
    window_bank: Path, tmp_path: Path, mlflow_uri: str
) -> None:
    uri = mlflow_uri
    result = train_credit_risk(
        window_bank,
        spec_path=_spec(tmp_path, "client"),
        settings=Settings(home=tmp_path / "home"),
        tracking_uri=uri,
    )
    assert result.metrics["oot_auc"] > 0.6, result.comparison
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(result.run_id)
    # the three sets span the same months: a hold-out by client, not by time
    params = run.data.params
    assert params["test_period"] == params["calibration_period"]
    assert params["fit_period"][-7:] == params["test_period"][-7:]
    card = Path(
        client.download_artifacts(result.run_id, "model_card.md", str(tmp_path))
    ).read_text()
    assert "stratified hold-out" in card
    assert "weaker test than an out-of-time window" in card
    assert "split: client" in card
    assert "out-of-time test period" not in card
    folder = Path(client.download_artifacts(result.run_id, "report", str(tmp_path / "report")))
    document = json.loads(next(folder.rglob("validation.json")).read_text())
    assert "stratified hold-out" in json.dumps(document)
