"""This module owns the demo workflow: on the embedded defaults of the settings, a synthetic bank
generated once under ``<home>/demo-bank``, the database migrated and loaded, every model spec
of the models folder that has no champion yet trained and registered (credit risk first:
cross-sell grades financing offers with it), the feature snapshots refreshed, and the demo users
given their keys. What it did comes back as a :class:`DemoSummary` for the caller to show; the
``rmreco demo`` command prints it and starts the service.

Running it again reuses what is there, keys included: a second run while the first one still
serves must not lock its users out. The demo users' keys are kept in ``<home>/demo-keys.json``
(readable by its owner only), the one place a key is stored as more than its hash, and only for
these four users of a synthetic bank. A kept key is handed out again while it still opens its
user (not revoked, not replaced); otherwise, or when the file is gone, the user gets a new one.

One step is shared with ``rmreco ingest`` and ``rmreco features refresh``:
:func:`refresh_snapshots`, the feature snapshots computed with the champions' settings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
from mlflow import MlflowClient
from sqlalchemy import Engine

from rmreco.config import Settings
from rmreco.data.ingest import ingest_folder
from rmreco.db import repository as repo
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.db.migrate import upgrade
from rmreco.domain.contract import CLIENTS, Segment
from rmreco.domain.names import UserRole
from rmreco.modeling.spec import CreditRiskSpec, SpecFile, find_specs
from rmreco.serving.security import issue_key, key_matches
from rmreco.synthetic import generate_bank
from rmreco.training import credit_risk, cross_sell
from rmreco.training.credit_risk import train_credit_risk
from rmreco.training.cross_sell import train_cross_sell
from rmreco.training.registry import champion_version
from rmreco.training.snapshots import refresh_snapshots
from rmreco.training.tracking import configure_mlflow

#: The demo bank: its folder under the home, its history and seed.
BANK_FOLDER = "demo-bank"
BANK_MONTHS = 36
BANK_SEED = 7
#: Clients of the demo bank, and the shares of them that are corporates and persons: a
#: corporate credit model needs a few dozen corporate defaults to be trained and measured at
#: all (a low-default book), which one corporate in ten does not give; one client in five is a
#: person, served by a PRM. 3,750 clients keep the business book at about 1,800 SMEs and 1,200
#: corporates beside 750 persons.
DEMO_CLIENTS = 3750
BANK_CORPORATE_SHARE = 0.32
BANK_PERSONAL_SHARE = 0.2
#: The demo users: name, role, and the segment whose first RM they are (None: no portfolio).
DEMO_USERS: tuple[tuple[str, UserRole, Segment | None], ...] = (
    ("demo-admin", UserRole.ADMIN, None),
    ("demo-brm", UserRole.BRM, Segment.SME),
    ("demo-crm", UserRole.CRM, Segment.CORPORATE),
    ("demo-prm", UserRole.PRM, Segment.PERSONAL),
)
#: The demo users' keys, under the home (see the module docstring).
KEYS_FILE = "demo-keys.json"
#: The MLflow experiments the demo's training runs go to.
EXPERIMENTS = (credit_risk.DEFAULT_EXPERIMENT, cross_sell.DEFAULT_EXPERIMENT)

Step = Callable[[str], None]


@dataclass(frozen=True)
class ModelOutcome:
    """One model spec of the models folder and what the demo did with it."""

    name: str
    version: str
    #: False when a champion was registered already and nothing was trained
    was_trained: bool
    #: the gated metric of the new version, its value, and the gate's decision
    metric: str = ""
    value: float | None = None
    gate: str = ""
    #: why nothing was trained although no champion is registered (empty otherwise)
    skipped: str = ""


@dataclass(frozen=True)
class DemoUser:
    """A demo user and its API key: the one of the previous run while that still works,
    else a new one."""

    name: str
    role: str
    rm_id: str | None
    key: str
    #: False when the key is the previous run's (it keeps working), True when it was just issued
    is_new_key: bool = True


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`prepare_demo` did and what a person needs to try the service."""

    bank: Path
    database_url: str
    tracking_uri: str
    ingest_run: int
    clients_with_features: int
    models: tuple[ModelOutcome, ...]
    users: tuple[DemoUser, ...]
    #: a client of the demo BRM's portfolio and one of the demo CRM's, for the example requests
    sample_client: str
    sample_corporate_client: str
    base_url: str
    #: a client of the demo PRM's portfolio; None when the bank has no personal client (a demo
    #: bank generated before personal clients existed is reused as it is)
    sample_personal_client: str | None = None
    #: the MLflow experiments holding the demo's training runs: {name: experiment id}
    experiments: dict[str, str] = field(default_factory=dict)
    #: where the demo users' keys are kept (see the module docstring)
    keys_file: Path | None = None

    @property
    def workspace_url(self) -> str:
        """The RM workspace's sign-in page."""
        return f"{self.base_url}/"

    @property
    def docs_url(self) -> str:
        return f"{self.base_url}/docs"

    @property
    def readiness_url(self) -> str:
        return f"{self.base_url}/readyz"

    def user(self, name: str) -> DemoUser:
        """The demo user called ``name`` (one of :data:`DEMO_USERS`)."""
        return next(u for u in self.users if u.name == name)


