"""The database layer on real SQLite and PostgreSQL: migrations, constraints, connections, retry."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Date, Engine, Float, Integer, String, create_engine, inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from rmreco.db.engine import (
    ServiceLimits,
    create_engine_for,
    is_retryable,
    normalize_url,
    run_in_transaction,
    session_factory,
    transaction,
)
from rmreco.db.migrate import (
    SchemaNotCurrentError,
    create_if_empty,
    current,
    downgrade,
    head_revision,
    require_head,
    upgrade,
    upgrade_command,
)
from rmreco.db.schema import (
    CONTRACT_MODELS,
    Base,
    Client,
    Feedback,
    Holding,
    Product,
    Recommendation,
    RelationshipManager,
    User,
)
from rmreco.domain import contract
from rmreco.domain.errors import ConfigurationError, RmrecoError

KIND_TYPES = {"str": String, "int": Integer, "float": Float, "date": Date}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a migrated, empty database."""
    upgrade(db_url)
    engine = create_engine_for(db_url)
    yield engine
    engine.dispose()


# --- the schema follows the contract --------------------------------------------------------


@pytest.mark.parametrize("table", contract.TABLES, ids=lambda t: t.name)
def test_schema_follows_the_contract(table: contract.Table) -> None:
    db_table = Base.metadata.tables[table.name]
    extra = {table.extras_column} if table.extras_column else set()
    assert set(db_table.columns.keys()) == set(table.column_names) | extra
    for column in table.columns:
        db_column = db_table.columns[column.name]
        assert isinstance(db_column.type, KIND_TYPES[column.kind]), column.name
        assert db_column.nullable == (column.nullable or not column.required), column.name
    assert tuple(c.name for c in db_table.primary_key.columns) == table.key
    foreign = {
        (fk.parent.name, fk.column.table.name, fk.column.name) for fk in db_table.foreign_keys
    }
    assert foreign == {(r.column, r.target_table, r.target_column) for r in table.references}
    assert CONTRACT_MODELS[table.name].__table__ is db_table


# --- migrations -----------------------------------------------------------------------------


def test_migrated_schema_matches_the_orm(db_url: str) -> None:
    assert current(db_url) is None
    assert upgrade(db_url) == head_revision()
    engine = create_engine_for(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            require_head(connection)
    finally:
        engine.dispose()


def test_upgrade_again_and_downgrade(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)  # nothing to do, no error
    downgrade(db_url, "base")
    assert current(db_url) is None
    engine = create_engine_for(db_url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()


def test_audit_migration_keeps_what_was_recorded(db_url: str) -> None:
    # 0004 copies each feedback's client and product from its recommendation; going back, the
    # options' inputs are copied back from their decision rows
    upgrade(db_url, "0003")
    engine = create_engine(create_engine_for(db_url).url)
    try:
        with engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO relationship_managers (rm_id, name, role) "
                    "VALUES ('RM1', 'A', 'brm')"
                )
            )
            c.execute(
                text(
                    "INSERT INTO products (product_code, name, kind, segments, params) "
                    "VALUES ('P1', 'Loan', 'financing', 'sme', '{}')"
                )
            )
            c.execute(
                text("INSERT INTO clients (client_id, rm_id, segment) VALUES ('C1', 'RM1', 'sme')")
            )
            c.execute(
                text(
                    "INSERT INTO users (name, role, api_key_prefix, api_key_hash, created_at) "
                    "VALUES ('u', 'brm', 'abcd1234', 'h', '2026-01-01')"
                )
            )
            c.execute(
                text(
                    "INSERT INTO recommendations (id, created_at, user_id, client_id, kind, "
                    "product_code, rank, model_versions, features, output, request) VALUES "
                    "('R1', '2026-01-01', 1, 'C1', 'financing', 'P1', 1, '{}', "
                    "'{\"x\": 1}', '{}', '{}')"
                )
            )
            c.execute(
                text(
                    "INSERT INTO feedback (recommendation_id, user_id, outcome, created_at) "
                    "VALUES ('R1', 1, 'declined', '2026-01-02')"
                )
            )
        upgrade(db_url)
        with engine.begin() as c:
            row = c.execute(text("SELECT client_id, product_code FROM feedback")).one()
            assert tuple(row) == ("C1", "P1")
            # a decision row and an option that points at it, as the service now writes them
            c.execute(
                text(
                    "INSERT INTO recommendations (id, created_at, user_id, client_id, kind, "
                    "model_versions, features, output, request) VALUES ('D2', '2026-01-03', 1, "
                    "'C1', 'financing', '{}', '{\"x\": 2}', '{}', '{\"amount\": 5}')"
                )
            )
            c.execute(
                text(
                    "INSERT INTO recommendations (id, created_at, user_id, client_id, kind, "
                    "product_code, rank, decision_id, model_versions, output) VALUES ('O2', "
                    "'2026-01-03', 1, 'C1', 'financing', 'P1', 1, 'D2', '{}', '{}')"
                )
            )
        downgrade(db_url, "0003")
        with engine.begin() as c:
            features, request = c.execute(
                text("SELECT features, request FROM recommendations WHERE id = 'O2'")
            ).one()
        as_json = [v if isinstance(v, dict) else json.loads(v) for v in (features, request)]
        assert as_json == [{"x": 2}, {"amount": 5}]
    finally:
        engine.dispose()


