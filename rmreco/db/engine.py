"""Engines, sessions and transactions for the two supported databases, SQLite and PostgreSQL.

This module owns how rmreco connects: :func:`create_engine_for` (URL normalisation and the
per-database connection set-up), :func:`session_factory`, the :func:`transaction` context manager
that owns commit and rollback, and :func:`run_in_transaction`, which retries a unit of work that
PostgreSQL aborted because of a serialization failure or a deadlock.

Functions elsewhere that read or write take a ``Session`` and never commit; whoever opened the
transaction (a request, a CLI command) commits it. Nothing is built at import time.

SQLite. Every connection runs in WAL mode (readers do not block the writer), with a busy timeout
(a writer waits for the lock instead of failing at once) and foreign keys enforced. Python's
``sqlite3`` (3.11 has no ``autocommit`` attribute yet) would begin transactions itself, lazily,
as DEFERRED, just before the first write; a transaction that read first and then wants to write
can then fail with "database is locked" without waiting, because its snapshot is stale. Following
SQLAlchemy's documented recipe for pysqlite, the driver's own transaction handling is switched
off (``isolation_level = None``) and SQLAlchemy's ``begin`` event emits ``BEGIN IMMEDIATE``, so a
transaction takes the write lock when it starts, waiting up to the busy timeout. Read-only work
may ask for a plain deferred ``BEGIN`` (``transaction(..., read_only=True)``) so that it never
holds the write lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from rmreco.domain.errors import ConfigurationError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Execution option naming how a SQLite transaction begins: "IMMEDIATE" (default) or "DEFERRED".
SQLITE_BEGIN_OPTION = "rmreco_sqlite_begin"
DEFAULT_SQLITE_BUSY_TIMEOUT_MS = 30_000

#: SQLSTATEs of PostgreSQL errors after which the whole transaction may simply be run again.
RETRYABLE_SQLSTATES: frozenset[str] = frozenset({"40001", "40P01"})


def normalize_url(url: str) -> URL:
    """Parse a database URL, choosing the psycopg 3 driver for PostgreSQL.

    ``postgresql://`` and ``postgres://`` (as Heroku-style environments write it) become
    ``postgresql+psycopg://``. Raises ConfigurationError for a URL that cannot be parsed or a
    database other than SQLite or PostgreSQL.
    """
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError; say which setting is wrong
        raise ConfigurationError(f"database URL cannot be parsed: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise ConfigurationError(
            f"database '{backend}' is not supported; use a sqlite:/// or postgresql:// URL"
        )
    return parsed


def json_dumps(value: Any) -> str:
    """How JSON columns are written: orjson (an order of magnitude faster than ``json`` on the
    service's audit rows), numpy scalars as numbers, NaN as null (JSON has no NaN; PostgreSQL's
    JSONB refuses it), non-text keys as text as ``json.dumps`` would."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()


def insert_rows(
    connection: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    batch_rows: int = 5_000,
    json_text: frozenset[str] = frozenset(),
) -> int:
    """Insert ``rows`` (dicts of the same columns) into ``table`` through the driver's
    ``executemany``: the statement compiled once, each value converted by its column type's own
    bind processor (what SQLAlchemy would send: JSON text or JSONB, dates, timestamps). The ORM's
    bulk insert of the same rows spent most of its time in per-row bookkeeping. The JSON columns
    named in ``json_text`` hold JSON text already (None for SQL NULL), sent as it is (PostgreSQL
    casts it to JSONB). Returns the rows written."""
    if not rows:
        return 0
    dialect = connection.dialect
    columns = list(rows[0])
    compiled = table.insert().compile(dialect=dialect, column_keys=columns)
    processors = [
        (
            name,
            None
            if name in json_text
            else table.c[name].type.dialect_impl(dialect).bind_processor(dialect),
        )
        for name in columns
    ]
    positions = list(compiled.positiontup or ()) if compiled.positional else None
    for start in range(0, len(rows), batch_rows):
        batch = [
            {
                name: row[name] if convert is None else convert(row[name])
                for name, convert in processors
            }
            for row in rows[start : start + batch_rows]
        ]
        params: list[Any] = batch
        if positions is not None:
            params = [tuple(bound[name] for name in positions) for bound in batch]
        connection.exec_driver_sql(compiled.string, params)
    return len(rows)


def is_sqlite(engine: Engine | Connection) -> bool:
    """Whether the engine (or connection) talks to SQLite."""
    return engine.dialect.name == "sqlite"


@dataclass(frozen=True)
class ServiceLimits:
    """How long the service's database work may wait, and with how many connections.

    Attributes:
        pool_size: connections per process (no overflow beyond ``overflow``).
        overflow: connections beyond the pool for work outside requests (probes, model checks).
        pool_timeout_seconds: how long a checkout waits for a free connection.
        lock_timeout_ms: PostgreSQL ``lock_timeout``; SQLite ``busy_timeout``.
        statement_timeout_ms: PostgreSQL ``statement_timeout`` (SQLite has none).
        connect_timeout_seconds: how long opening a PostgreSQL connection may take.
    """

    pool_size: int
    pool_timeout_seconds: float
    lock_timeout_ms: int
    statement_timeout_ms: int
    overflow: int = 2
    connect_timeout_seconds: int = 5


