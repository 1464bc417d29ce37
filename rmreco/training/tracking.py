"""MLflow set-up for a job: tracking and registry URIs, the experiment, and run provenance."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from rmreco.config import Settings


def configure_mlflow(settings: Settings, tracking_uri: str | None = None) -> str:
    """Point MLflow's tracking and registry at ``tracking_uri`` (default: the settings')."""
    uri = tracking_uri or settings.resolved_tracking_uri
    if uri.startswith("sqlite:///") and tracking_uri is None:
        settings.ensure_home()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


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
