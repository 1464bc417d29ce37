"""The wheel as a bank would install it: built from the repository, installed into a fresh
virtual environment without the network, it migrates a database and serves from an empty
folder, because the model specs and the credit policy travel inside the package.

Needs the uv that ``make`` installs under ``.tools/``: without it the tests are skipped, or fail
when ``CI=true``. The wheel's dependencies come from uv's cache at the versions of ``uv.lock``
(``uv sync --frozen --offline`` into the new environment, which ``make`` has filled the cache
for); ``uv pip install --offline`` then installs the wheel, resolving its declared dependencies
against what is installed. An offline resolution from the registry alone cannot work: it needs
the index pages, which a frozen sync never downloads.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".tools" / "bin" / "uv"
SHIPPED = ("credit_policy.yaml", "sme_credit_risk.yaml", "cross_sell.yaml")
STARTUP_SECONDS = 120.0


def _clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without anything that points at the repository, its virtual
    environment or rmreco's and MLflow's settings, plus ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RMRECO_", "MLFLOW_", "UV_"))
        and name not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
    }
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return {**env, **(extra or {})}


def _run(
    *args: str | Path, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=_clean_env(env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def uv() -> Path:
    if not UV.is_file():
        message = f"{UV.relative_to(ROOT)} is missing: `make env` installs it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return UV


@pytest.fixture(scope="module")
def venv(uv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel built from this checkout installed."""
    work = tmp_path_factory.mktemp("wheel")
    _run(uv, "build", "--wheel", "--offline", "--out-dir", work / "dist", cwd=ROOT)
    (wheel,) = (work / "dist").glob("rmreco-*.whl")
    venv = work / "venv"
    _run(uv, "venv", "--python", sys.executable, venv, cwd=work)
    _run(
        uv,
        "sync",
        "--frozen",
        "--offline",
        "--no-dev",
        "--no-install-project",
        "--project",
        ROOT,
        cwd=work,
        env={"UV_PROJECT_ENVIRONMENT": str(venv)},
    )
    _run(uv, "pip", "install", "--offline", "--python", venv / "bin" / "python", wheel, cwd=work)
    return venv


def test_the_wheel_carries_the_specs_and_the_policy(venv: Path, tmp_path: Path) -> None:
    (packaged,) = venv.glob("lib/python*/site-packages/rmreco/_models")
    for file in SHIPPED:
        assert (packaged / file).is_file(), file
    found = _run(
        venv / "bin" / "python",
        "-c",
        "from rmreco.config import Settings; print(Settings().resolved_models_dir)",
        cwd=tmp_path,
    )
    assert Path(found.stdout.strip()) == packaged.resolve()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_until_up(server: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"rmreco serve exited with {server.returncode}:\n{log.read_text()}")
        try:
            if _get(url)[0] == 200:
                return
        except OSError:  # not listening yet
            pass
        time.sleep(0.25)
    pytest.fail(f"{url} did not answer within {STARTUP_SECONDS:.0f} s:\n{log.read_text()}")


def test_the_wheel_migrates_and_serves_from_an_empty_folder(venv: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    settings = {
        "RMRECO_HOME": str(tmp_path / "home"),
        "RMRECO_DATABASE_URL": f"sqlite:///{tmp_path / 'rmreco.db'}",
        "RMRECO_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    rmreco = venv / "bin" / "rmreco"
    migrated = _run(rmreco, "db", "upgrade", cwd=empty, env=settings)
    assert "database at revision" in migrated.stdout

    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(rmreco), "serve", "--port", str(port)],
            cwd=empty,
            env=_clean_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(server, f"http://127.0.0.1:{port}/healthz", log)
        status, body = _get(f"http://127.0.0.1:{port}/readyz")
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=30)
        server.kill()  # does nothing once it has stopped
        server.wait()
    # no model is registered, so the service is up but not ready; its database is
    assert status in (200, 503), body
    assert json.loads(body)["database"] == "ok"
    assert list(empty.iterdir()) == [], "nothing is read from or written to the working folder"
