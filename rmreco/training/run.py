"""This module owns the MLflow side of every training job: the run (tags, parameters, metrics,
the resolved spec, reports), ``log_model`` with signature and input example, registration, the
gate against the champion on the same test rows, and the move of an alias.

A job (``credit_risk``, ``cross_sell``) splits, fits and evaluates, then hands a
:class:`TrainedModel` to :func:`record_training`; the jobs import no MLflow.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import sklearn
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import rmreco
from rmreco.config import Settings
from rmreco.domain.errors import RmrecoError
from rmreco.features.config import FeatureConfig
from rmreco.modeling.pyfunc import (
    MODEL_ARTIFACT,
    RmrecoModel,
    download_model,
    model_signature,
    python_model_for,
)
from rmreco.modeling.spec import CreditRiskSpec, CrossSellSpec
from rmreco.training.registry import (
    GateDecision,
    RegistryError,
    champion_version,
    decide_gate,
    mark_challenger,
    promote,
)
from rmreco.training.tracking import (
    configure_mlflow,
    ensure_experiment,
    git_commit,
    start_run,
    store_exists,
)

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
#: The test window's rows as the trained model scored them (artifact ``scores/``)
TEST_SCORES = "test_scores.parquet"
#: The artifact folder of a run's validation report documents (JSON)
REPORT_FOLDER = "report"
#: The binned distribution of the run's training data, which the next run compares against
#: (``rmreco.training.validation.profile_frame``), in :data:`REPORT_FOLDER`
REFERENCE_PROFILE = "reference_profile.json"


@dataclass(frozen=True)
class Gate:
    """The promotion gate of a spec: the metric (higher is better), its floor, and how far
    below the champion's value on the same test rows a challenger may be."""

    metric: str
    min_value: float
    max_drop: float


@dataclass(frozen=True)
class Report:
    """What a job writes about its run: files under a folder, by artifact sub-folder, and the
    tables its model card quotes."""

    files: dict[str, list[Path]] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: JSON documents by file name (artifact folder ``report/``)
    documents: dict[str, Any] = field(default_factory=dict)
    #: figures the report computed that the run logs as metrics besides the job's
    metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def write(
        cls,
        folder: Path,
        *,
        charts: list[Path],
        tables: dict[str, pd.DataFrame],
        scores: pd.DataFrame | None = None,
        documents: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
    ) -> Report:
        """Write ``tables`` as CSV, ``documents`` as JSON (and the test window's ``scores`` as
        Parquet) into ``folder``; ``charts`` are already there."""
        table_files = []
        for name, table in tables.items():
            path = folder / f"{name}.csv"
            table.to_csv(path)
            table_files.append(path)
        files = {"charts": charts, "tables": table_files}
        if scores is not None:
            path = folder / TEST_SCORES
            scores.to_parquet(path, index=False)
            files["scores"] = [path]
        documents = dict(documents or {})
        if documents:
            files[REPORT_FOLDER] = []
            for name, document in documents.items():
                path = folder / name
                path.write_text(json.dumps(document, indent=1, default=str), encoding="utf-8")
                files[REPORT_FOLDER].append(path)
        return cls(files=files, tables=tables, documents=documents, metrics=dict(metrics or {}))


@dataclass(frozen=True)
class ChampionProfile:
    """The training data profile of the current champion (see :data:`REFERENCE_PROFILE`), or
    why there is none to compare against."""

    version: str | None
    profile: dict[str, Any] | None
    note: str


@dataclass(frozen=True)
class Source:
    """What a job trains from: its name, the spec (and its file) and the data (and the
    fingerprint of its content)."""

    job: str
    spec: CreditRiskSpec | CrossSellSpec
    spec_path: Path
    data: Path
    data_fingerprint: str


@dataclass(frozen=True)
class TrainedModel:
    """A fitted and evaluated model, and everything the run records about it."""

    source: Source
    model: RmrecoModel
    #: the out-of-time test rows (the input example is their head)
    test: pd.DataFrame
    registered_kind: str
    comparison: str
    metrics: dict[str, float]
    params: dict[str, Any]
    output_example: pd.DataFrame
    gate: Gate
    #: the gate's metric of another model (the champion) on the same test rows
    score_on_test: Callable[[RmrecoModel], float]
    #: writes charts and tables into a folder, given the champion's training data profile
    write_report: Callable[[Path, ChampionProfile], Report]
    #: the model card's markdown, given the report, the gate's decision and the version
    model_card: Callable[[Report, GateDecision, str], str]
    #: checks the model failed whatever its metric; any refuses promotion (see ``decide_gate``)
    vetoes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainingResult:
    run_id: str
    model_name: str
    version: str
    registered_kind: str
    metrics: dict[str, float]
    gate: GateDecision
    comparison: str