def test_require_head_tells_to_upgrade(db_url: str) -> None:
    engine = create_engine_for(db_url)
    try:
        with engine.connect() as connection, pytest.raises(SchemaNotCurrentError) as caught:
            require_head(connection)
    finally:
        engine.dispose()
    assert isinstance(caught.value, RmrecoError)
    assert "rmreco db upgrade" in str(caught.value)


def test_older_revision_is_refused_naming_both_revisions_and_the_command(db_url: str) -> None:
    upgrade(db_url, "0003")
    engine = create_engine_for(db_url)
    try:
        with engine.connect() as connection, pytest.raises(SchemaNotCurrentError) as caught:
            require_head(connection)
    finally:
        engine.dispose()
    message = str(caught.value)
    assert "at schema revision 0003" in message
    assert f"needs revision {head_revision()}" in message
    assert "`rmreco db upgrade --db " in message


def test_upgrade_command_hides_the_password() -> None:
    command = upgrade_command("postgresql+psycopg://rm:s3cret@db.bank:5432/rmreco")
    assert command.startswith("rmreco db upgrade --db postgresql+psycopg://rm:")
    assert "s3cret" not in command


def test_create_if_empty_creates_only_on_an_empty_database(db_url: str) -> None:
    assert create_if_empty(db_url) == head_revision()
    assert current(db_url) == head_revision()
    assert create_if_empty(db_url) is None  # at head: nothing to do
    downgrade(db_url, "base")  # only Alembic's empty version table is left: empty again
    assert create_if_empty(db_url) == head_revision()
    downgrade(db_url, "0003")
    assert create_if_empty(db_url) is None  # an older schema is left for `db upgrade`
    assert current(db_url) == "0003"


def test_create_if_empty_leaves_a_database_with_other_tables(db_url: str) -> None:
    engine = create_engine_for(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE someone_elses (id INTEGER)"))
    finally:
        engine.dispose()
    assert create_if_empty(db_url) is None
    assert current(db_url) is None


# --- constraints ----------------------------------------------------------------------------


def _rm(rm_id: str = "RM01") -> RelationshipManager:
    return RelationshipManager(rm_id=rm_id, name="Anna", role="brm")


def _client(**changes: Any) -> Client:
    values: dict[str, Any] = {"client_id": "C1", "segment": "sme", "rm_id": "RM01"}
    values.update(changes)
    return Client(**values)


def _fails(engine: Engine, *objects: Any) -> None:
    """Adding ``objects`` after a valid RM and product must break a constraint."""

    def write() -> None:
        with transaction(session_factory(engine)) as session:
            session.add(_rm())
            session.add(Product(product_code="P1", name="Loan", kind="financing", segments="sme"))
            session.flush()
            for obj in objects:
                session.add(obj)
                session.flush()

    with pytest.raises(IntegrityError):
        write()


def test_valid_rows_are_accepted(engine: Engine) -> None:
    factory = session_factory(engine)
    with transaction(factory) as session:
        session.add(_rm())
        session.add(
            Product(
                product_code="P1", name="Loan", kind="financing", segments="sme", params={"tier": 2}
            )
        )
        session.flush()
        session.add(_client(turnover=10.0, founded=dt.date(2020, 1, 1)))
        session.flush()
        session.add(
            Holding(
                client_id="C1",
                product_code="P1",
                start_month=dt.date(2024, 1, 1),
                end_month=dt.date(2024, 3, 1),
            )
        )
        user = User(
            name="anna", role="brm", rm_id="RM01", api_key_prefix="rk_abc", api_key_hash="sha256$00"
        )
        session.add(user)
        session.flush()
        rec = Recommendation(
            user_id=user.id,
            client_id="C1",
            kind="financing",
            product_code="P1",
            rank=1,
            model_versions={"pd": "3"},
            features={"x": 1.5},
            output={"pd": 0.01},
            request={},
        )
        session.add(rec)
        session.flush()
        session.add(
            Feedback(
                recommendation_id=rec.id,
                client_id="C1",
                product_code="P1",
                user_id=user.id,
                outcome="accepted",
                amount=1000.0,
            )
        )
    with transaction(factory, read_only=True) as session:
        stored = session.get(Recommendation, rec.id)
        assert stored is not None
        assert stored.features == {"x": 1.5}
        assert len(stored.id) == 36
        product = session.get(Product, "P1")
        assert product is not None
        assert product.params == {"tier": 2}


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: _client(turnover=-1.0), id="negative turnover"),
        pytest.param(lambda: _client(segment="giant"), id="unknown segment"),
        pytest.param(lambda: _client(sector="Z"), id="unknown sector"),
        pytest.param(lambda: _client(rm_id="RM99"), id="unknown rm"),
        pytest.param(lambda: _client(segment=None), id="missing segment"),
    ],
)
def test_client_constraints(engine: Engine, bad: Any) -> None:
    _fails(engine, bad())


