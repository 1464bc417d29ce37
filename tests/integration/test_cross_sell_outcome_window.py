"""A cross-sell observation-window extract (seven account months per client, then the holdings
that started in the three months after the last one) labels its last snapshots from those
holdings, is refused by the default out-of-time split with a message that proposes
``split.kind: client``, and trains with ``split.kind: client`` into a model that passes the
ranking gates (lift over popularity, products ranked better than chance, groups of two or more
candidates) and whose report, model card and run tags say it was measured on the weaker
stratified hold-out."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from rmreco.config import Settings
from rmreco.data.contract import read_and_validate
from rmreco.features import FeatureInputs
from rmreco.features.cross_sell import LABEL
from rmreco.features.inputs import read_feature_inputs
from rmreco.modeling.propensity_estimator import cross_sell_feature_config
from rmreco.modeling.spec import load_cross_sell_spec
from rmreco.synthetic import generate_bank
from rmreco.training.cross_sell import train_cross_sell
from rmreco.training.cross_sell_split import build_split
from rmreco.training.splits import TrainingDataError

ROOT = Path(__file__).resolve().parents[2]
STATEMENTS = 7
OUTCOME_MONTHS = 3


def _last(account_months: pd.DataFrame) -> pd.Timestamp:
    """The seventh month of the generated history: the extract's last account month."""
    return pd.Timestamp(sorted(pd.to_datetime(account_months["month"]).unique())[STATEMENTS - 1])


