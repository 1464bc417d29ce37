"""Models at run time: loaded by the ``champion`` alias, followed in the background, swapped at
once, with a local copy of the last good versions.

The registry is never called on the request path. A background task asks which version the
alias points at; when it moves, the new version is downloaded, loaded, and checked before it
replaces the one in use:

- its feature configuration must match the builder settings the stored feature snapshots were
  computed with (a model trained with a 9-month financials lag is not served from snapshots
  computed with 6); otherwise it is refused with a reason that says to refresh the snapshots,
  and tried again once the snapshots change;
- it must answer a few known clients through the request path (the same records and encoder the
  routes use): probabilities in [0, 1], no NaN, one answer per client.

A version that fails to load or to pass the checks never replaces the one in use. Every version
that passed is kept under ``<home>/served-models/<name>/<version>`` and recorded as the last
good one, so that a restart while the registry is unreachable still serves it.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient

from rmreco.domain.names import CHAMPION
from rmreco.features.config import Family, FeatureConfig, SnapshotParams
from rmreco.features.snapshots import candidate_records
from rmreco.modeling.credit_model import CreditRiskModel
from rmreco.modeling.propensity import PropensityModel
from rmreco.modeling.pyfunc import MODEL_ARTIFACT, RmrecoModel, read_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelKind:
    """One registered model the service follows, by name, and the family it must be of."""

    name: str
    family: Family


def check_credit_model(model: CreditRiskModel, rows: list[dict[str, Any]]) -> None:
    """Raise ValueError unless the model gives one PD in [0, 1] per known client."""
    if not rows:
        return
    result = model.predict_records(rows, with_reasons=True)
    pds = np.asarray(result.pd, dtype=float)
    if len(pds) != len(rows):
        raise ValueError(f"{len(pds)} answers for {len(rows)} clients")
    if np.isnan(pds).any() or (pds < 0).any() or (pds > 1).any():
        raise ValueError("probabilities outside [0, 1] or missing")


def check_propensity_model(model: PropensityModel, rows: list[dict[str, Any]]) -> None:
    """Raise ValueError unless the model gives propensities in [0, 1] on known clients' offers."""
    records = [
        record for row in rows for record in candidate_records(row, row.get("_offer_candidates"))
    ]
    if not records:
        return
    result = model.predict_records(records, with_reasons=True)
    scored = np.asarray(result.propensity, dtype=float)
    known = scored[~np.isnan(scored)]
    if len(known) == 0:
        raise ValueError("no offer of the known clients could be scored")
    if (known < 0).any() or (known > 1).any():
        raise ValueError("propensities outside [0, 1]")


def missing_bank_columns(model: RmrecoModel, rows: list[dict[str, Any]]) -> str | None:
    """Why ``model`` cannot be served from snapshots ``rows`` (a sample of the stored features)
    for lack of the bank's own columns it was trained on (None: it can). Without them every
    client would be scored as if the bank never sent those columns."""
    if not rows:
        return None
    stored = set().union(*(row.keys() for row in rows))
    missing = [name for name, _ in model.config.bank_columns if name not in stored]
    if not missing:
        return None
    columns = ", ".join(name.replace("__", ".", 1) for name in missing)
    return (
        f"trained on the bank's own columns {columns}, which the stored feature snapshots do "
        "not hold; load data that carries them (`rmreco ingest`) and refresh the snapshots "
        "(`rmreco features refresh`)"
    )


def check_model(model: RmrecoModel, family: Family, rows: list[dict[str, Any]]) -> None:
    """Raise ValueError unless ``model`` is of ``family``, finds the bank's own columns it reads
    in the stored snapshots, and answers ``rows`` soundly."""
    if model.config.family != family:
        raise ValueError(f"the registered model is a {model.config.family} model, not {family}")
    missing = missing_bank_columns(model, rows)
    if missing is not None:
        raise ValueError(missing)
    if isinstance(model, CreditRiskModel):
        check_credit_model(model, rows)
    else:
        check_propensity_model(model, rows)


def snapshot_mismatch(model: RmrecoModel, stored: list[SnapshotParams | None]) -> str | None:
    """Why ``model`` cannot be served from snapshots computed with ``stored`` (None: it can).
    No snapshots at all is no obstacle: there is nobody to answer yet."""
    wanted = model.config.snapshot
    if not stored or stored == [wanted]:
        return None
    if None in stored:
        found = "feature snapshots that do not record their settings"
    else:
        found = "snapshots computed with " + " and ".join(
            p.describe() for p in stored if p is not None
        )
    return (
        f"trained with {wanted.describe()}, but the service holds {found}; "
        "run `rmreco features refresh` to recompute them with the champions' settings"
    )


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    model: RmrecoModel
    metrics: dict[str, float] = field(default_factory=dict)
    source: str = "registry"
    loaded_at: float = field(default_factory=time.time)


def _config(served: ServedModel) -> FeatureConfig:
    return served.model.config


