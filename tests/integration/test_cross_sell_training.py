"""The cross-sell job end to end on a small synthetic bank: metrics logged by name, the gate
moving the alias, loading by alias through MLflow's pyfunc, the CLI, batch scoring with and
without a cross-sell champion, the evaluation on another period, and the per-product report: a
product whose adoptions were shuffled among clients is ranked by its popularity rate, in the
report, the model card, the registered model and batch scoring alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

import rmreco.training.cross_sell as cross_sell_job
from rmreco.cli import app
from rmreco.config import Settings
from rmreco.modeling.propensity import PropensityModel
from rmreco.modeling.pyfunc import download_model
from rmreco.modeling.spec import load_credit_risk_spec, load_cross_sell_spec
from rmreco.synthetic import generate_bank
from rmreco.training.credit_risk import train_credit_risk
from rmreco.training.cross_sell import CrossSellEvaluation, train_cross_sell
from rmreco.training.registry import CHALLENGER, CHAMPION, list_versions

ROOT = Path(__file__).resolve().parents[2]
NAME = load_cross_sell_spec(ROOT / "models" / "cross_sell.yaml").name
CREDIT = load_credit_risk_spec(ROOT / "models" / "sme_credit_risk.yaml").name
REQUIRED_METRICS = (
    "oot_map_at_5",
    "oot_ndcg_at_5",
    "oot_precision_at_1",
    "popularity_oot_map_at_5",
    "logistic_oot_map_at_5",
    "oracle_oot_map_at_5",
    "stacked_calibration_map_at_5",
    "per_product_calibration_map_at_5",
)
AS_OF = "2023-06"
#: a product whose holders are shuffled among the clients of their segment: whom it is adopted
#: by says nothing about the client any more, so its model is at chance on the test window
AT_CHANCE = "fx_hedging"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bank") / "bank"
    generate_bank(out, n_clients=1500, n_months=30, seed=5)
    clients = pd.read_parquet(out / "clients.parquet")
    holdings = pd.read_parquet(out / "holdings.parquet")
    rng = np.random.default_rng(0)
    moved: dict[str, str] = {}
    for _, ids in clients.groupby("segment")["client_id"]:
        # a permutation of whole clients: each client's spells move together, none overlap
        moved.update(zip(ids, rng.permutation(ids.to_numpy()), strict=True))
    rows = holdings["product_code"] == AT_CHANCE
    assert rows.sum() > 100
    holdings.loc[rows, "client_id"] = holdings.loc[rows, "client_id"].map(moved)
    holdings.to_parquet(out / "holdings.parquet", index=False)
    return out


def _spec(tmp_path: Path, *, weak: bool = False) -> Path:
    raw = yaml.safe_load((ROOT / "models" / "cross_sell.yaml").read_text())
    raw["model"]["lightgbm"]["num_boost_round"] = 40
    raw["model"]["lightgbm"]["params"].update(learning_rate=0.15, min_data_in_leaf=50)
    raw["model"]["per_product_params"] = {"num_leaves": 7, "min_data_in_leaf": 30}
    raw["model"]["logistic"]["max_iter"] = 200
    raw["gates"]["min_value"] = 0.05
    if weak:  # a deliberately weakened model: two features that say little about needs
        raw["features"] = ["history_months", "region"]
        raw["holdings_features"] = False
        raw["model"]["choose"] = "stacked"
    path = tmp_path / ("weak.yaml" if weak else "spec.yaml")
    path.write_text(yaml.safe_dump(raw))
    return path


def _credit_spec(tmp_path: Path) -> Path:
    raw = yaml.safe_load((ROOT / "models" / "sme_credit_risk.yaml").read_text())
    raw["model"]["lightgbm"]["num_boost_round"] = 40
    raw["model"]["lightgbm"]["params"]["learning_rate"] = 0.15
    path = tmp_path / "credit.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_train_gate_load_by_alias_score_batch_and_evaluate(
    bank: Path, tmp_path: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RMRECO_HOME", str(tmp_path / "home"))
    uri = mlflow_uri
    settings = Settings(home=tmp_path / "home")
    runner = CliRunner()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    out = tmp_path / "scores"
    score_args = ["score-batch", "--data", str(bank), "--as-of", AS_OF, "--out", str(out)]

    credit = train_credit_risk(
        bank, spec_path=_credit_spec(tmp_path), settings=settings, tracking_uri=uri
    )
    assert credit.gate.passed, credit.gate.reason
    # no cross-sell champion yet: credit scoring runs, cross-sell is skipped and says so
    skipped = runner.invoke(app, [*score_args, "--tracking-uri", uri])
    assert skipped.exit_code == 0, skipped.output
    assert "cross-sell skipped" in skipped.output
    assert (out / "credit.parquet").exists()
    assert not (out / "cross_sell.parquet").exists()

    trained = runner.invoke(
        app,
        ["train", "cross-sell", "--data", str(bank), "--spec", str(_spec(tmp_path)),
         "--tracking-uri", uri],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "oot_map_at_5" in trained.output
    assert "promoted" in trained.output
    version = str(client.get_model_version_by_alias(NAME, CHAMPION).version)
    run = client.get_run(client.get_model_version(NAME, version).run_id)
    metrics = run.data.metrics
    for name in REQUIRED_METRICS:
        assert name in metrics, f"metric {name} not logged"
    assert any(k.startswith("oot_auc_") for k in metrics)
    assert any(k.startswith("oot_lift_top10_") for k in metrics)
    assert 0 < metrics["oot_map_at_5"] <= 1
    assert "calibration-window MAP@5" in run.data.tags["comparison"]
    assert run.data.tags["data_fingerprint"]
    charts = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "charts")}
    assert {
        "gains_by_product.png",
        "lift_by_product.png",
        "calibration_by_product.png",
        "product_validation.png",
        "psi.png",
    } <= charts
    assert "model_card.md" in {a.path for a in client.list_artifacts(run.info.run_id)}
    served = _check_fallback(run.info.run_id, uri, tmp_path / "report", version)

    # load by alias through MLflow's own pyfunc and predict
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@{CHAMPION}")
    example = model.input_example
    assert example is not None
    predicted = model.predict(example)
    assert list(predicted.columns) == ["propensity", "expected_value", "reasons"]
    assert predicted["propensity"].between(0, 1).all()
    assert all(isinstance(json.loads(r), list) for r in predicted["reasons"])

    scored = runner.invoke(app, [*score_args, "--tracking-uri", uri])
    assert scored.exit_code == 0, scored.output
    assert NAME in scored.output
    offers = pd.read_parquet(out / "cross_sell.parquet")
    assert list(offers.columns[:6]) == [
        "client_id",
        "as_of",
        "product_code",
        "propensity",
        "expected_value",
        "rank",
    ]
    assert len(offers) > 1000
    assert offers["propensity"].between(0, 1).all()
    assert (offers.groupby("client_id")["rank"].min() == 1).all()
    # the first five offers of each list carry their reasons (RMRECO_EXPLAINED_OFFERS), the
    # others none: null, not the "[]" of an offer explained with nothing raising it
    first = offers["rank"] <= Settings().resolved_explained_offers
    assert (offers["rank"] > 5).any()
    assert offers.loc[first, "reasons"].notna().all()
    assert offers.loc[~first, "reasons"].isna().all()
    assert offers.loc[~first, "reason_codes"].isna().all()
    assert offers.loc[first, "reasons"].map(json.loads).map(len).gt(0).any()
    every = runner.invoke(
        app,
        [*score_args[:-1], str(tmp_path / "every"), "--tracking-uri", uri,
         "--explain-offers", "all"],
    )  # fmt: skip
    assert every.exit_code == 0, every.output
    explained = pd.read_parquet(tmp_path / "every" / "cross_sell.parquet")
    assert explained["reasons"].notna().all()
    # the same offers, ranks and, where both explain, reasons
    pd.testing.assert_frame_equal(
        explained.drop(columns=["reasons", "reason_codes"]),
        offers.drop(columns=["reasons", "reason_codes"]),
    )
    assert explained.loc[first, "reasons"].tolist() == offers.loc[first, "reasons"].tolist()
    refused = runner.invoke(app, [*score_args, "--tracking-uri", uri, "--explain-offers", "some"])
    assert refused.exit_code == 2
    assert "--explain-offers" in refused.output
    assert "'some'" in refused.output
    top = offers.sort_values(["client_id", "rank"]).groupby("client_id")["expected_value"]
    assert top.apply(lambda s: s.is_monotonic_decreasing).all()
    # batch scoring ranks the product at chance by its popularity rate, as the model says
    flat = offers.loc[offers["product_code"] == AT_CHANCE, "propensity"]
    assert len(flat) > 0
    assert flat.to_numpy() == pytest.approx(served.popularity[AT_CHANCE])
    # no product the client holds at the as-of month
    holdings = pd.read_parquet(bank / "holdings.parquet")
    month = pd.Timestamp(f"{AS_OF}-01")
    start, end = pd.to_datetime(holdings["start_month"]), pd.to_datetime(holdings["end_month"])
    held = holdings[(start <= month) & (end.isna() | (end >= month))]
    clash = offers.merge(held, on=["client_id", "product_code"], how="inner")
    assert clash.empty
    # financing only where the credit grade allows it (spec max grade 8; ungraded: include)
    financing = set(pd.read_parquet(bank / "products.parquet").query("kind == 'financing'")[
        "product_code"
    ])  # fmt: skip
    graded = offers[offers["product_code"].isin(financing) & offers["grade"].notna()]
    assert not graded["grade"].isin(["9", "10", "D"]).any()
    # the PD of a graded client's offers under its credit model's horizon, none without a grade
    assert not {"pd", "pd_horizon_months"} & set(offers.columns)
    assert offers.loc[offers["grade"].notna(), "pd_12m"].between(0, 1).all()
    assert offers.loc[offers["grade"].isna(), "pd_12m"].isna().all()

    # the evaluation the command makes, read by the test as well as printed
    evaluations: list[CrossSellEvaluation] = []
    evaluate = cross_sell_job.evaluate_cross_sell

    def recorded(*args: Any, **kwargs: Any) -> CrossSellEvaluation:
        evaluations.append(evaluate(*args, **kwargs))
        return evaluations[-1]

    monkeypatch.setattr(cross_sell_job, "evaluate_cross_sell", recorded)
    evaluated = runner.invoke(
        app,
        ["evaluate-cross-sell", "--data", str(bank), "--spec", str(_spec(tmp_path)),
         "--tracking-uri", uri],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    assert "oot_map_at_5" in evaluated.output
    assert "against the version's own out-of-time test" in evaluated.output
    assert "value order (the list's rank)" in evaluated.output
    (evaluation,) = evaluations
    assert evaluation.model_version == version
    # graded by the credit champion; the shipped corporate credit spec has none: left out
    assert evaluation.credit_versions == {CREDIT: credit.version}
    assert 0 < evaluation.metrics["oot_map_at_5"] <= 1
    assert "value_oot_map_at_5" in evaluation.metrics
    # measured against the version's own training run, which logged both orders
    run_metrics = client.get_run(client.get_model_version(NAME, version).run_id).data.metrics
    assert evaluation.reference["oot_map_at_5"] == pytest.approx(run_metrics["oot_map_at_5"])
    assert evaluation.reference["value_oot_map_at_5"] == pytest.approx(
        run_metrics["value_oot_map_at_5"]
    )

    weak = train_cross_sell(
        bank, spec_path=_spec(tmp_path, weak=True), settings=settings, tracking_uri=uri
    )
    assert not weak.gate.passed, weak.gate.reason
    # the weak model ranks worse than popularity: the gate's lift veto refuses it before
    # any comparison with the champion (which it is below as well)
    assert "does not beat popularity" in weak.gate.reason
    assert weak.gate.champion_value is not None
    assert weak.gate.challenger_value < weak.gate.champion_value
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == version
    assert str(client.get_model_version_by_alias(NAME, CHALLENGER).version) == weak.version

    listed = runner.invoke(app, ["models", "list", NAME, "--tracking-uri", uri])
    assert listed.exit_code == 0
    rows = list_versions(client, [NAME], metric_names=("oot_auc", "oot_map_at_5"))
    assert [r.version for r in rows] == [weak.version, version]
    assert [r.aliases for r in rows] == [(CHALLENGER,), (CHAMPION,)]
    assert rows[1].metrics["oot_map_at_5"] == pytest.approx(metrics["oot_map_at_5"])


def _check_fallback(run_id: str, uri: str, folder: Path, version: str) -> PropensityModel:
    """The per-product report of a run, and the registered model it describes."""
    local = Path(
        mlflow.artifacts.download_artifacts(run_id=run_id, tracking_uri=uri, dst_path=str(folder))
    )
    table = pd.read_csv(local / "tables" / "product_validation.csv", index_col=0)
    assert {"auc", "auc_low", "auc_high", "lift_top10", "popularity_lift_top10"} <= set(
        table.columns
    )
    assert table.loc[AT_CHANCE, "ranker"] == "popularity"
    assert table.loc[AT_CHANCE, "auc_low"] <= 0.5
    assert (table["ranker"] == "model").any()  # the other products keep their model
    assert (table.loc[table["ranker"] == "model", "auc_low"] > 0.5).all()
    report = json.loads((local / "report" / "validation.json").read_text())
    assert report["test_window"].startswith("out-of-time test window")
    assert report["rankers"][AT_CHANCE]["ranker"] == "popularity"
    assert "no better than chance" in report["rankers"][AT_CHANCE]["reason"]
    metrics = MlflowClient(tracking_uri=uri).get_run(run_id).data.metrics
    assert metrics["products_ranked_by_popularity"] == (table["ranker"] == "popularity").sum()
    low = metrics[f"oot_model_auc_low_{AT_CHANCE}"]
    assert low == pytest.approx(table.loc[AT_CHANCE, "auc_low"])
    assert "psi_score" in metrics
    card = (local / "model_card.md").read_text()
    assert "### Products ranked by popularity" in card
    assert f"- {AT_CHANCE}: AUC" in card
    assert "Population stability" in card
    # a credit champion grades the bank, which has a truth of take-up: the card judges the
    # financing order against it beside the order by margin x limit
    assert "## Financing order against the truth of take-up" in card
    assert "NDCG@3 of the served order (profit x propensity)" in card
    assert "NDCG@3 of the order by expected profit (margin x limit)" in card
    assert 0 < metrics["financing_ndcg_at_3"] <= 1
    mlflow.set_registry_uri(uri)
    model = download_model(f"models:/{NAME}/{version}")
    assert isinstance(model, PropensityModel)
    assert model.rankers[AT_CHANCE] == "popularity"
    assert {c for c, r in model.rankers.items() if r == "popularity"} == set(
        table.index[table["ranker"] == "popularity"]
    )
    return model


def test_a_bank_with_only_the_required_columns(bank: Path, tmp_path: Path, mlflow_uri: str) -> None:
    """Real banks send what they have: every optional column and the optional financials table
    left out, as CSV. Both jobs train, batch scoring runs, and what the catalog does not say
    (margins) stays unknown instead of becoming zero."""
    from rmreco.domain import contract

    bare = tmp_path / "bare"
    bare.mkdir()
    for table in contract.TABLES:
        source = bank / f"{table.name}.parquet"
        if table.name == contract.FINANCIALS.name or not source.exists():
            continue
        frame = pd.read_parquet(source)[list(table.required_columns)]
        frame.to_csv(bare / f"{table.name}.csv", index=False)
    assert not (bare / "financials.csv").exists()
    uri = mlflow_uri
    settings = Settings(home=tmp_path / "home")
    credit = train_credit_risk(
        bare, spec_path=_credit_spec(tmp_path), settings=settings, tracking_uri=uri
    )
    assert credit.metrics["oot_auc"] > 0.6
    trained = train_cross_sell(bare, spec_path=_spec(tmp_path), settings=settings, tracking_uri=uri)
    assert trained.metrics["oot_map_at_5"] > trained.metrics["popularity_oot_map_at_5"]
    out = tmp_path / "scores"
    scored = CliRunner().invoke(
        app,
        ["score-batch", "--data", str(bare), "--as-of", AS_OF, "--out", str(out),
         "--tracking-uri", uri],
        env={"RMRECO_HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert scored.exit_code == 0, scored.output
    offers = pd.read_parquet(out / "cross_sell.parquet")
    assert len(offers) > 0
    assert offers["propensity"].between(0, 1).all()
    assert offers["expected_value"].isna().all()  # no margins in the catalog: unknown
    # with no value to rank by, each client's list is in propensity order
    ranked = offers.sort_values(["client_id", "rank"]).groupby("client_id")["propensity"]
    assert ranked.apply(lambda s: s.is_monotonic_decreasing).all()