def input_example(model: RmrecoModel, frame: pd.DataFrame, rows: int = 5) -> pd.DataFrame:
    """The first rows of the columns ``model`` reads, categorical levels as plain text (how a
    caller of the pyfunc model sends them)."""
    columns = model.input_columns
    example = frame[columns].head(rows).copy()
    for name in columns:
        if name in model.encoder.categories:
            example[name] = example[name].astype(object).where(example[name].notna(), None)
    return example.reset_index(drop=True)


def pip_requirements() -> list[str]:
    """The packages a logged model needs, pinned to the versions that trained it."""
    return [
        f"rmreco=={rmreco.__version__}",
        f"mlflow=={mlflow.__version__}",
        f"lightgbm=={lgb.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
        f"scikit-learn=={sklearn.__version__}",
    ]


def record_training(
    trained: TrainedModel,
    *,
    settings: Settings,
    tracking_uri: str | None,
    experiment: str,
    step: Progress,
) -> TrainingResult:
    """Log the run, register the model under its spec's name, apply the gate, move the alias.

    Raises:
        RegistryError: the gate's metric was not computed by the job.
    """
    spec, model = trained.source.spec, trained.model
    if trained.gate.metric not in trained.metrics:
        raise RegistryError(f"the gate's metric {trained.gate.metric!r} is not computed by the run")
    uri = configure_mlflow(settings, tracking_uri)
    experiment_id = ensure_experiment(experiment, settings)
    client = MlflowClient()
    period = str(model.metadata.get("test_period", ""))
    with start_run(experiment_id, f"{spec.name} {period}".strip()) as run:
        # MLflow 3's UI takes an experiment without a kind for a GenAI one and opens it on an
        # empty overview of traces; this tag (the name and value the UI reads) says it holds
        # model training runs. Set on the run's own experiment: under `mlflow run` that is the
        # one `mlflow run` chose, not `experiment`.
        client.set_experiment_tag(
            run.info.experiment_id, "mlflow.experimentKind", "custom_model_development"
        )
        step("logging the run to MLflow")
        _log_run(trained)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "report"
            folder.mkdir()
            champion = _champion_profile(client, spec.name, Path(tmp) / "champion")
            report = trained.write_report(folder, champion)
            if report.metrics:
                mlflow.log_metrics(report.metrics)
            for subfolder, paths in report.files.items():
                for path in paths:
                    mlflow.log_artifact(str(path), subfolder)
            step("registering the model")
            version = _log_model(trained, folder)
            step("applying the promotion gates")
            gate = _gate(client, trained, version)
            if gate.champion_value is not None:
                mlflow.log_metric(f"champion_{trained.gate.metric}", gate.champion_value)
            mlflow.set_tags(
                {
                    "gate": gate.reason,
                    "gate_passed": str(gate.passed),
                    "registered_version": version,
                }
            )
            card = folder / "model_card.md"
            card.write_text(trained.model_card(report, gate, version), encoding="utf-8")
            mlflow.log_artifact(str(card))
        if gate.passed:
            promote(client, spec.name, version, reason=gate.reason)
        else:
            mark_challenger(client, spec.name, version, reason=gate.reason)
        log.info("run %s logged to %s", run.info.run_id, uri)
        return TrainingResult(
            run_id=run.info.run_id,
            model_name=spec.name,
            version=version,
            registered_kind=trained.registered_kind,
            metrics=dict(trained.metrics),
            gate=gate,
            comparison=trained.comparison,
        )


def _log_run(trained: TrainedModel) -> None:
    """Provenance, parameters, metrics, the resolved spec and the feature configuration."""
    source, config = trained.source, trained.model.config
    spec = source.spec
    mlflow.set_tags(
        {
            "rmreco.job": source.job,
            "rmreco.version": rmreco.__version__,
            "git_commit": git_commit(),
            "data_fingerprint": source.data_fingerprint,
            "data_dir": str(Path(source.data).resolve()),
            "spec_fingerprint": spec.fingerprint(),
            "registered_kind": trained.registered_kind,
            "comparison": trained.comparison,
        }
    )
    mlflow.log_params(
        {
            "seed": spec.seed,
            "horizon_months": config.horizon_months,
            "segments": ",".join(config.segments),
            "n_features": len(config.features),
            **config.snapshot.to_dict(),
            **trained.params,
        }
    )
    mlflow.log_metrics(dict(trained.metrics))
    mlflow.log_dict(spec.model_dump(mode="json"), "spec/resolved_spec.json")
    mlflow.log_dict(config.to_dict(), "spec/feature_config.json")
    mlflow.log_artifact(str(source.spec_path), "spec")


