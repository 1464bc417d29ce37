"""MLflow set-up for a job: tracking and registry URIs, the experiment, and run provenance."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from rmreco.config import Settings


def configure_mlflow(settings: Settings, tracking_uri: str | None = None) -> str:
    """Point MLflow's tracking and registry at a store and return its URI.

    Precedence: ``tracking_uri`` (a command's option), then ``RMRECO_TRACKING_URI``, then
    ``MLFLOW_TRACKING_URI`` (set by ``mlflow run`` for the run it created), then the embedded
    SQLite store under ``RMRECO_HOME``.
    """
    uri = tracking_uri or settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        uri = settings.resolved_tracking_uri
        settings.ensure_home()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def store_exists(uri: str) -> bool:
    """Whether the tracking store at ``uri`` may hold anything: False only for an embedded
    SQLite store whose file does not exist yet (opening it would create it and run MLflow's
    migrations, seconds of work, to learn that no model is registered)."""
    if not uri.startswith("sqlite:///"):
        return True
    database = uri.removeprefix("sqlite:///").split("?", 1)[0]  # "/abs/path" or "relative"
    return not database or database == ":memory:" or Path(database).exists()


def ensure_experiment(name: str, settings: Settings) -> str:
    """The id of experiment ``name``, created with its artifacts under the settings' root."""
    client = MlflowClient()
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    location = f"{settings.resolved_artifact_root.rstrip('/')}/{name}"
    return str(client.create_experiment(name, artifact_location=location))


def git_commit(cwd: Path | None = None) -> str:
    """The commit of the code that runs (with ``-dirty`` when it has uncommitted changes)."""
    here = cwd or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty.strip() else commit


def start_run(experiment_id: str, run_name: str) -> mlflow.ActiveRun:
    """A new run in ``experiment_id``, or the run ``mlflow run`` created for this job.

    ``mlflow run`` passes its run in ``MLFLOW_RUN_ID``; the job then logs into that run (in the
    run's own experiment) so that the MLproject entry point and the CLI leave the same record.
    """
    if os.environ.get("MLFLOW_RUN_ID"):
        return mlflow.start_run(run_id=os.environ["MLFLOW_RUN_ID"])
    return mlflow.start_run(experiment_id=experiment_id, run_name=run_name)
