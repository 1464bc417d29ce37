"""A newcomer's first hour, run as they run it: `rmreco generate`, `ingest`, `train` and
`score-batch` in fresh processes on a small bank in a temporary RMRECO_HOME. Each prints its own
output only (no MLflow log line, no CloudPickle warning, no line MLflow prints on registering a
model) unless `--verbose`; the long commands show their progress (a bar per table while loading,
the steps of scoring and backtests); training marks its MLflow experiment as model training, not
GenAI.

The bank is small (200 clients): what is checked here is what the commands print, which does
not grow with the bank, and a bank this small makes the credit job warn of its tiny fit set,
which one test needs. Only the commands whose output is checked run as processes: the
champions are promoted in this process, by the function `rmreco models promote` calls."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from rmreco.config import Settings
from rmreco.training.credit_risk import DEFAULT_EXPERIMENT as CREDIT_EXPERIMENT
from rmreco.training.credit_risk import evaluate_credit_model
from rmreco.training.cross_sell import DEFAULT_EXPERIMENT as CROSS_SELL_EXPERIMENT
from rmreco.training.cross_sell import evaluate_cross_sell
from rmreco.training.registry import promote
from rmreco.training.scoring import score_batch
from rmreco.training.tracking import configure_mlflow

pytestmark = pytest.mark.slow  # a bank generated, loaded and trained on, in fresh processes

RMRECO = Path(sys.executable).parent / "rmreco"
CREDIT_MODEL = "rmreco-sme-pd-12m"
CROSS_SELL_MODEL = "rmreco-sme-corporate-cross-sell-3m"
#: What a library's log line or a warning looks like on stderr; progress bars look like none.
LIBRARY_OUTPUT = re.compile(
    r"\b(DEBUG|INFO|WARNING)\b|mlflow|CloudPickle|Warning|registered model|Created version",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FirstHour:
    home: Path
    bank: Path
    #: stderr of each command run, by name
    stderr: dict[str, str]
    stdout: dict[str, str]

    @property
    def settings(self) -> Settings:
        # the registry named outright: MLflow's set_tracking_uri also sets MLFLOW_TRACKING_URI
        # in this process's environment, so a registry another test module used would win
        home = Settings(home=self.home)
        return Settings(home=self.home, tracking_uri=home.resolved_tracking_uri)


def _rmreco(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RMRECO_", "MLFLOW_"))},
        "RMRECO_HOME": str(home),
        "COLUMNS": "200",  # one line per log record or bar: rich wraps at the terminal's width
    }
    done = subprocess.run(
        [str(RMRECO), *args], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, f"rmreco {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def first_hour(tmp_path_factory: pytest.TempPathFactory) -> FirstHour:
    """generate, ingest and train credit-risk as a newcomer would; cross-sell with --verbose;
    both champions promoted by hand (a bank this small may not pass the gates), then
    score-batch."""
    root = tmp_path_factory.mktemp("first_hour")
    home, bank = root / "home", root / "bank"
    commands = {
        "generate": ["generate", "--out", str(bank), "--clients", "200", "--months", "30"],
        "ingest": ["ingest", str(bank)],
        "train": ["train", "credit-risk", "--data", str(bank)],
        "train -v": ["--verbose", "train", "cross-sell", "--data", str(bank)],
    }
    runs = {name: _rmreco(home, *args) for name, args in commands.items()}
    uri = Settings(home=home).resolved_tracking_uri
    registry = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for model in (CREDIT_MODEL, CROSS_SELL_MODEL):
        promote(registry, model, "1", reason="promoted by hand (rmreco models promote)")
    scores = root / "scores"
    runs["score-batch"] = _rmreco(
        home, "score-batch", "--data", str(bank), "--as-of", "2024-06", "--out", str(scores)
    )
    return FirstHour(
        home=home,
        bank=bank,
        stderr={name: run.stderr for name, run in runs.items()},
        stdout={name: run.stdout for name, run in runs.items()},
    )


@pytest.mark.parametrize("command", ["generate", "ingest", "train", "score-batch"])
def test_a_command_prints_no_library_log_or_warning_by_default(
    first_hour: FirstHour, command: str
) -> None:
    lines = first_hour.stderr[command].splitlines()
    noise = [line for line in lines if LIBRARY_OUTPUT.search(line)]
    assert noise == [], f"rmreco {command} let library output through:\n" + "\n".join(noise)


def test_verbose_shows_the_library_logs(first_hour: FirstHour) -> None:
    """The check above can see what it looks for: --verbose lets it through."""
    shown = first_hour.stderr["train -v"]
    assert "CloudPickle" in shown
    assert re.search(r"Created version '1' of model", shown)
    assert re.search(r"INFO\s+rmreco\.training\.run", shown)


def test_a_training_warning_is_printed_with_the_report(first_hour: FirstHour) -> None:
    """Library logs are for --verbose; what the job warns of is the command's own output."""
    assert "warning: credit fit set: tiny fit set" in " ".join(first_hour.stdout["train"].split())


def test_ingest_shows_each_tables_rows_as_they_load(first_hour: FirstHour) -> None:
    months = len(pd.read_parquet(first_hour.bank / "account_months.parquet"))
    shown = first_hour.stderr["ingest"]
    assert re.search(rf"loading account_months\s.*{months:,}/{months:,} rows", shown), shown
    assert "reading and validating" in shown
    assert "refreshing the feature snapshots" in shown
    assert "scoring 2024-06" in first_hour.stderr["score-batch"]


def test_training_marks_its_experiments_as_model_training(first_hour: FirstHour) -> None:
    configure_mlflow(first_hour.settings)
    client = MlflowClient()
    for name in (CREDIT_EXPERIMENT, CROSS_SELL_EXPERIMENT):
        experiment = client.get_experiment_by_name(name)
        assert experiment is not None, name
        assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development", name


def test_score_batch_and_the_backtests_tell_their_steps(
    first_hour: FirstHour, tmp_path: Path
) -> None:
    settings = first_hour.settings
    scoring: list[str] = []
    score_batch(
        first_hour.bank,
        as_of=date(2024, 6, 1),
        out=tmp_path / "scores",
        settings=settings,
        credit_models=[CREDIT_MODEL],
        cross_sell_models=[CROSS_SELL_MODEL],
        policy_path=settings.policy_path,
        on_step=scoring.append,
    )
    assert scoring[0] == f"reading and validating {first_hour.bank}"
    assert f"ranking the cross-sell offers of {CROSS_SELL_MODEL}" in scoring
    assert scoring[-1].startswith("writing ")

    credit: list[str] = []
    evaluate_credit_model(
        first_hour.bank, model_name=CREDIT_MODEL, settings=settings, on_step=credit.append
    )
    assert credit[0] == f"loading {CREDIT_MODEL} champion"
    assert re.fullmatch(r"scoring [\d,]+ snapshots of the test window", credit[-1])

    cross_sell: list[str] = []
    evaluate_cross_sell(
        first_hour.bank,
        model_name=CROSS_SELL_MODEL,
        settings=settings,
        credit_models=[CREDIT_MODEL],
        on_step=cross_sell.append,
    )
    assert cross_sell[0] == f"loading {CROSS_SELL_MODEL} champion"
    assert "grading the clients with the credit champions" in cross_sell
    assert len(cross_sell) == 5
