"""A process killed during ingest, during the feature refresh after it, or during batch scoring
leaves nothing partial, and the rerun completes; an owed refresh is reported by ``/readyz`` and
completed by ``rmreco features refresh`` and by the service's start. On SQLite and PostgreSQL.

The kills are real (``kill -9`` of an ``rmreco`` process), timed on state the database or the
file system shows: a load is killed while it holds SQLite's write lock before its run is
visible, or while it holds PostgreSQL's row lock on ``ingest_runs`` (its uncommitted run); a
refresh while it holds the write lock after the load's run is visible, or PostgreSQL's refresh
advisory lock; batch scoring just after its first output file appears.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient
from mlflow_store import new_store
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from rmreco.cli import app as cli
from rmreco.config import Settings
from rmreco.data.ingest import ingest_folder
from rmreco.db import repository, schema
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.db.migrate import upgrade
from rmreco.features.config import SnapshotParams
from rmreco.features.snapshots import SnapshotState, refresh_client_features, snapshot_state
from rmreco.serving.app import create_app
from rmreco.serving.security import issue_key
from rmreco.synthetic import generate_bank
from rmreco.training.credit_risk import train_credit_risk

# commands run in subprocesses on a 600-client bank; kills timed on what the database shows
pytestmark = [pytest.mark.slow, pytest.mark.serial]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
POLICY = ROOT / "models" / "credit_policy.yaml"
#: the bank a killed command loads: large enough that its write (about 0.4 s on SQLite) and its
#: refresh (about 1 s) are long beside the probes' millisecond, small enough to run in seconds
CLIENTS, MONTHS = 600, 24

#: PostgreSQL: a backend other than the probe's holds the row lock of an uncommitted ingest run
PG_LOADING = """
SELECT EXISTS (
    SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
    WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND c.relname = 'ingest_runs' AND l.mode = 'RowExclusiveLock'
      AND l.pid <> pg_backend_pid()
)"""
#: PostgreSQL: a backend holds the advisory lock every feature refresh takes first
PG_REFRESHING = """
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
)"""


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crash") / "bank"
    generate_bank(out, n_clients=CLIENTS, n_months=MONTHS, seed=3)
    return out


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of the commands, in subprocesses and in this one: a home of the test's
    own and a models folder without specs (no champion: the builder's defaults)."""
    models = tmp_path / "no-models"
    models.mkdir()
    own = {"RMRECO_HOME": str(tmp_path / "home"), "RMRECO_MODELS_DIR": str(models)}
    for name, value in own.items():
        monkeypatch.setenv(name, value)
    outside = {k: v for k, v in os.environ.items() if not k.startswith(("RMRECO_", "MLFLOW_"))}
    return {**outside, **own}


@dataclass(frozen=True)
class Seen:
    """What a database holds: rows per table (the contract's, the runs, the snapshots) and the
    snapshots' state."""

    rows: dict[str, int]
    state: SnapshotState


def _seen(url: str) -> Seen:
    engine = create_engine_for(url)
    try:
        with transaction(session_factory(engine), read_only=True) as session:
            models = [*schema.CONTRACT_MODELS.values(), schema.IngestRun, schema.ClientFeatures]
            rows = {
                str(m.__tablename__): int(session.scalar(select(func.count()).select_from(m)) or 0)
                for m in models
            }
            return Seen(rows, snapshot_state(session))
    finally:
        engine.dispose()


def _baseline(url: str, tiny_bank: Path, home: Path) -> Seen:
    """The tiny bank loaded and its snapshots refreshed: ingest run 1, nothing owed."""
    upgrade(url)
    engine = create_engine_for(url)
    try:
        ingest_folder(tiny_bank, engine, settings=Settings(home=home))
        with transaction(session_factory(engine)) as session:
            refresh_client_features(session, SnapshotParams())
    finally:
        engine.dispose()
    seen = _seen(url)
    assert seen.state.latest_run == 1
    assert not seen.state.owed
    return seen


