"""Scale-out on a Dask LocalCluster of two worker processes, over a client-partitioned bank:
the features of every part equal the single process's features of the whole book; batch scoring
part by part equals single-process scoring client by client; a scoring run killed part-way and
started again writes every client exactly once; a folder holding another run is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from distributed import Client
from served_bank import Trained, trained

from rmreco.config import Settings
from rmreco.features.config import SnapshotParams, snapshot_frame
from rmreco.features.inputs import read_feature_inputs
from rmreco.synthetic import generate_bank
from rmreco.training import partitioned
from rmreco.training.cluster import dask_client, parse_address
from rmreco.training.scoring import ScoringError, score_batch

pytestmark = pytest.mark.slow  # a local cluster, champions trained once per test process

PARTS = 6
AS_OF = date(2023, 12, 1)
CREDIT = ["rmreco-sme-pd-12m"]
CROSS_SELL = ["rmreco-sme-corporate-cross-sell-3m"]
RMRECO = Path(sys.executable).parent / "rmreco"


@pytest.fixture(scope="module")
def champions(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return trained(tmp_path_factory)


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A book of 360 clients x 24 months in 6 parts (another bank than the champions' own:
    they score any book of the contract)."""
    folder = tmp_path_factory.mktemp("partitioned") / "bank"
    generate_bank(folder, n_clients=360, n_months=24, seed=21, partitions=PARTS)
    return folder


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with dask_client(parse_address("local:2")) as client:
        yield client


def _settings(champions: Trained, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", tracking_uri=champions.tracking_uri)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("client_id", "product_code", "option_rank", "rank") if c in frame]
    return frame.sort_values(keys).reset_index(drop=True)


def test_the_features_of_every_part_are_the_single_process_features(
    bank: Path, client: Client
) -> None:
    params = SnapshotParams()
    whole, _ = read_feature_inputs(bank)
    expected = _sorted(snapshot_frame(whole, params))
    frames = partitioned.snapshot_frames(bank, params)
    assert frames.npartitions == PARTS
    got = _sorted(client.compute(frames).result())
    # each part knows its own categories only, and Dask gives text as Arrow strings: the values
    # are compared, as the same Python objects
    text = [str(c) for c in expected if not pd.api.types.is_numeric_dtype(expected[c].dtype)]
    text = [c for c in text if not pd.api.types.is_datetime64_any_dtype(expected[c].dtype)]
    for frame in (expected, got):
        for column in text:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    pd.testing.assert_frame_equal(got, expected)


def test_partitioned_scoring_equals_single_process_scoring_client_by_client(
    bank: Path, client: Client, champions: Trained, tmp_path: Path
) -> None:
    settings = _settings(champions, tmp_path)
    common = {
        "as_of": AS_OF,
        "settings": settings,
        "credit_models": CREDIT,
        "cross_sell_models": CROSS_SELL,
        "policy_path": settings.policy_path,
    }
    single = score_batch(bank, out=tmp_path / "single", **common)  # type: ignore[arg-type]
    parts = partitioned.score_batch_partitioned(
        bank,
        client=client,
        out=tmp_path / "parts",
        **common,  # type: ignore[arg-type]
    )
    assert parts.files == single.files
    assert single.files["credit.parquet"] > 100
    for name in single.files:
        expected = _sorted(pd.read_parquet(tmp_path / "single" / name))
        got = _sorted(pd.read_parquet(tmp_path / "parts" / Path(name).stem))
        pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False)
    files = sorted(p.name for p in (tmp_path / "parts" / "credit").iterdir())
    assert files == [f"part-{k:05d}.parquet" for k in range(PARTS)]

    # the same run again writes nothing new
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "parts").rglob("part-*.parquet")}
    partitioned.score_batch_partitioned(
        bank,
        client=client,
        out=tmp_path / "parts",
        **common,  # type: ignore[arg-type]
    )
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "parts").rglob("part-*.parquet")}
    assert after == before

    # another as-of into the same folder is refused, naming what differs
    with pytest.raises(ScoringError, match=r"holds the scores of another run.*as_of"):
        partitioned.score_batch_partitioned(
            bank,
            client=client,
            out=tmp_path / "parts",
            **{**common, "as_of": date(2023, 11, 1)},  # type: ignore[arg-type]
        )


def test_a_killed_run_started_again_writes_every_client_exactly_once(
    bank: Path, champions: Trained, tmp_path: Path
) -> None:
    out = tmp_path / "scores"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RMRECO_", "MLFLOW_"))},
        "RMRECO_HOME": str(tmp_path / "home"),
        "RMRECO_TRACKING_URI": champions.tracking_uri,
    }
    command = [str(RMRECO), "score-batch", "--data", str(bank), "--as-of", f"{AS_OF:%Y-%m}",
               "--out", str(out), "--dask", "local:2"]  # fmt: skip
    # its own process group: the kill takes the cluster's worker processes with it
    run = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while not any((out / "credit").glob("part-*.parquet")):
        assert run.poll() is None, run.stderr.read().decode() if run.stderr else ""
        assert time.monotonic() < deadline, "no part was written in 5 minutes"
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    written = list((out / "credit").glob("part-*.parquet"))
    assert 0 < len(written) < PARTS, "the kill came after the last part: nothing to resume"

    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    credit = pd.concat(pd.read_parquet(p) for p in sorted((out / "credit").glob("part-*.parquet")))
    assert credit["client_id"].is_unique
    single = score_batch(
        bank,
        out=tmp_path / "single",
        as_of=AS_OF,
        settings=_settings(champions, tmp_path),
        credit_models=CREDIT,
        cross_sell_models=CROSS_SELL,
        policy_path=_settings(champions, tmp_path).policy_path,
    )
    assert len(credit) == single.files["credit.parquet"]
    for name in single.files:
        one = _sorted(pd.read_parquet(tmp_path / "single" / name))
        parts = _sorted(pd.read_parquet(out / Path(name).stem))
        pd.testing.assert_frame_equal(parts[one.columns], one, check_dtype=False)
    assert list(out.rglob("*.tmp")) == [], "the second run clears what the kill left half-written"