@pytest.mark.filterwarnings("ignore:New instance:sqlalchemy.exc.SAWarning")
def test_key_and_reference_constraints(engine: Engine) -> None:
    _fails(engine, _client(), _client())  # duplicate primary key
    _fails(
        engine,
        _client(),
        Holding(client_id="C1", product_code="NOPE", start_month=dt.date(2024, 1, 1)),
    )
    _fails(
        engine,
        _client(),
        Holding(
            client_id="C1",
            product_code="P1",
            start_month=dt.date(2024, 2, 1),
            end_month=dt.date(2024, 1, 1),
        ),
    )


def test_application_constraints(engine: Engine) -> None:
    _fails(engine, User(name="x", role="superuser", api_key_prefix="a", api_key_hash="h"))
    _fails(
        engine,
        User(name="x", role="admin", api_key_prefix="a", api_key_hash="h"),
        User(name="x", role="admin", api_key_prefix="b", api_key_hash="h"),
    )
    _fails(
        engine,
        User(name="x", role="admin", api_key_prefix="a", api_key_hash="h"),
        User(name="y", role="admin", api_key_prefix="a", api_key_hash="h"),
    )
    _fails(
        engine,
        Feedback(
            recommendation_id="missing",
            client_id="C1",
            product_code="P1",
            user_id=1,
            outcome="accepted",
        ),
    )


# --- engines and transactions ---------------------------------------------------------------


def test_urls_are_normalised() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"
    with pytest.raises(ConfigurationError):
        normalize_url("mysql://u@h/db")
    with pytest.raises(ConfigurationError):
        normalize_url("not a url")


def test_sqlite_file_folder_is_created_and_pragmas_set(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "rmreco.db"
    engine = create_engine_for(f"sqlite:///{path}", sqlite_busy_timeout_ms=1234)
    try:
        with engine.connect() as connection:
            pragma = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert path.parent.is_dir()
    assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 1234}


@pytest.mark.parametrize(("mode", "level"), [("NORMAL", 1), ("FULL", 2)])
def test_sqlite_synchronous_mode_is_a_setting(tmp_path: Path, mode: str, level: int) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'rmreco.db'}", sqlite_synchronous=mode)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == level
    finally:
        engine.dispose()
    with pytest.raises(ConfigurationError, match="NORMAL or FULL"):
        create_engine_for(f"sqlite:///{tmp_path / 'x.db'}", sqlite_synchronous="OFF")


def test_service_limits_bound_the_pool_and_the_waits(db_url: str) -> None:
    limits = ServiceLimits(
        pool_size=3, pool_timeout_seconds=0.5, lock_timeout_ms=1500, statement_timeout_ms=4000
    )
    engine = create_engine_for(db_url, limits=limits)
    try:
        assert engine.pool.size() == 3  # type: ignore[attr-defined]
        assert engine.pool.timeout() == 0.5  # type: ignore[attr-defined]
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                waits = {"busy_timeout": connection.exec_driver_sql("PRAGMA busy_timeout").scalar()}
                assert waits == {"busy_timeout": 1500}
            else:
                shown = {
                    name: connection.exec_driver_sql(f"SHOW {name}").scalar()
                    for name in ("lock_timeout", "statement_timeout")
                }
                assert shown == {"lock_timeout": "1500ms", "statement_timeout": "4s"}
    finally:
        engine.dispose()


