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
good one, so that a restart while the registry is unreachable still serves it. When a version
replaces another, the local copies of older versions are removed: the one in use and the one it
replaced stay (the alias moved back needs no download, and a worker that has not swapped yet
still finds its files).

Each served model carries its provenance for the audit trail (:meth:`ServedModel.provenance`):
the MLflow run that trained the version, the sha256 of the model files the service loaded
(:func:`artifact_sha256`, computed once at load) and whether it came through the registry or
from the local copy. The digest recorded when a version was downloaded also guards its local
copy: a copy whose files no longer give it is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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

#: Where a served model came from: the version the registry's alias named, downloaded or found
#: already downloaded (``registry``), or the last good copy on disk loaded without the registry
#: (``local_copy``, at start-up before the registry answers, or while it is unreachable).
ServedFrom = Literal["registry", "local_copy"]
#: The file beside a version's local copy that records its training run and artifact digest.
PROVENANCE_FILE = "provenance.json"
LAST_GOOD_FILE = "last_good.json"


def artifact_sha256(folder: Path) -> str:
    """The sha256 of a model's files: every file under ``folder`` in the order of its relative
    path, each as its path, its size and its bytes (so that moving bytes from one file to
    another changes the digest). The same files give the same digest on every machine: an
    auditor recomputes it over ``<artifacts of models:/name/version>/artifacts/model``.

    Raises:
        ValueError: ``folder`` holds no file.
    """
    files = sorted(
        (p for p in folder.rglob("*") if p.is_file()),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    if not files:
        raise ValueError(f"{folder} holds no model file")
    digest = hashlib.sha256()
    for path in files:
        name = path.relative_to(folder).as_posix().encode()
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` to ``path`` whole or not at all (several workers read these files)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dict(data), handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; empty when the file is missing."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


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
    """A model in use, with what the audit trail records of it."""

    name: str
    version: str
    model: RmrecoModel
    #: sha256 of the model files loaded (:func:`artifact_sha256`)
    artifact_sha256: str
    #: the MLflow run that trained the version (None: a local copy that does not record it)
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    source: ServedFrom = "registry"
    loaded_at: float = field(default_factory=time.time)

    def provenance(self) -> dict[str, Any]:
        """What an audit row records of this model: version, training run, artifact digest and
        where it was served from."""
        return {
            "version": self.version,
            "run_id": self.run_id,
            "artifact_sha256": self.artifact_sha256,
            "served_from": self.source,
        }


def model_versions(served: Iterable[ServedModel]) -> dict[str, str]:
    """``{name: version}`` of the models that produced an answer."""
    return {s.name: s.version for s in served}


def model_provenance(served: Iterable[ServedModel]) -> dict[str, dict[str, Any]]:
    """``{name: provenance}`` of the models that produced an answer (see
    :meth:`ServedModel.provenance`)."""
    return {s.name: s.provenance() for s in served}


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
        # the follower and an admin's reload may both refresh: one at a time, so that a
        # download, a swap and the removal of old copies never interleave
        self._refreshing = threading.Lock()

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
        with self._refreshing:
            return self._refresh()

    def _refresh(self) -> list[str]:
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
                self._prune(name, keep={version, *([served.version] if served else [])})
                swapped.append(name)
        return swapped

    def _download(self, name: str, version: str, folder: Path) -> None:
        """Download a version's model files into ``folder`` (its local copy), whole or not at
        all: into a staging folder of this process first, then renamed into place, so that
        another worker never reads half a copy."""
        staging = Path(tempfile.mkdtemp(dir=self.cache_dir / name, prefix=f".{version}.download-"))
        try:
            # models:/ URIs resolve through the process-wide registry URI
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=str(staging / "download")
            )
            shutil.copytree(Path(local) / "artifacts" / MODEL_ARTIFACT, staging / MODEL_ARTIFACT)
            shutil.rmtree(folder / MODEL_ARTIFACT, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(staging / MODEL_ARTIFACT, folder / MODEL_ARTIFACT)
            except OSError:
                # another worker put the same version's files in place first: those serve
                if not (folder / MODEL_ARTIFACT).exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _load_version(self, client: MlflowClient, name: str, version: str) -> ServedModel | None:
        (self.cache_dir / name).mkdir(parents=True, exist_ok=True)
        # the workers of a service share the copies: one at a time downloads, reads and checks
        # a version's copy, so that none deletes the files another is reading (the second finds
        # the first's copy recorded and whole, and reads it without downloading again)
        with copy_lock(self.cache_dir / name, version):
            return self._load_version_locked(client, name, version)

    def _load_version_locked(
        self, client: MlflowClient, name: str, version: str
    ) -> ServedModel | None:
        kind = self.kinds[name]
        folder = self.cache_dir / name / version
        try:
            recorded = _read_json(folder / PROVENANCE_FILE)
            kept = (folder / MODEL_ARTIFACT).exists()
            digest = artifact_sha256(folder / MODEL_ARTIFACT) if kept else None
            fresh = False
            if digest is None or recorded.get("artifact_sha256") != digest:
                # no copy yet, or one left half-written or changed since its download
                self._download(name, version, folder)
                digest, fresh = artifact_sha256(folder / MODEL_ARTIFACT), True
            run_id = client.get_model_version(name, version).run_id or None
            if fresh or not (folder / "metrics.json").exists():
                metrics = client.get_run(run_id).data.metrics if run_id else {}
                _write_json(folder / "metrics.json", metrics)
            model = self._checked(kind, folder / MODEL_ARTIFACT)
        except Exception as exc:
            self.last_errors[name] = f"version {version} refused: {exc}"
            log.error("model %s v%s not served: %s", name, version, exc)
            return None
        _write_json(
            folder / PROVENANCE_FILE,
            {"version": version, "run_id": run_id, "artifact_sha256": digest},
        )
        _write_json(self.cache_dir / name / LAST_GOOD_FILE, {"version": version})
        self.last_errors.pop(name, None)
        return ServedModel(
            name=name,
            version=version,
            model=model,
            artifact_sha256=digest,
            run_id=run_id,
            metrics=_read_json(folder / "metrics.json"),
            source="registry",
        )

    def load_local_copies(self) -> None:
        """Serve the last good versions kept on disk (at start-up, before the registry answers)."""
        with self._refreshing:
            self._load_local_copies()

    def _load_local_copies(self) -> None:
        for name, kind in self.kinds.items():
            marker = self.cache_dir / name / LAST_GOOD_FILE
            if not marker.exists():
                continue
            version = "?"
            try:
                version = str(_read_json(marker)["version"])
                folder = self.cache_dir / name / version
                with copy_lock(self.cache_dir / name, version):
                    recorded = _read_json(folder / PROVENANCE_FILE)
                    digest = artifact_sha256(folder / MODEL_ARTIFACT)
                    if recorded.get("artifact_sha256") not in (None, digest):
                        raise ValueError(
                            "its files changed since they were downloaded (sha256 "
                            f"{digest[:12]}..., recorded "
                            f"{str(recorded['artifact_sha256'])[:12]}...)"
                        )
                    model = self._checked(kind, folder / MODEL_ARTIFACT)
            except Exception as exc:
                self.last_errors[name] = f"local copy v{version} refused: {exc}"
                continue
            self._swap(
                ServedModel(
                    name=name,
                    version=version,
                    model=model,
                    artifact_sha256=digest,
                    run_id=recorded.get("run_id"),
                    metrics=_read_json(folder / "metrics.json"),
                    source="local_copy",
                )
            )

    def _prune(self, name: str, keep: set[str]) -> None:
        """Remove the local copies of ``name`` other than the versions in ``keep`` (the one
        just swapped in and the one it replaced). Staging folders of downloads under way
        (hidden, ``.<version>.download-*``) are left to the process that owns them, and so are
        copies another worker holds (see :func:`copy_lock`)."""
        folder = self.cache_dir / name
        keep = keep | {str(_read_json(folder / LAST_GOOD_FILE).get("version"))}
        for path in folder.iterdir():
            if path.is_dir() and not path.name.startswith(".") and path.name not in keep:
                # a copy another worker is loading now is left to a later prune
                with copy_lock(folder, path.name, wait=False) as held:
                    if held:
                        shutil.rmtree(path, ignore_errors=True)
                        log.info("removed the local copy of %s v%s", name, path.name)

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


@contextlib.contextmanager
def copy_lock(folder: Path, version: str, *, wait: bool = True) -> Iterator[bool]:
    """Hold the lock of one version's local copy in ``folder`` (a model's copies) across the
    processes of the service (an exclusive ``flock`` on a hidden ``.<version>.lock`` file);
    yields whether it is held (always, when ``wait``; without ``wait``, False when another
    process holds it). The lock ends with the block, or with the process."""
    with (folder / f".{version}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