class Probe:
    """Reads the database the way an outsider can while another process writes to it; it
    connects at its first read (after the test has made the database)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._sqlite: sqlite3.Connection | None = None
        self._pg: psycopg.Connection | None = None

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.url).get_backend_name() == "sqlite"

    @property
    def sqlite(self) -> sqlite3.Connection:
        if self._sqlite is None:
            # autocommit, and no wait for a lock: a locked database answers at once
            self._sqlite = sqlite3.connect(make_url(self.url).database or "", timeout=0)
            self._sqlite.isolation_level = None
        return self._sqlite

    @property
    def pg(self) -> psycopg.Connection:
        if self._pg is None:
            plain = make_url(self.url).set(drivername="postgresql")
            self._pg = psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True)
        return self._pg

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pg is not None:
            self._pg.close()

    def runs(self) -> int:
        """Ingest runs visible (committed)."""
        query = "SELECT count(*) FROM ingest_runs"
        row = (self.sqlite if self.is_sqlite else self.pg).execute(query).fetchone()
        return int(row[0]) if row else 0

    def _sqlite_writing(self) -> bool:
        try:
            self.sqlite.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # "database is locked": a writer holds the lock
            return True
        self.sqlite.execute("ROLLBACK")
        return False

    def _pg_holds(self, query: str) -> bool:
        row = self.pg.execute(query).fetchone()
        return bool(row and row[0])

    def loading(self, runs_before: int) -> Callable[[], bool]:
        """True while a load's transaction is open and its run not yet committed."""
        if self.is_sqlite:
            return lambda: self._sqlite_writing() and self.runs() == runs_before
        return lambda: self._pg_holds(PG_LOADING)

    def refreshing(self, runs_before: int) -> Callable[[], bool]:
        """True while a feature refresh's transaction is open after the load committed."""
        if self.is_sqlite:
            return lambda: self.runs() == runs_before + 1 and self._sqlite_writing()
        return lambda: self._pg_holds(PG_REFRESHING)

    def wait_until_alone(self, seconds: float = 30) -> None:
        """PostgreSQL: wait until the killed process's backend has noticed and rolled back."""
        if self.is_sqlite:
            return
        deadline = time.monotonic() + seconds
        query = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        while (row := self.pg.execute(query).fetchone()) and row[0]:
            assert time.monotonic() < deadline, "the killed load's backend is still there"
            time.sleep(0.05)


@pytest.fixture
def probe(db_url: str) -> Iterator[Probe]:
    probe = Probe(db_url)
    yield probe
    probe.close()