def test_sqlite_transactions_take_the_write_lock_at_begin(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    first = create_engine_for(sqlite_url)
    second = create_engine_for(sqlite_url, sqlite_busy_timeout_ms=100)
    try:
        with transaction(session_factory(first)) as holder:
            holder.execute(text("SELECT 1"))  # a read only, yet the write lock is held
            with (
                pytest.raises(OperationalError, match="locked"),
                transaction(session_factory(second)) as session,
            ):
                session.execute(text("SELECT 1"))
            # readers are not blocked (WAL, deferred begin)
            with transaction(session_factory(second), read_only=True) as reader:
                assert reader.execute(text("SELECT count(*) FROM clients")).scalar() == 0
    finally:
        first.dispose()
        second.dispose()


def test_sqlite_writer_waits_for_the_lock(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    engine = create_engine_for(sqlite_url, sqlite_busy_timeout_ms=10_000)
    factory = session_factory(engine)
    acquired = threading.Event()
    released = threading.Event()

    def hold_then_release() -> None:
        with transaction(factory) as session:
            session.add(_rm("RM01"))
            session.flush()
            acquired.set()
            released.wait(0.3)

    thread = threading.Thread(target=hold_then_release)
    try:
        thread.start()
        assert acquired.wait(5)
        with transaction(factory) as session:  # waits (busy timeout) instead of failing
            session.add(_rm("RM02"))
        thread.join()
        with transaction(factory, read_only=True) as session:
            assert session.execute(text("SELECT count(*) FROM relationship_managers")).scalar() == 2
    finally:
        released.set()
        thread.join()
        engine.dispose()


def test_transaction_commits_or_rolls_back(engine: Engine) -> None:
    factory = session_factory(engine)

    def write_then_fail() -> None:
        with transaction(factory) as session:
            session.add(_rm("RM01"))
            session.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_then_fail()
    with transaction(factory) as session:
        session.add(_rm("RM02"))
    with transaction(factory, read_only=True) as session:
        assert session.scalars(text("SELECT rm_id FROM relationship_managers")).all() == ["RM02"]


# --- retry ----------------------------------------------------------------------------------


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _dbapi_error(sqlstate: str) -> DBAPIError:
    return DBAPIError("UPDATE ...", {}, _PgError(sqlstate))


def test_retry_runs_again_after_serialization_failures(sqlite_url: str) -> None:
    factory = session_factory(create_engine(sqlite_url))
    calls: list[int] = []

    def work(session: Session) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _dbapi_error("40001" if len(calls) == 1 else "40P01")
        return "done"

    assert run_in_transaction(factory, work, attempts=3, backoff_seconds=0) == "done"
    assert len(calls) == 3


def test_retry_gives_up_and_ignores_other_errors(sqlite_url: str) -> None:
    factory = session_factory(create_engine(sqlite_url))
    calls: list[str] = []

    def always(sqlstate: str) -> Any:
        def work(session: Session) -> None:
            calls.append(sqlstate)
            raise _dbapi_error(sqlstate)

        return work

    with pytest.raises(DBAPIError):
        run_in_transaction(factory, always("40001"), attempts=2, backoff_seconds=0)
    assert calls == ["40001", "40001"]
    calls.clear()
    with pytest.raises(DBAPIError):
        run_in_transaction(factory, always("23505"), attempts=5, backoff_seconds=0)
    assert calls == ["23505"]


@pytest.mark.postgres
def test_real_serialization_failure_is_retryable(postgres_url: str) -> None:
    upgrade(postgres_url)
    engine = create_engine_for(postgres_url)
    serializable = engine.execution_options(isolation_level="SERIALIZABLE")
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO relationship_managers (rm_id, name, role) VALUES ('R', 'a', 'brm')"
                )
            )
        with serializable.connect() as first, serializable.connect() as second:
            first.begin()
            second.begin()
            first.execute(text("SELECT name FROM relationship_managers")).all()
            second.execute(text("UPDATE relationship_managers SET name = 'b'"))
            second.commit()
            with pytest.raises(DBAPIError) as caught:
                first.execute(text("UPDATE relationship_managers SET name = 'c'"))
            first.rollback()
        assert is_retryable(caught.value)
    finally:
        engine.dispose()