def prepare_demo(
    settings: Settings,
    *,
    clients: int = DEMO_CLIENTS,
    base_url: str = "http://127.0.0.1:8000",
    on_step: Step | None = None,
) -> DemoSummary:
    """Make the embedded defaults of ``settings`` ready to serve the demo (see the module
    docstring). Running it again reuses the bank, the champions and the keys that still work.

    Args:
        settings: where the home, database, tracking store and models folder are.
        clients: clients of the demo bank, when it is generated.
        base_url: where the service will answer, for the URLs of the summary.
        on_step: told each step as it starts (the training jobs' steps included).

    Raises:
        ConfigurationError: the models folder or a spec in it is invalid.
        DataContractError, DatabaseError, TrainingDataError: as the steps they come from.
    """
    step = on_step or (lambda message: None)
    bank = settings.ensure_home() / BANK_FOLDER
    if not (bank / "clients.parquet").exists():
        step(f"generating a synthetic bank of {clients:,} clients in {bank}")
        generate_bank(
            bank,
            n_clients=clients,
            n_months=BANK_MONTHS,
            seed=BANK_SEED,
            corporate_share=BANK_CORPORATE_SHARE,
            personal_share=BANK_PERSONAL_SHARE,
        )
    url = settings.resolved_database_url
    step("migrating the database")
    upgrade(url)
    engine = create_engine_for(url)
    try:
        step(f"loading {bank} into the database")
        run_id = ingest_folder(bank, engine, settings=settings).run_id
        tracking_uri = configure_mlflow(settings)
        models = _train_missing(settings, bank, step)
        # after training: the snapshots are computed with the settings of the models they serve
        refreshed = refresh_snapshots(
            url, settings, on_step=lambda message: step(f"feature snapshots: {message}")
        )
        step("the demo users' keys")
        keys_file = settings.home / KEYS_FILE
        users, samples = _demo_users(engine, keys_file)
        experiments = _experiments()
    finally:
        engine.dispose()
    return DemoSummary(
        bank=bank,
        database_url=url,
        tracking_uri=tracking_uri,
        ingest_run=run_id,
        clients_with_features=refreshed,
        models=models,
        users=users,
        sample_client=samples.get(Segment.SME) or "C0000001",
        sample_corporate_client=samples.get(Segment.CORPORATE) or "C0000001",
        sample_personal_client=samples.get(Segment.PERSONAL),
        base_url=base_url,
        experiments=experiments,
        keys_file=keys_file,
    )


def _train_missing(settings: Settings, bank: Path, step: Step) -> tuple[ModelOutcome, ...]:
    """Train and register each spec of the models folder without a champion, credit-risk
    specs first (the cross-sell job grades financing offers with their champions); MLflow is
    configured."""
    specs = sorted(
        find_specs(settings.resolved_models_dir),
        key=lambda found: not isinstance(found.spec, CreditRiskSpec),
    )
    segments = _bank_segments(bank)
    return tuple(_train_if_missing(found, settings, bank, segments, step) for found in specs)