def _kill_when(args: list[str], env: dict[str, str], moment: Callable[[], bool], log: Path) -> int:
    """Run ``rmreco args`` and kill -9 it as soon as ``moment()`` is true; its exit code (that
    of a kill, unless it ended on its own between the moment and the kill)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "rmreco"), *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while not moment():
            assert process.poll() is None, f"it ended before the moment came:\n{log.read_text()}"
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.001)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()  # nothing once it is gone
        process.wait()
    return process.returncode


def _added(seen: Seen, before: Seen) -> dict[str, int]:
    return {table: seen.rows[table] - before.rows[table] for table in seen.rows}


def test_a_load_killed_mid_write_leaves_the_database_as_it_was_and_the_rerun_completes(
    db_url: str, bank: Path, tiny_bank: Path, env: dict[str, str], probe: Probe, tmp_path: Path
) -> None:
    before = _baseline(db_url, tiny_bank, tmp_path / "home")
    code = _kill_when(
        ["ingest", str(bank), "--db", db_url],
        env,
        probe.loading(before.rows["ingest_runs"]),
        tmp_path / "ingest.log",
    )
    assert code == -signal.SIGKILL, (tmp_path / "ingest.log").read_text()
    probe.wait_until_alone()
    # nothing of the killed load: no run, not a row of any table, the snapshots as they were
    assert _seen(db_url) == before

    rerun = CliRunner().invoke(cli, ["ingest", str(bank), "--db", db_url])
    assert rerun.exit_code == 0, rerun.output
    after = _seen(db_url)
    added = _added(after, before)
    assert added["ingest_runs"] == 1
    assert added["clients"] == CLIENTS
    assert added["client_features"] == CLIENTS
    # (PostgreSQL's sequence gave the killed load's run a number its rollback did not return)
    assert after.state.computed_from == after.state.latest_run
    assert not after.state.owed


def test_a_refresh_killed_midway_keeps_the_load_owes_the_refresh_and_the_service_completes_it(
    db_url: str, bank: Path, tiny_bank: Path, env: dict[str, str], probe: Probe, tmp_path: Path
) -> None:
    before = _baseline(db_url, tiny_bank, tmp_path / "home")
    code = _kill_when(
        ["ingest", str(bank), "--db", db_url],
        env,
        probe.refreshing(before.rows["ingest_runs"]),
        tmp_path / "ingest.log",
    )
    assert code == -signal.SIGKILL, (tmp_path / "ingest.log").read_text()
    probe.wait_until_alone()
    killed = _seen(db_url)
    # the load is committed whole; the snapshots are the previous load's, whole; a refresh owed
    added = _added(killed, before)
    assert added["ingest_runs"] == 1
    assert added["clients"] == CLIENTS
    assert added["client_features"] == 0
    assert killed.state.computed_from == 1
    assert (killed.state.latest_run or 0) > 1
    assert killed.state.owed

    # the service's start completes it, in the background; /readyz says when it is done
    settings = Settings(
        home=tmp_path / "svc", models_dir=Path(env["RMRECO_MODELS_DIR"]), database_url=db_url
    )
    unreachable = "http://127.0.0.1:9"  # no registry: the refresh must not need one
    with TestClient(
        create_app(settings, tracking_uri=unreachable, policy_path=POLICY, poll_seconds=3600)
    ) as service:
        deadline = time.monotonic() + 60
        while (ready := service.get("/readyz").json())["refresh_owed"] is not False:
            assert time.monotonic() < deadline, ready
            time.sleep(0.1)
    repaired = _seen(db_url)
    assert _added(repaired, before)["client_features"] == CLIENTS
    assert repaired.state.computed_from == repaired.state.latest_run == killed.state.latest_run
    assert not repaired.state.owed


def _keys(url: str) -> dict[str, str]:
    engine = create_engine_for(url)
    keys = {}
    try:
        with transaction(session_factory(engine)) as session:
            for role in ("admin", "data_scientist", "brm"):
                key = issue_key()
                repository.add_user(
                    session,
                    name=f"{role}-user",
                    role=role,
                    rm_id="RM01" if role == "brm" else None,
                    key_prefix=key.prefix,
                    key_hash=key.hash,
                )
                keys[role] = key.key
    finally:
        engine.dispose()
    return keys


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_readyz_reports_an_owed_refresh_until_features_refresh_completes_it(
    db_url: str, bank: Path, tiny_bank: Path, env: dict[str, str], tmp_path: Path
) -> None:
    _baseline(db_url, tiny_bank, tmp_path / "home")
    keys = _keys(db_url)
    settings = Settings(
        home=tmp_path / "svc", models_dir=Path(env["RMRECO_MODELS_DIR"]), database_url=db_url
    )
    app = create_app(settings, tracking_uri="http://127.0.0.1:9", policy_path=POLICY)
    with TestClient(app) as service:
        assert service.get("/readyz").json()["refresh_owed"] is False
        # a load whose refresh never ran (as when its process is killed between the two)
        engine = create_engine_for(db_url)
        try:
            ingest_folder(bank, engine, settings=settings)
        finally:
            engine.dispose()
        public = service.get("/readyz")
        assert public.status_code == 503
        assert public.json()["refresh_owed"] is True
        assert public.json()["ready"] is False
        detail = service.get("/readyz", headers=_bearer(keys["data_scientist"])).json()
        said = detail["errors"]["feature_refresh"]
        assert "the latest load is ingest run 2" in said
        assert "feature snapshots are of ingest run 1" in said

        refreshed = CliRunner().invoke(cli, ["features", "refresh", "--db", db_url])
        assert refreshed.exit_code == 0, refreshed.output
        assert "completed the refresh that was owed" in refreshed.output
        assert service.get("/readyz").json()["refresh_owed"] is False
        detail = service.get("/readyz", headers=_bearer(keys["admin"])).json()
        assert "feature_refresh" not in detail["errors"]


def test_readyz_shows_versions_and_error_texts_only_to_admin_and_data_scientist_keys(
    sqlite_url: str, tiny_bank: Path, env: dict[str, str], tmp_path: Path
) -> None:
    _baseline(sqlite_url, tiny_bank, tmp_path / "home")
    keys = _keys(sqlite_url)
    registry = "http://127.0.0.1:9/registry-at-a-secret-host"
    settings = Settings(home=tmp_path / "svc", models_dir=ROOT / "models", database_url=sqlite_url)
    app = create_app(settings, tracking_uri=registry, policy_path=POLICY, poll_seconds=3600)
    with TestClient(app) as service:
        deadline = time.monotonic() + 60
        while (answer := service.get("/readyz")).json()["registry"] != "unreachable":
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.1)
        # public: load balancers call it without a key; so does anyone else
        for headers in (
            {},
            _bearer(keys["brm"]),
            _bearer("rmk_00000000_not-a-key"),
            {"Authorization": "Basic dXNlcjpwYXNz"},
        ):
            public = service.get("/readyz", headers=headers)
            assert public.status_code == 503, public.text  # no model: not ready, not a 401
            body = public.json()
            assert body["models"] is None
            assert body["errors"] is None
            assert body["database"] == "ok"
            assert "127.0.0.1" not in public.text
            assert str(tmp_path) not in public.text
        for role in ("admin", "data_scientist"):
            detail = service.get("/readyz", headers=_bearer(keys[role])).json()
            assert detail["models"] == {}
            assert "registry-at-a-secret-host" in detail["errors"]["registry"]


# --- batch scoring ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def champion(bank: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A credit champion trained quickly on the bank (the tracking URI)."""
    folder = tmp_path_factory.mktemp("mlflow")
    raw = yaml.safe_load((ROOT / "models" / "sme_credit_risk.yaml").read_text())
    raw["model"]["lightgbm"].update(num_boost_round=20)
    raw["model"]["lightgbm"]["params"]["learning_rate"] = 0.2
    raw["gates"].update(min_auc=0.5, max_auc_drop=1.0)  # not the point here
    raw["validation"].update(bootstrap_resamples=20, monotonicity_sample=20)
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    uri = new_store(folder, tmp_path_factory)
    result = train_credit_risk(
        bank, spec_path=spec, settings=Settings(home=folder / "home"), tracking_uri=uri
    )
    assert result.gate.passed
    return uri


