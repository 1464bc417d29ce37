"""Training on a Dask LocalCluster of two worker processes over a client-partitioned bank: the
per-part panels are the single process's panel, the split selects the same fit, calibration and
test rows (out of time and by client, credit-risk and cross-sell), the driver's sample of a
large fit set is whole clients, and the models trained on the cluster (``lightgbm.dask``) are
within 0.01 AUC of the single-process models on the same data, registered and loaded as any
model is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import yaml
from distributed import Client
from mlflow import MlflowClient
from mlflow_store import new_store
from typer.testing import CliRunner

from rmreco.cli import app
from rmreco.cli.main import EXIT_INPUT_REFUSED
from rmreco.config import Settings
from rmreco.domain.errors import DataContractError
from rmreco.features import cross_sell as xs
from rmreco.features.inputs import read_feature_inputs
from rmreco.features.labels import LABEL
from rmreco.modeling.credit_estimator import credit_feature_config
from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.metrics import auc
from rmreco.modeling.propensity import PropensityModel
from rmreco.modeling.spec import (
    CreditRiskSpec,
    CrossSellSpec,
    load_credit_risk_spec,
    load_cross_sell_spec,
)
from rmreco.synthetic import generate_bank
from rmreco.training import distributed, distributed_cross_sell, run
from rmreco.training.cluster import dask_client, parse_address
from rmreco.training.credit_risk import train_credit_risk
from rmreco.training.credit_split import split_credit_panel
from rmreco.training.cross_sell import train_cross_sell
from rmreco.training.cross_sell_split import build_split
from rmreco.training.splits import Split

pytestmark = pytest.mark.slow  # a local cluster and two trainings

ROOT = Path(__file__).resolve().parents[2]
PARTS = 6
KEYS = ["client_id", "month"]


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 clients x 30 months in 6 parts: a book whose credit model passes the gates."""
    folder = tmp_path_factory.mktemp("partitioned_training") / "bank"
    generate_bank(folder, n_clients=1500, n_months=30, seed=5, partitions=PARTS)
    return folder


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = yaml.safe_load((ROOT / "models" / "sme_credit_risk.yaml").read_text())
    raw["model"]["lightgbm"]["num_boost_round"] = 80
    raw["model"]["lightgbm"]["params"]["learning_rate"] = 0.1
    path = tmp_path_factory.mktemp("spec") / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with dask_client(parse_address("local:2")) as client:
        yield client


@pytest.fixture(scope="module")
def whole_panel(bank: Path, spec_path: Path) -> pd.DataFrame:
    inputs, _ = read_feature_inputs(bank)
    return credit_feature_config(load_credit_risk_spec(spec_path)).credit_panel(inputs)


@pytest.fixture(scope="module")
def book(bank: Path, spec_path: Path, client: Client) -> distributed.ClusterData:
    return distributed.credit_panels(client, bank, load_credit_risk_spec(spec_path))


