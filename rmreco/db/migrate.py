"""Schema migrations: Alembic, configured in code so that it runs from an installed package.

This module owns bringing a database to the schema of ``rmreco.db.schema``. The migration
scripts live inside the package (``rmreco/db/migrations``); no ``alembic.ini`` is needed: the
Alembic ``Config`` is built here with ``script_location`` pointing at that folder, and the
migrations run over a connection from :func:`rmreco.db.engine.create_engine_for`, so SQLite gets
the same connection set-up as the application (except foreign keys, which are off while
migrating: a batch migration copies tables, and enforced foreign keys would refuse that).

The CLI's ``rmreco db upgrade`` calls :func:`upgrade`; ingest and the service call
:func:`require_head` before they touch the tables. ``rmreco ingest`` first calls
:func:`create_if_empty`: a database without a single table (a new SQLite file, a new PostgreSQL
database) gets the schema on its first load; a database at an older revision is never migrated
behind the operator's back (a migration of a bank's database is a decision: backups, a window),
it is refused with the command to run.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.engine import make_url

from rmreco.db.engine import create_engine_for
from rmreco.domain.errors import DatabaseError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Alembic's table of the applied revision.
VERSION_TABLE = "alembic_version"


class SchemaNotCurrentError(DatabaseError):
    """The database is not at the schema this version of rmreco needs."""


def alembic_config(url: str | None = None) -> Config:
    """The Alembic configuration of rmreco, built in code (no alembic.ini).

    ``url`` is only needed for offline mode (generating SQL); online runs pass a connection.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # configparser interpolation: a literal '%' (URL-encoded passwords) must be doubled
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest migration of this version of rmreco."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise DatabaseError("rmreco ships no migrations")
    return head


def _migration_engine(url: str) -> Engine:
    return create_engine_for(url, sqlite_foreign_keys=False)


def upgrade(url: str, revision: str = "head") -> str | None:
    """Migrate the database at ``url`` to ``revision`` (default: the newest); return it.

    Creates the SQLite file (and its folder) when missing. Safe to run again: a database that
    is already at the revision is left as it is. Raises sqlalchemy errors when the database
    cannot be reached.
    """
    engine = _migration_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        now = current(engine)
    finally:
        engine.dispose()
    logger.info("database schema at revision %s", now)
    return now


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` back to ``revision`` ("base" removes every table)."""
    engine = _migration_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
    finally:
        engine.dispose()


def current(target: str | Engine | Connection) -> str | None:
    """The revision the database is at, or None when it was never migrated.

    ``target`` is a URL, an Engine or an open Connection.
    """
    if isinstance(target, Connection):
        return MigrationContext.configure(target).get_current_revision()
    engine = _migration_engine(target) if isinstance(target, str) else target
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if isinstance(target, str):
            engine.dispose()


def upgrade_command(url: str) -> str:
    """The command that migrates the database at ``url`` (its password hidden)."""
    shown = make_url(url).render_as_string(hide_password=True)
    return f"rmreco db upgrade --db {shown}"


def require_head(connection: Connection) -> None:
    """Raise SchemaNotCurrentError unless the database is at the newest migration.

    The message names the revision the database is at, the one this rmreco needs and the
    command that migrates it.
    """
    at = MigrationContext.configure(connection).get_current_revision()
    head = head_revision()
    if at == head:
        return
    url = connection.engine.url.render_as_string(hide_password=False)
    state = "has no rmreco schema" if at is None else f"is at schema revision {at}"
    raise SchemaNotCurrentError(
        f"the database {state}; this version of rmreco needs revision {head}; "
        f"run `{upgrade_command(url)}` to migrate it first"
    )


def create_if_empty(url: str) -> str | None:
    """Create the schema (migrate to the newest revision) when the database has no table at all.

    Returns the revision created, or None when the database was not empty (nothing done). A
    database with tables but at another revision is left as it is: :func:`require_head` refuses
    it with the command to run. Raises sqlalchemy errors when the database cannot be reached.
    """
    engine = _migration_engine(url)
    try:
        with engine.connect() as connection:
            # a database migrated down to "base" keeps Alembic's empty version table
            tables = set(inspect(connection).get_table_names()) - {VERSION_TABLE}
            is_empty = not tables and current(connection) is None
    finally:
        engine.dispose()
    if not is_empty:
        return None
    logger.info("the database has no table: creating the schema")
    return upgrade(url)
