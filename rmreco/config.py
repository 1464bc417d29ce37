"""Settings: one pydantic-settings object, read from ``RMRECO_*`` environment variables.

Embedded defaults keep everything under one local folder (``RMRECO_HOME``, default ``.rmreco``
in the working directory): the SQLite database, the MLflow SQLite backend and its artifacts.
Nothing is built at import time; call :func:`get_settings` (or build ``Settings`` yourself).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Files of the models folder that rmreco reads by default.
POLICY_FILE = "credit_policy.yaml"
CREDIT_SPEC_FILE = "sme_credit_risk.yaml"
CROSS_SELL_SPEC_FILE = "cross_sell.yaml"


#: How many of each client's offers batch scoring explains: a count, or every one
ExplainedOffers = Annotated[int, Field(ge=0)] | Literal["all"]


def shipped_models_dir() -> Path:
    """The model specs and credit policy that come with rmreco: inside the package in an
    installed wheel (``rmreco/_models``, see pyproject.toml), the repository's ``models/`` in a
    source checkout. Never relative to the working directory."""
    packaged = Path(__file__).resolve().parent / "_models"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[1] / "models"


class Settings(BaseSettings):
    """Environment and secrets. Every field reads ``RMRECO_<FIELD>``; see serving/.env.example."""

    model_config = SettingsConfigDict(
        env_prefix="RMRECO_", env_file=None, extra="ignore", frozen=True
    )

    home: Path = Field(Path(".rmreco"), description="Folder of the embedded defaults.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the relational DB; default a SQLite file in home."
    )
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; default a SQLite backend in home."
    )
    artifact_root: str | None = Field(
        None, description="Where MLflow keeps artifacts of new experiments; default in home."
    )
    models_dir: Path | None = Field(
        None,
        description="Folder of the model specs and the credit policy; default the ones shipped "
        "with rmreco.",
    )
    currency: str = Field("EUR", description="ISO 4217 currency of all money in the input data.")
    threads: int | None = Field(
        None, ge=1, description="Threads for model fitting; default all cores but one."
    )
    explained_offers: ExplainedOffers = Field(
        5,
        description="How many of each client's cross-sell offers (the first, by rank) batch "
        "scoring writes with their reasons: a number, or all. The others carry none; the "
        "service explains any offer it lists. TreeSHAP of every offer was nine tenths of a "
        "batch's CPU, for offers far down lists no RM works through.",
    )

    # --- the service's limits: what one caller, one request and one stuck database may cost ---
    max_body_bytes: int = Field(
        1_048_576,
        ge=1_024,
        description="Largest request body the service reads (bytes); a larger one is a 413, "
        "refused before the body is read and before the caller is authenticated.",
    )
    rate_limit_per_minute: int = Field(
        600, ge=1, description="Requests one API key may make per minute (then 429)."
    )
    auth_failures_before_lockout: int = Field(
        20,
        ge=1,
        description="Invalid keys one client address may present in a row before it is locked "
        "out (429) for lockout_seconds.",
    )
    lockout_seconds: float = Field(
        300.0, gt=0, description="How long a client address that kept presenting bad keys waits."
    )
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="Time a connection has to send a request's headers."
    )
    keep_alive_seconds: float = Field(
        5.0, gt=0, description="How long an idle keep-alive connection stays open."
    )
    db_pool_size: int = Field(
        8,
        ge=1,
        description="Database connections per service worker; the threads that run database "
        "work are as many, so a request never waits for a connection on the event loop.",
    )
    db_pool_timeout_seconds: float = Field(
        5.0, gt=0, description="How long a request waits for a free connection before a 503."
    )
    db_lock_timeout_ms: int = Field(
        3_000,
        ge=1,
        description="How long the service's database work waits for a lock (PostgreSQL "
        "lock_timeout, SQLite busy_timeout) before a 503.",
    )
    db_statement_timeout_ms: int = Field(
        15_000,
        ge=1,
        description="Longest statement the service runs on PostgreSQL (statement_timeout).",
    )
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL",
        description="SQLite synchronous mode: NORMAL survives a crash of rmreco; FULL also "
        "survives a power loss, at the cost of an fsync per commit.",
    )

    # --- the RM workspace in the browser ---
    web_session_hours: float = Field(
        8.0,
        gt=0,
        le=24 * 30,
        description="How long a workspace sign-in lasts (hours), from the sign-in; signing out "
        "or revoking the user's key ends it at once.",
    )
    web_cookie_secure: bool = Field(
        True,
        description="Mark the workspace's cookies Secure (sent over HTTPS only). Browsers treat "
        "http://localhost and 127.0.0.1 as secure; set false only for plain HTTP on another "
        "host, never in production.",
    )

    @field_validator("currency")
    @classmethod
    def _is_iso_code(cls, value: str) -> str:
        if len(value) != 3 or not value.isalpha():
            raise ValueError("currency must be a three-letter ISO 4217 code such as EUR")
        return value.upper()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'rmreco.db').resolve()}"

    @property
    def resolved_tracking_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def resolved_artifact_root(self) -> str:
        if self.artifact_root:
            return self.artifact_root
        return (self.home / "mlartifacts").resolve().as_uri()

    @property
    def resolved_explained_offers(self) -> int | None:
        """How many of each client's offers batch scoring explains; None: every offer."""
        return None if self.explained_offers == "all" else self.explained_offers

    @property
    def resolved_threads(self) -> int:
        """Threads for LightGBM. One core is left free: OpenMP threads that compete with another
        busy process for the last core run many times slower (measured here: 25x on 2 cores)."""
        if self.threads:
            return self.threads
        return max(1, (os.cpu_count() or 2) - 1)

    @property
    def resolved_models_dir(self) -> Path:
        """The folder of model specs and the credit policy (``RMRECO_MODELS_DIR``, else the
        folder shipped with the package)."""
        return self.models_dir if self.models_dir is not None else shipped_models_dir()

    @property
    def policy_path(self) -> Path:
        """The credit policy file of the models folder."""
        return self.resolved_models_dir / POLICY_FILE

    def spec_path(self, file: str) -> Path:
        """A spec file of the models folder (e.g. ``CREDIT_SPEC_FILE``)."""
        return self.resolved_models_dir / file

    def ensure_home(self) -> Path:
        """Create the home folder (for the embedded defaults) and return it."""
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home


def get_settings() -> Settings:
    """Read the settings from the environment now (not cached: tests change the environment)."""
    return Settings()
