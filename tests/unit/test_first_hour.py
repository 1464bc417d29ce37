"""A newcomer's first hour, the quick part: `rmreco serve` refuses a database it cannot serve
from before it starts, `rmreco demo` refuses a taken port before any of its work, the demo's
summary says where to go (and no MLflow UI on port 5000), and the library tells its progress
(rows per table while loading, steps while refreshing) to whoever listens."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rmreco.cli import app
from rmreco.cli.main import EXIT_DATABASE, EXIT_FAILED
from rmreco.cli.serve import DEMO_MLFLOW_PORT, _print_demo
from rmreco.config import Settings
from rmreco.data.ingest import ingest_folder
from rmreco.db.engine import create_engine_for, session_factory, transaction
from rmreco.db.migrate import downgrade, head_revision, upgrade
from rmreco.demo import DemoSummary, DemoUser
from rmreco.features.config import SnapshotParams
from rmreco.features.snapshots import refresh_client_features

runner = CliRunner()


def _squeezed(text: str) -> str:
    """Text without the white space rich wraps long lines at."""
    return re.sub(r"\s", "", text)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty RMRECO_HOME and no other RMRECO_* setting from the caller's environment."""
    for name in ("RMRECO_DATABASE_URL", "RMRECO_TRACKING_URI", "RMRECO_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "home"
    monkeypatch.setenv("RMRECO_HOME", str(folder))
    return folder


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The calls that would have started the service (none is started)."""
    calls: list[dict[str, Any]] = []

    def fake_serve(settings: Settings, **options: Any) -> None:
        calls.append(options)

    monkeypatch.setattr("rmreco.serving.server.serve", fake_serve)
    return calls


def _database(home: Path) -> str:
    return Settings(home=home).resolved_database_url


def test_serve_refuses_a_database_that_was_never_migrated(
    home: Path, started: list[dict[str, Any]]
) -> None:
    result = runner.invoke(app, ["serve", "--port", "1"])
    assert result.exit_code == EXIT_DATABASE, result.output
    assert started == [], "the service started on a database without rmreco's schema"
    squeezed = _squeezed(result.output)
    assert "hasnormrecoschema" in squeezed
    assert "rmrecodbupgrade" in squeezed


def test_serve_refuses_a_database_at_an_older_revision(
    home: Path, started: list[dict[str, Any]]
) -> None:
    url = _database(home)
    upgrade(url)
    downgrade(url, "-1")
    result = runner.invoke(app, ["serve", "--port", "1"])
    assert result.exit_code == EXIT_DATABASE, result.output
    assert started == []
    squeezed = _squeezed(result.output)
    assert f"needsrevision{head_revision()}" in squeezed
    assert "rmrecodbupgrade" in squeezed


def test_serve_starts_on_a_database_at_the_newest_revision(
    home: Path, started: list[dict[str, Any]]
) -> None:
    upgrade(_database(home))
    result = runner.invoke(app, ["serve", "--port", "1"])
    assert result.exit_code == 0, result.output
    assert [call["port"] for call in started] == [1]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def test_demo_refuses_a_taken_port_before_doing_anything(
    home: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared: list[object] = []
    monkeypatch.setattr("rmreco.demo.prepare_demo", lambda *a, **k: prepared.append(a))
    result = runner.invoke(app, ["demo", "--port", str(taken_port)])
    assert result.exit_code == EXIT_FAILED, result.output
    assert prepared == [], "the demo did its work (and changed its users' keys) first"
    assert not home.exists() or list(home.iterdir()) == []
    squeezed = _squeezed(result.output)
    assert f"port{taken_port}" in squeezed
    assert f"DEMO_PORT={taken_port + 1}makedemo" in squeezed
    assert f"rmrecodemo--port{taken_port + 1}" in squeezed


def _summary(experiments: dict[str, str]) -> DemoSummary:
    users = tuple(
        DemoUser(name=name, role=role, rm_id=rm, key=f"rmr_{name}_key", is_new_key=False)
        for name, role, rm in (
            ("demo-admin", "admin", None),
            ("demo-brm", "brm", "RM0001"),
            ("demo-crm", "crm", "RM0002"),
            ("demo-prm", "prm", "RM0003"),
        )
    )
    return DemoSummary(
        bank=Path("/bank"),
        database_url="sqlite:////home/rmreco.db",
        tracking_uri="sqlite:////home/mlflow.db",
        ingest_run=1,
        clients_with_features=10,
        models=(),
        users=users,
        sample_client="C0000001",
        sample_corporate_client="C0000002",
        base_url="http://127.0.0.1:8123",
        experiments=experiments,
        keys_file=Path("/home/demo-keys.json"),
    )


def test_the_demo_summary_says_what_to_open_and_never_port_5000(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _print_demo(_summary({"rmreco-credit-risk": "7"}), mlflow_port=DEMO_MLFLOW_PORT)
    printed = capsys.readouterr().out
    assert "open http://127.0.0.1:8123/ and sign in" in printed
    assert "demo-brm" in printed.split("open http://127.0.0.1:8123/ and sign in")[1].splitlines()[0]
    assert "http://127.0.0.1:8123/docs (Authorize" in printed
    assert DEMO_MLFLOW_PORT != 5000
    assert f"mlflow ui --backend-store-uri sqlite:////home/mlflow.db --port {DEMO_MLFLOW_PORT}" in (
        printed
    )
    assert not re.search(r"(:|--port )5000\b", printed)
    # MLflow 3's UI opens an experiment as GenAI unless the link asks for model training
    assert (
        f"http://127.0.0.1:{DEMO_MLFLOW_PORT}/#/experiments/7?workflowType=machine_learning"
        in printed
    )
    assert "rmr_demo-brm_key  (kept;" in printed


def test_the_mlflow_port_of_the_demo_summary_is_the_one_asked_for(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _print_demo(_summary({}), mlflow_port=6123)
    printed = capsys.readouterr().out
    assert "--port 6123" in printed
    assert f"--port {DEMO_MLFLOW_PORT}" not in printed


def test_ingest_tells_each_tables_rows_as_they_are_written(tiny_bank: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rmreco.db'}"
    upgrade(url)
    engine = create_engine_for(url)
    told: list[tuple[str, int, int]] = []
    try:
        summary = ingest_folder(
            tiny_bank,
            engine,
            settings=Settings(home=tmp_path / "home", currency="EUR"),
            on_rows=lambda table, done, total: told.append((table, done, total)),
        )
    finally:
        engine.dispose()
    last = {table: (done, total) for table, done, total in told}
    written = {table: rows for table, rows in summary.rows.items() if table not in summary.absent}
    assert last == {table: (rows, rows) for table, rows in written.items()}
    assert [table for table, done, _ in told if done == 0] == list(written), "one start each"
    assert all(0 <= done <= total for _, done, total in told)


def test_a_refresh_tells_its_steps(tiny_bank: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rmreco.db'}"
    upgrade(url)
    engine = create_engine_for(url)
    steps: list[str] = []
    try:
        ingest_folder(tiny_bank, engine, settings=Settings(home=tmp_path / "home", currency="EUR"))
        with transaction(session_factory(engine)) as session:
            written = refresh_client_features(session, SnapshotParams(), steps.append)
    finally:
        engine.dispose()
    assert written > 0
    shown = f"clients 1-{written:,} of {written:,}"  # the tiny bank: one block, every client seen
    assert steps == [
        "listing the clients",
        f"reading the history of {shown}",
        f"computing the latest features of {shown}",
        f"writing the snapshots of {shown}",
    ]