def create_engine_for(
    url: str,
    *,
    sqlite_busy_timeout_ms: int = DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
    sqlite_foreign_keys: bool = True,
    sqlite_synchronous: str = "NORMAL",
    limits: ServiceLimits | None = None,
    echo: bool = False,
) -> Engine:
    """Create an Engine for a SQLite or PostgreSQL URL, set up as described in the module doc.

    For a SQLite file the parent folder is created. ``sqlite_foreign_keys=False`` is for
    migrations only (a batch migration recreates tables, which enforced foreign keys would
    block). ``sqlite_synchronous`` is NORMAL (durable across a crash of the process in WAL
    mode) or FULL (also across a power loss). ``limits`` bound the pool and every lock wait and
    statement (the service's engine); without them the defaults of a batch command apply (a
    long load may wait for the lock for ``sqlite_busy_timeout_ms`` and run long statements).
    Raises ConfigurationError for an unsupported or malformed URL or synchronous mode.
    """
    parsed = normalize_url(url)
    if sqlite_synchronous not in ("NORMAL", "FULL"):
        raise ConfigurationError(
            f"SQLite synchronous mode '{sqlite_synchronous}' is not supported; use NORMAL or FULL"
        )
    pool: dict[str, Any] = {}
    if limits is not None:
        pool = {
            "pool_size": limits.pool_size,
            "max_overflow": limits.overflow,
            "pool_timeout": limits.pool_timeout_seconds,
        }
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(
            parsed,
            busy_timeout_ms=limits.lock_timeout_ms if limits else sqlite_busy_timeout_ms,
            foreign_keys=sqlite_foreign_keys,
            synchronous=sqlite_synchronous,
            pool=pool,
            echo=echo,
        )
    connect_args: dict[str, Any] = {}
    if limits is not None:
        connect_args = {
            "connect_timeout": limits.connect_timeout_seconds,
            "options": f"-c lock_timeout={int(limits.lock_timeout_ms)} "
            f"-c statement_timeout={int(limits.statement_timeout_ms)}",
        }
    # pre-ping: a bank's PostgreSQL sits behind poolers and firewalls that drop idle connections
    # (and a restarted server leaves every pooled connection dead: pre-ping replaces them)
    return create_engine(
        parsed,
        pool_pre_ping=True,
        echo=echo,
        json_serializer=json_dumps,
        json_deserializer=orjson.loads,
        connect_args=connect_args,
        **pool,
    )


def _create_sqlite_engine(
    url: URL,
    *,
    busy_timeout_ms: int,
    foreign_keys: bool,
    synchronous: str,
    pool: dict[str, Any],
    echo: bool,
) -> Engine:
    database = url.database or ""
    is_file = database not in ("", ":memory:") and not database.startswith("file:")
    if is_file:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        json_serializer=json_dumps,
        json_deserializer=orjson.loads,
        **(pool if is_file else {}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control away from sqlite3 (see module doc); SQLAlchemy's begin event
        # below emits BEGIN, and sqlite3 still executes COMMIT / ROLLBACK when asked.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
            if is_file:
                cursor.execute("PRAGMA journal_mode = WAL")
                # NORMAL is durable across application crashes in WAL mode and much faster;
                # FULL also survives a power loss (an fsync per commit)
                cursor.execute(f"PRAGMA synchronous = {synchronous}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = str(conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")).upper()
        if mode not in ("IMMEDIATE", "DEFERRED", "EXCLUSIVE"):
            raise ValueError(f"{SQLITE_BEGIN_OPTION} must be IMMEDIATE, DEFERRED or EXCLUSIVE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A Session factory bound to ``engine``.

    Objects stay usable after commit (``expire_on_commit=False``): a command that commits and
    then reports what it wrote does not reload it.
    """
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session], *, read_only: bool = False) -> Iterator[Session]:
    """Open a session and a transaction; commit when the block ends, roll back if it raises.

    ``read_only=True`` begins a SQLite transaction as DEFERRED, so that it never holds the write
    lock (it has no effect on PostgreSQL). The exception that caused a rollback is re-raised.
    """
    with factory() as session:
        if read_only and factory.kw.get("bind") is not None and is_sqlite(factory.kw["bind"]):
            session.connection(execution_options={SQLITE_BEGIN_OPTION: "DEFERRED"})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def is_retryable(exc: BaseException) -> bool:
    """Whether ``exc`` is a PostgreSQL serialization failure (40001) or deadlock (40P01)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def run_in_transaction(
    factory: sessionmaker[Session],
    work: Callable[[Session], T],
    *,
    attempts: int = 3,
    backoff_seconds: float = 0.05,
) -> T:
    """Run ``work(session)`` in its own transaction, running it again after a retryable failure.

    The whole transaction is retried (``work`` must not have effects outside the database), at
    most ``attempts`` times in all, waiting ``backoff_seconds`` times 1, 2, 4, ... in between.
    Raises the last error once the attempts are used up, and any other error at once.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        try:
            with transaction(factory) as session:
                return work(session)
        except DBAPIError as exc:
            if not is_retryable(exc) or attempt == attempts:
                raise
            logger.warning(
                "transaction aborted by the database (%s), retry %d of %d",
                getattr(exc.orig, "sqlstate", "?"),
                attempt,
                attempts - 1,
            )
            time.sleep(backoff_seconds * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover
