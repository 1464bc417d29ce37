"""Settings: one pydantic-settings object, read from ``RMRECO_*`` environment variables.

Embedded defaults keep everything under one local folder (``RMRECO_HOME``, default ``.rmreco``
in the working directory): the SQLite database, the MLflow SQLite backend and its artifacts.
Nothing is built at import time; call :func:`get_settings` (or build ``Settings`` yourself).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    currency: str = Field("EUR", description="ISO 4217 currency of all money in the input data.")
    log_level: str = Field("INFO", description="Python logging level.")
    threads: int | None = Field(
        None, ge=1, description="Threads for model fitting; default all cores but one."
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
    def resolved_threads(self) -> int:
        """Threads for LightGBM. One core is left free: OpenMP threads that compete with another
        busy process for the last core run many times slower (measured here: 25x on 2 cores)."""
        if self.threads:
            return self.threads
        return max(1, (os.cpu_count() or 2) - 1)

    def ensure_home(self) -> Path:
        """Create the home folder (for the embedded defaults) and return it."""
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home


def get_settings() -> Settings:
    """Read the settings from the environment now (not cached: tests change the environment)."""
    return Settings()