class ModelStore:
    """The models in use; :meth:`refresh` runs off the request path."""

    def __init__(
        self,
        *,
        tracking_uri: str,
        cache_dir: Path,
        kinds: list[ModelKind],
        check_rows: Callable[[], list[dict[str, Any]]],
        snapshot_params: Callable[[], list[SnapshotParams | None]],
    ) -> None:
        self.tracking_uri = tracking_uri
        self.cache_dir = cache_dir
        self.kinds = {k.name: k for k in kinds}
        self.check_rows = check_rows
        self.snapshot_params = snapshot_params
        self._current: Mapping[str, ServedModel] = {}
        self.registry_error: str | None = None
        self.last_errors: dict[str, str] = {}

    @property
    def current(self) -> Mapping[str, ServedModel]:
        """The models in use: a mapping replaced whole at each swap, never changed in place."""
        return self._current

    def versions(self) -> dict[str, str]:
        return {name: served.version for name, served in self._current.items()}

    def is_ready(self) -> bool:
        """At least one credit-risk model is served (cross-sell models are optional)."""
        return any(
            self.kinds[name].family == "credit_risk" for name in self._current if name in self.kinds
        )

    def serving(self, family: Family, segment: str | None) -> ServedModel | None:
        """The model of ``family`` served for clients of ``segment`` (None when none is); the
        first by name when several cover it."""
        return next((s for s in self.of_family(family) if _config(s).covers_segment(segment)), None)

    def of_family(self, family: Family) -> list[ServedModel]:
        """The models of ``family`` in use, in name order."""
        kind = CreditRiskModel if family == "credit_risk" else PropensityModel
        return [s for _, s in sorted(self._current.items()) if isinstance(s.model, kind)]

    def segments(self, family: Family) -> list[str]:
        """The segments some served model of ``family`` scores."""
        return sorted({seg for s in self.of_family(family) for seg in _config(s).segments})

    def credit_for(self, segment: str | None) -> ServedModel | None:
        """The credit-risk model served for clients of ``segment`` (None when none is)."""
        return self.serving("credit_risk", segment)

    def credit_models(self) -> list[ServedModel]:
        """The credit-risk models in use, in name order."""
        return self.of_family("credit_risk")

    def credit_segments(self) -> list[str]:
        """The segments some served credit-risk model scores."""
        return self.segments("credit_risk")

    def _client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def refresh(self) -> list[str]:
        """Follow the aliases once; return the names whose model was swapped."""
        try:
            client = self._client()
            targets = {}
            for name in self.kinds:
                try:
                    targets[name] = str(client.get_model_version_by_alias(name, CHAMPION).version)
                except mlflow.exceptions.MlflowException as exc:
                    if (
                        "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code)
                        or "not found" in str(exc).lower()
                    ):
                        self.last_errors[name] = f"no {CHAMPION} alias in the registry"
                        continue
                    raise
            self.registry_error = None
        except Exception as exc:  # the registry is down or unreachable
            self.registry_error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("model registry unreachable: %s", self.registry_error)
            if not self._current:
                self._load_local_copies()
            return []
        swapped = []
        for name, version in targets.items():
            served = self._current.get(name)
            if served is not None and served.version == version:
                continue
            candidate = self._load_version(client, name, version)
            if candidate is not None:
                self._swap(candidate)
                swapped.append(name)
        return swapped

    def _load_version(self, client: MlflowClient, name: str, version: str) -> ServedModel | None:
        kind = self.kinds[name]
        folder = self.cache_dir / name / version
        try:
            if not (folder / MODEL_ARTIFACT).exists():
                staging = self.cache_dir / name / f".{version}.partial"
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir(parents=True)
                # models:/ URIs resolve through the process-wide registry URI
                mlflow.set_tracking_uri(self.tracking_uri)
                mlflow.set_registry_uri(self.tracking_uri)
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{name}/{version}", dst_path=str(staging)
                )
                shutil.rmtree(folder, ignore_errors=True)
                shutil.copytree(Path(local) / "artifacts" / MODEL_ARTIFACT, folder / MODEL_ARTIFACT)
                shutil.rmtree(staging, ignore_errors=True)
                run_id = client.get_model_version(name, version).run_id
                metrics = client.get_run(run_id).data.metrics if run_id else {}
                (folder / "metrics.json").write_text(json.dumps(metrics))
            model = self._checked(kind, folder / MODEL_ARTIFACT)
        except Exception as exc:
            self.last_errors[name] = f"version {version} refused: {exc}"
            log.error("model %s v%s not served: %s", name, version, exc)
            return None
        (self.cache_dir / name / "last_good.json").write_text(json.dumps({"version": version}))
        self.last_errors.pop(name, None)
        metrics = (
            json.loads((folder / "metrics.json").read_text())
            if (folder / "metrics.json").exists()
            else {}
        )
        return ServedModel(name=name, version=version, model=model, metrics=metrics)

    def load_local_copies(self) -> None:
        """Serve the last good versions kept on disk (at start-up, before the registry answers)."""
        self._load_local_copies()

    def _load_local_copies(self) -> None:
        for name, kind in self.kinds.items():
            marker = self.cache_dir / name / "last_good.json"
            if not marker.exists():
                continue
            version = json.loads(marker.read_text())["version"]
            folder = self.cache_dir / name / version
            try:
                model = self._checked(kind, folder / MODEL_ARTIFACT)
            except Exception as exc:
                self.last_errors[name] = f"local copy v{version} refused: {exc}"
                continue
            metrics = (
                json.loads((folder / "metrics.json").read_text())
                if (folder / "metrics.json").exists()
                else {}
            )
            self._swap(
                ServedModel(
                    name=name, version=version, model=model, metrics=metrics, source="local copy"
                )
            )

    def _checked(self, kind: ModelKind, folder: Path) -> RmrecoModel:
        """Read a model's files and check it may be served (see the module docstring).

        Raises:
            ValueError: it may not; the message says why.
        """
        model = read_model(folder)
        mismatch = snapshot_mismatch(model, self.snapshot_params())
        if mismatch is not None:
            raise ValueError(mismatch)
        check_model(model, kind.family, self.check_rows())
        return model

    def _swap(self, served: ServedModel) -> None:
        self._current = {**self._current, served.name: served}
        log.info("serving %s v%s (%s)", served.name, served.version, served.source)