def _keys(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[KEYS].reset_index(drop=True)


def _same_rows(got: Split, expected: Split) -> None:
    for name in ("fit", "calibration", "test"):
        pd.testing.assert_frame_equal(_keys(getattr(got, name)), _keys(getattr(expected, name)))
        assert got.describe() == expected.describe()


def test_the_parts_panels_and_split_are_the_single_process_ones(
    bank: Path,
    spec_path: Path,
    client: Client,
    book: distributed.ClusterData,
    whole_panel: pd.DataFrame,
) -> None:
    spec = load_credit_risk_spec(spec_path)
    assert len(book.panels) == PARTS
    parts = pd.concat(client.gather(book.panels), ignore_index=True)
    pd.testing.assert_frame_equal(
        parts.sort_values(KEYS).reset_index(drop=True),
        whole_panel.sort_values(KEYS).reset_index(drop=True),
    )
    # a part's own outcome coverage ends earlier than the book's for some parts: without the
    # book's, their latest labels would not be complete
    assert whole_panel["label_complete"].sum() > 100

    _, validated = read_feature_inputs(bank)
    assert book.fingerprint == validated.fingerprint

    for kind in ("out_of_time", "client"):
        kind_spec = spec.model_copy(update={"split": spec.split.model_copy(update={"kind": kind})})
        assert isinstance(kind_spec, CreditRiskSpec)
        on_cluster = distributed.credit_split(client, book, kind_spec)
        expected = split_credit_panel(whole_panel, kind_spec)
        assert not on_cluster.split.is_fit_sampled
        assert on_cluster.split.fit_rows == len(expected.fit) == sum(on_cluster.part_rows)
        _same_rows(on_cluster.split, expected)
        pd.testing.assert_frame_equal(
            on_cluster.split.calibration.reset_index(drop=True),
            expected.calibration.reset_index(drop=True),
        )


def test_a_fit_set_larger_than_the_driver_sample_is_sampled_by_whole_clients(
    spec_path: Path,
    client: Client,
    book: distributed.ClusterData,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(distributed, "SAMPLE_ROWS", 1000)
    on_cluster = distributed.credit_split(client, book, load_credit_risk_spec(spec_path))
    split = on_cluster.split
    assert split.is_fit_sampled
    assert 500 < len(split.fit) <= 1000 < split.fit_rows
    whole = pd.concat(client.gather(on_cluster.fit_parts), ignore_index=True)
    sampled = set(split.fit["client_id"].astype(str))
    mine = whole[whole["client_id"].astype(str).isin(sampled)]
    assert len(mine) == len(split.fit), "a sampled client comes with all its fit rows"
    assert split.describe()["fit_period"] == (
        f"{whole['month'].min():%Y-%m}..{whole['month'].max():%Y-%m}"
    )


def test_credit_risk_trained_on_the_cluster_is_within_001_auc_and_served_like_any_model(
    bank: Path,
    spec_path: Path,
    client: Client,
    whole_panel: pd.DataFrame,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    uri = new_store(tmp_path / "store", tmp_path_factory)
    settings = Settings(home=tmp_path / "home")
    single = train_credit_risk(bank, spec_path=spec_path, settings=settings, tracking_uri=uri)
    cluster = train_credit_risk(
        bank, spec_path=spec_path, settings=settings, tracking_uri=uri, client=client
    )
    assert single.gate.passed, single.gate.reason
    assert cluster.gate.passed, cluster.gate.reason
    assert cluster.registered_kind == "lightgbm"
    for metric in ("lightgbm_oot_auc", "oot_auc"):
        assert abs(cluster.metrics[metric] - single.metrics[metric]) < 0.01, metric
    # the same fit rows on the driver, hence the same scorecard challenger
    assert cluster.metrics["scorecard_oot_auc"] == pytest.approx(
        single.metrics["scorecard_oot_auc"]
    )

    params = MlflowClient(tracking_uri=uri).get_run(cluster.run_id).data.params
    assert params["trained_on"] == f"dask, 2 workers, {PARTS} parts"
    assert params["rows_fit"] == params["scorecard_fit_rows"]
    assert MlflowClient(tracking_uri=uri).get_run(single.run_id).data.params["trained_on"] == (
        "one process"
    )

    # loaded from the registry as any version is, it scores the test window as training did
    model, version = run.load_registered(
        cluster.model_name, cluster.version, settings=settings, tracking_uri=uri
    )
    assert version == cluster.version
    assert isinstance(model, CreditRiskModel)
    assert isinstance(model.booster, lgb.Booster)
    assert model.metadata["trained_on"] == f"dask, 2 workers, {PARTS} parts"
    test = split_credit_panel(whole_panel, load_credit_risk_spec(spec_path)).test
    scored = model.predict(test, with_reasons=False)
    assert np.all((scored.pd > 0) & (scored.pd < 1))
    assert auc(test[LABEL].to_numpy(int), scored.pd) == pytest.approx(cluster.metrics["oot_auc"])
    explained = model.predict(test.head(20), with_reasons=True)
    assert all(len(reasons) > 0 for reasons in explained.reasons)


@pytest.fixture(scope="module")
def cross_sell_spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = yaml.safe_load((ROOT / "models" / "cross_sell.yaml").read_text())
    raw["model"]["lightgbm"]["num_boost_round"] = 80
    raw["model"]["lightgbm"]["params"]["learning_rate"] = 0.1
    raw["validation"]["bootstrap_resamples"] = 100
    path = tmp_path_factory.mktemp("cross_sell_spec") / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_cross_sell_split_on_the_cluster_is_the_single_process_one(
    bank: Path, cross_sell_spec_path: Path, client: Client
) -> None:
    inputs, _ = read_feature_inputs(bank)
    spec = load_cross_sell_spec(cross_sell_spec_path)
    for kind in ("out_of_time", "client"):
        kind_spec = spec.model_copy(update={"split": spec.split.model_copy(update={"kind": kind})})
        assert isinstance(kind_spec, CrossSellSpec)
        expected = build_split(inputs, kind_spec)
        book = distributed_cross_sell.cross_sell_split(client, bank, kind_spec)
        on_cluster = book.split
        assert not on_cluster.split.is_fit_sampled
        # the whole frames, features and sampled weights included, row for row
        for name in ("fit", "calibration", "test"):
            pd.testing.assert_frame_equal(
                getattr(on_cluster.split, name).reset_index(drop=True),
                getattr(expected, name).reset_index(drop=True),
            )
        assert on_cluster.split.describe() == expected.describe()
        pd.testing.assert_frame_equal(
            pd.concat(client.gather(on_cluster.fit_parts), ignore_index=True), expected.fit
        )
        by_product = expected.fit.groupby(xs.PRODUCT)[xs.LABEL]
        assert {c: (g.rows, g.positives) for c, g in on_cluster.groups.items()} == {
            str(c): (int(n), int(p))
            for c, n, p in zip(
                by_product.size().index, by_product.size(), by_product.sum(), strict=True
            )
        }
        assert inputs.products is not None
        pd.testing.assert_frame_equal(book.products, inputs.products)


def test_cross_sell_trained_on_the_cluster_ranks_as_the_single_process_model(
    bank: Path,
    cross_sell_spec_path: Path,
    client: Client,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    uri = new_store(tmp_path / "store", tmp_path_factory)
    settings = Settings(home=tmp_path / "home")
    single = train_cross_sell(
        bank, spec_path=cross_sell_spec_path, settings=settings, tracking_uri=uri
    )
    cluster = train_cross_sell(
        bank, spec_path=cross_sell_spec_path, settings=settings, tracking_uri=uri, client=client
    )
    assert single.gate.passed, single.gate.reason
    assert "MAP@5" in cluster.gate.reason
    # the baselines are fitted on the same rows on the driver (the fit set is under the
    # sample's size), so they rank alike to the last digit
    for baseline in ("popularity", "logistic"):
        for metric in (f"{baseline}_oot_map_at_5", f"{baseline}_pooled_oot_auc"):
            assert cluster.metrics[metric] == pytest.approx(single.metrics[metric]), metric
    # the data-parallel learner bags and bins per worker: each LightGBM set-up separates the
    # test window's adoptions about as well (AUC over every (client, product) row; two
    # single-process runs with five LightGBM seeds span 0.02 on this bank)
    for setup in ("stacked", "per_product"):
        metric = f"{setup}_pooled_oot_auc"
        assert abs(cluster.metrics[metric] - single.metrics[metric]) < 0.03, metric
        assert cluster.metrics[metric] > cluster.metrics["popularity_pooled_oot_auc"] + 0.05
    assert cluster.metrics["oot_map_at_5"] > cluster.metrics["popularity_oot_map_at_5"] + 0.05
    params = MlflowClient(tracking_uri=uri).get_run(cluster.run_id).data.params
    assert params["trained_on"] == f"dask, 2 workers, {PARTS} parts"
    assert params["rows_fit"] == params["baseline_fit_rows"]

    # loaded from the registry as any version is, it scores the test window as training did,
    # with reasons in words
    model, _ = run.load_registered(
        cluster.model_name, cluster.version, settings=settings, tracking_uri=uri
    )
    assert isinstance(model, PropensityModel)
    assert model.metadata["trained_on"] == f"dask, 2 workers, {PARTS} parts"
    spec = load_cross_sell_spec(cross_sell_spec_path)
    test = build_split(read_feature_inputs(bank)[0], spec).test
    p = np.nan_to_num(model.predict(test, with_reasons=False).propensity, nan=0.0)
    assert auc(test[xs.LABEL].to_numpy(int), p) == pytest.approx(cluster.metrics["pooled_oot_auc"])
    explained = model.predict(test.head(20), with_reasons=True)
    assert any(len(reasons) > 0 for reasons in explained.reasons)


@pytest.mark.parametrize("job", ["credit-risk", "cross-sell"])
def test_training_on_a_cluster_needs_a_partitioned_folder(
    job: str, spec_path: Path, cross_sell_spec_path: Path, client: Client, tmp_path: Path
) -> None:
    folder = tmp_path / "bank"
    folder.mkdir()
    spec, train = (
        (spec_path, train_credit_risk)
        if job == "credit-risk"
        else (cross_sell_spec_path, train_cross_sell)
    )
    with pytest.raises(DataContractError, match="not a client-partitioned folder"):
        train(folder, spec_path=spec, settings=Settings(home=tmp_path / "home"), client=client)
    result = CliRunner().invoke(
        app,
        ["train", job, "--data", str(folder), "--spec", str(spec), "--dask", "local:1"],
        env={"RMRECO_HOME": str(tmp_path / "home")},
    )
    assert result.exit_code == EXIT_INPUT_REFUSED, result.output
    assert "partitioned" in result.output