def _as_of_months(out: Path) -> dict[str, set[date]]:
    """The as-of month of each output file; reading a file also proves it whole."""
    return {
        path.name: {pd.Timestamp(v).date() for v in pd.read_parquet(path)["as_of"].unique()}
        for path in sorted(out.glob("*.parquet"))
    }


def test_batch_scoring_killed_midway_leaves_whole_files_of_one_run_and_the_rerun_completes(
    bank: Path, champion: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RMRECO_HOME", str(tmp_path / "home"))
    out = tmp_path / "scores"
    earlier, later = date(2023, 10, 1), date(2023, 12, 1)

    def score(month: date) -> list[str]:
        return ["score-batch", "--data", str(bank), "--as-of", f"{month:%Y-%m}", "--out",
                str(out), "--tracking-uri", champion]  # fmt: skip

    first = CliRunner().invoke(cli, score(earlier))
    assert first.exit_code == 0, first.output
    files = _as_of_months(out)
    assert set(files) == {"credit.parquet", "financing.parquet"}
    assert all(months == {earlier} for months in files.values())
    credit = out / "credit.parquet"
    written = credit.stat().st_mtime_ns

    def first_file_replaced() -> bool:
        if credit.stat().st_mtime_ns == written:
            return False
        # kill a little later: long after a rename of every file at once, well before the
        # next file of a run that wrote its files one by one (200 ms and more apart here)
        time.sleep(0.05)
        return True

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RMRECO_", "MLFLOW_"))}
    env["RMRECO_HOME"] = str(tmp_path / "home")
    code = _kill_when(score(later), env, first_file_replaced, tmp_path / "score.log")
    # killed, or (rarely) ended on its own within those 50 ms: either way, nothing partial
    assert code in (-signal.SIGKILL, 0), (tmp_path / "score.log").read_text()
    # every file whole, and all of one run: never a later credit file beside an earlier
    # financing file
    killed = _as_of_months(out)
    assert set(killed) == {"credit.parquet", "financing.parquet"}
    assert len({frozenset(months) for months in killed.values()}) == 1, killed

    rerun = CliRunner().invoke(cli, score(later))
    assert rerun.exit_code == 0, rerun.output
    assert all(months == {later} for months in _as_of_months(out).values())