def _log_model(trained: TrainedModel, folder: Path) -> str:
    """Log the model's files behind the pyfunc face, register them under the spec's name and
    return the new version."""
    model = trained.model
    model_dir = model.save(folder / MODEL_ARTIFACT)
    example = input_example(model, trained.test)
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=python_model_for(model),
        artifacts={MODEL_ARTIFACT: str(model_dir)},
        # numbers typed "a number or null": stored audit features score without a cast
        signature=model_signature(example, trained.output_example),
        input_example=example,
        pip_requirements=pip_requirements(),
        registered_model_name=trained.source.spec.name,
        metadata={
            "rmreco_family": model.config.family,
            "feature_config": model.config.to_dict(),
            **{k: str(v) for k, v in model.metadata.items()},
        },
    )
    return str(info.registered_model_version)


def _gate(client: MlflowClient, trained: TrainedModel, version: str) -> GateDecision:
    """The gate of ``version``: the spec's floor, and the champion scored on the same rows."""
    gate, name = trained.gate, trained.source.spec.name
    current = champion_version(client, name)
    champion_value: float | None = None
    error: str | None = None
    if current is not None and current != version:
        try:
            champion_value = trained.score_on_test(download_model(f"models:/{name}/{current}"))
        except (MlflowException, ValueError, KeyError, RmrecoError) as exc:
            error = str(exc)
    else:
        current = None
    return decide_gate(
        trained.metrics[gate.metric],
        metric=gate.metric,
        min_value=gate.min_value,
        max_drop=gate.max_drop,
        champion_value=champion_value,
        champion_version=current,
        champion_error=error,
        vetoes=trained.vetoes,
    )


def _champion_profile(client: MlflowClient, name: str, folder: Path) -> ChampionProfile:
    """The current champion's training data profile, read from its run's artifacts; a missing
    one (no champion, a run from before profiles, an unreadable store) says why instead."""
    version = champion_version(client, name)
    if version is None:
        return ChampionProfile(None, None, "no champion yet: nothing to compare against")
    try:
        run_id = client.get_model_version(name, version).run_id
        if not run_id:
            return ChampionProfile(version, None, f"champion v{version} has no training run")
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path=f"{REPORT_FOLDER}/{REFERENCE_PROFILE}",
            dst_path=str(folder),
        )
        profile = json.loads(Path(local).read_text(encoding="utf-8"))
    except (MlflowException, OSError, ValueError) as exc:
        log.warning("champion v%s of %s: no training data profile (%s)", version, name, exc)
        return ChampionProfile(
            version,
            None,
            f"champion v{version}'s training data profile could not be found in its run's "
            f"artifacts ({REPORT_FOLDER}/{REFERENCE_PROFILE}; runs before this report did not "
            "record one): PSI against it not computed",
        )
    return ChampionProfile(version, profile, f"champion v{version}'s fit window")


def load_registered(
    name: str, version: str | None, *, settings: Settings, tracking_uri: str | None
) -> tuple[RmrecoModel, str]:
    """A registered version of ``name`` (its champion when ``version`` is None) and its number.

    Raises:
        RegistryError: no such version, no champion, or the files could not be loaded.
    """
    configure_mlflow(settings, tracking_uri)
    chosen = version or champion_version(MlflowClient(), name)
    if chosen is None:
        raise RegistryError(f"model {name!r} has no champion")
    try:
        return download_model(f"models:/{name}/{chosen}"), chosen
    except (MlflowException, ValueError) as exc:
        raise RegistryError(f"model {name!r} version {chosen} could not be loaded: {exc}") from None


def load_champions(
    names: Sequence[str], *, settings: Settings, tracking_uri: str | None
) -> dict[str, tuple[RmrecoModel, str]]:
    """The champion model and version of each named model that has one (names without a
    champion are left out).

    Raises:
        RegistryError: a champion's files could not be loaded.
    """
    uri = configure_mlflow(settings, tracking_uri)
    if not store_exists(uri):  # a registry never written to has no champion
        return {}
    client = MlflowClient()
    out = {}
    for name in names:
        version = champion_version(client, name)
        if version is not None:
            out[name] = load_registered(name, version, settings=settings, tracking_uri=tracking_uri)
    return out


def champion_configs(
    names: Sequence[str], *, settings: Settings, tracking_uri: str | None
) -> dict[str, FeatureConfig]:
    """The feature configuration of the champion of each named model that has one.

    Raises:
        RegistryError: a champion's files could not be loaded.
    """
    loaded = load_champions(names, settings=settings, tracking_uri=tracking_uri)
    return {name: model.config for name, (model, _) in loaded.items()}


def logged_metrics(name: str, version: str) -> dict[str, float]:
    """The metrics of the run that trained a registered version (empty when it has none)."""
    client = MlflowClient()
    run_id = client.get_model_version(name, version).run_id
    return dict(client.get_run(run_id).data.metrics) if run_id else {}