def _bank_segments(bank: Path) -> set[str]:
    """The segments of the demo bank's clients."""
    column = pq.read_table(bank / f"{CLIENTS.name}.parquet", columns=["segment"])["segment"]
    return {str(segment) for segment in column.unique().to_pylist()}


def _train_if_missing(
    found: SpecFile, settings: Settings, bank: Path, segments: set[str], step: Step
) -> ModelOutcome:
    name = found.spec.name
    champion = champion_version(MlflowClient(), name)
    if champion is not None:
        return ModelOutcome(name=name, version=champion, was_trained=False)
    wanted = [str(segment) for segment in found.spec.segments]
    if not segments & set(wanted):
        # a demo bank generated by an older version, before it had personal clients
        return ModelOutcome(
            name=name,
            version="",
            was_trained=False,
            skipped=f"the demo bank {bank} has no {' or '.join(wanted)} client (it was "
            f"generated by an older version); run the demo from an empty home ({settings.home}) "
            "to have one generated",
        )
    job = train_credit_risk if isinstance(found.spec, CreditRiskSpec) else train_cross_sell
    result = job(
        bank,
        spec_path=found.path,
        settings=settings,
        on_step=lambda message: step(f"training {name}: {message}"),
    )
    metric = result.gate.metric
    return ModelOutcome(
        name=name,
        version=result.version,
        was_trained=True,
        metric=metric,
        value=result.metrics.get(metric),
        gate=result.gate.reason,
    )


def _experiments() -> dict[str, str]:
    """The ids of the demo's training experiments that exist (MLflow is configured)."""
    client = MlflowClient()
    found = {name: client.get_experiment_by_name(name) for name in EXPERIMENTS}
    return {name: str(e.experiment_id) for name, e in found.items() if e is not None}


def _read_keys(path: Path) -> dict[str, str]:
    """The kept keys by user name; none when the file is missing or unreadable (the users
    then get new keys, which is what deleting the file asks for)."""
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(kept, dict):
        return {}
    return {str(name): key for name, key in kept.items() if isinstance(key, str)}


def _write_keys(path: Path, keys: dict[str, str]) -> None:
    """Keep ``keys`` in ``path``, readable and writable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # the mode above applies to a new file only: one made otherwise is narrowed before writing
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(keys, file, indent=2)


def _demo_users(engine: Engine, keys_file: Path) -> tuple[tuple[DemoUser, ...], dict[Segment, str]]:
    """Create the demo users, each tied to the first RM (by client order) of its segment (none
    when no client of the segment is loaded), with the key kept in ``keys_file`` while it still
    opens its user, else a new one; keep the keys in ``keys_file``. Also the first client of each
    such RM's portfolio, by segment."""
    kept = _read_keys(keys_file)
    with transaction(session_factory(engine)) as session:
        rows = repo.client_portfolios(session)
        portfolios: dict[str, list[str]] = {}
        segment_rm: dict[str, str] = {}
        for client_rm, client_segment, client_id in rows:
            if client_rm is not None:
                portfolios.setdefault(client_rm, []).append(client_id)
                segment_rm.setdefault(client_segment, client_rm)
        users = []
        samples: dict[Segment, str] = {}
        for name, role, segment in DEMO_USERS:
            rm_id = segment_rm.get(segment) if segment is not None else None
            if segment is not None and rm_id is not None:
                samples[segment] = portfolios[rm_id][0]
            existing = repo.user_by_name(session, name)
            previous = kept.get(name)
            if (
                existing is not None
                and not existing.is_revoked
                and previous is not None
                and key_matches(previous, existing.api_key_hash)
            ):
                users.append(
                    DemoUser(
                        name=name,
                        role=existing.role,
                        rm_id=existing.rm_id,
                        key=previous,
                        is_new_key=False,
                    )
                )
                continue
            key = issue_key()
            if existing is None:
                repo.add_user(
                    session,
                    name=name,
                    role=role,
                    rm_id=rm_id,
                    key_prefix=key.prefix,
                    key_hash=key.hash,
                )
            else:
                repo.set_user_key(session, name, key_prefix=key.prefix, key_hash=key.hash)
            users.append(DemoUser(name=name, role=role.value, rm_id=rm_id, key=key.key))
    _write_keys(keys_file, {user.name: user.key for user in users})
    return tuple(users), samples