def _cut(frames: dict[str, pd.DataFrame], last: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The tables of an observation-window extract: account months up to ``last`` and the
    financial years before its year; holdings that started up to three months after it (the
    extract month), an end after the extract month unknown (still held); credit events up to
    the extract month."""
    extract = last + pd.DateOffset(months=OUTCOME_MONTHS)
    out = dict(frames)
    accounts = frames["account_months"]
    out["account_months"] = accounts[pd.to_datetime(accounts["month"]) <= last]
    holdings = frames["holdings"]
    kept = holdings[pd.to_datetime(holdings["start_month"]) <= extract].copy()
    ends = pd.to_datetime(kept["end_month"])
    kept["end_month"] = kept["end_month"].where(~(ends > extract), None)
    out["holdings"] = kept
    events = frames["credit_events"]
    out["credit_events"] = events[pd.to_datetime(events["month"]) <= extract]
    financials = frames["financials"]
    out["financials"] = financials[financials["year"] < last.year]  # statements out by then
    return {name: frame.reset_index(drop=True) for name, frame in out.items()}


@pytest.fixture(scope="module")
def banks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A generated bank (``full``) and the same bank cut to an observation window
    (``window``), with its ground truth."""
    root = tmp_path_factory.mktemp("xsell_window")
    full = root / "full"
    generate_bank(full, n_clients=4000, n_months=13, seed=11)
    window = root / "window"
    shutil.copytree(full, window)
    names = ("account_months", "holdings", "credit_events", "financials")
    frames = {name: pd.read_parquet(full / f"{name}.parquet") for name in names}
    last = _last(frames["account_months"])
    for name, frame in _cut(frames, last).items():
        frame.to_parquet(window / f"{name}.parquet", index=False)
    starts = pd.to_datetime(pd.read_parquet(window / "holdings.parquet")["start_month"])
    assert (starts > last).sum() > 100  # the adoptions lie after the last account month
    return full, window


def _window_inputs(full: Path) -> FeatureInputs:
    """The window bank's feature inputs: the full bank through the contract, then cut as the
    window folder is (the contract's frames, without its refusal of later holdings)."""
    inputs, _ = read_feature_inputs(full)
    assert inputs.holdings is not None
    assert inputs.credit_events is not None
    assert inputs.financials is not None
    frames = {
        "account_months": inputs.account_months,
        "holdings": inputs.holdings,
        "credit_events": inputs.credit_events,
        "financials": inputs.financials,
    }
    cut = _cut(frames, _last(inputs.account_months))
    return replace(
        inputs,
        account_months=cut["account_months"],
        holdings=cut["holdings"],
        credit_events=cut["credit_events"],
        financials=cut["financials"],
    )


def test_holdings_after_the_last_account_month_are_accepted(banks: tuple[Path, Path]) -> None:
    validated = read_and_validate(banks[1])
    holdings = validated.frame("holdings")
    accounts = validated.frame("account_months")
    assert (holdings["start_month"] > accounts["month"].max()).sum() > 50


def _spec(tmp_path: Path, kind: str | None) -> Path:
    raw = yaml.safe_load((ROOT / "models" / "cross_sell.yaml").read_text())
    raw["model"]["lightgbm"]["num_boost_round"] = 60
    raw["model"]["lightgbm"]["params"].update(learning_rate=0.1, min_data_in_leaf=40)
    raw["model"]["per_product_params"] = {"num_leaves": 7, "min_data_in_leaf": 20}
    raw["model"]["logistic"]["max_iter"] = 200
    raw["validation"]["bootstrap_resamples"] = 50
    raw["split"]["min_history_months"] = 1
    if kind is not None:
        raw["split"]["kind"] = kind
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_adoptions_after_the_last_account_month_label_the_last_snapshots(
    banks: tuple[Path, Path],
) -> None:
    inputs = _window_inputs(banks[0])
    spec = load_cross_sell_spec(ROOT / "models" / "cross_sell.yaml")
    panel = cross_sell_feature_config(spec).cross_sell_panel(inputs)
    last = _last(inputs.account_months)
    at_last = panel[panel["month"] == last]
    # without the holdings after the last account month the last snapshots had no outcome
    assert at_last["label_complete"].all()
    assert at_last[LABEL].sum() > 50
    assert panel["label_complete"].all()


def test_the_default_out_of_time_split_is_refused_proposing_the_client_split(
    banks: tuple[Path, Path], tmp_path: Path
) -> None:
    spec = load_cross_sell_spec(_spec(tmp_path, None))
    assert spec.split.kind == "out_of_time"
    with pytest.raises(TrainingDataError) as refused:
        build_split(_window_inputs(banks[0]), spec)
    message = str(refused.value)
    assert f"the data has {STATEMENTS} snapshot months with a complete 3-month outcome" in message
    assert "split.kind: client" in message


@pytest.mark.slow
def test_the_client_split_trains_passes_the_gates_and_says_it_is_the_weaker_test(
    banks: tuple[Path, Path], tmp_path: Path, mlflow_uri: str
) -> None:
    _, window = banks
    uri = mlflow_uri
    result = train_cross_sell(
        window,
        spec_path=_spec(tmp_path, "client"),
        settings=Settings(home=tmp_path / "home"),
        tracking_uri=uri,
    )
    metrics = result.metrics
    # the gates ran on the hold-out: it ranks better than popularity, groups have two or more
    # candidates, and products are ranked by the model where it beats chance
    assert metrics["oot_ranking_groups"] > 100
    assert metrics["oot_map_at_5"] > metrics["popularity_oot_map_at_5"], result.comparison
    assert metrics["products_ranked_by_popularity"] < 15
    assert result.gate.passed, result.gate.reason
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(result.run_id)
    params, tags = run.data.params, run.data.tags
    assert params["split_kind"] == "client"
    assert params["holdout_share"] == "0.4"
    # the three sets span the same months: a hold-out by client, not by time
    assert params["test_period"] == params["calibration_period"] == params["fit_period"]
    assert "split: client" in tags["comparison"]
    assert "weaker test than out-of-time" in tags["comparison"]
    card = Path(
        client.download_artifacts(result.run_id, "model_card.md", str(tmp_path))
    ).read_text()
    assert "## Stratified hold-out test metrics" in card
    assert "a weaker test than an out-of-time window" in card
    assert "split: client" in card
    assert "out-of-time test" not in card
    folder = Path(client.download_artifacts(result.run_id, "report", str(tmp_path / "report")))
    document = json.loads(next(folder.rglob("validation.json")).read_text())
    assert document["test_window"].startswith("stratified hold-out")
