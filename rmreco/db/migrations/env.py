"""Alembic environment of rmreco's migrations, configured by ``rmreco.db.migrate`` (no alembic.ini).

``rmreco.db.migrate`` passes an open connection in ``config.attributes["connection"]``; without
one (offline mode, ``alembic ... --sql``) the URL comes from the ``sqlalchemy.url`` option.
SQLite migrations run in batch mode (SQLite cannot alter most table properties in place, so a
batch operation copies the table).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from rmreco.db.schema import Base

config = context.config
target_metadata = Base.metadata


def _run_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=bool(url and url.startswith("sqlite")),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through rmreco.db.migrate (rmreco db upgrade)")
    _run_online(connection)
