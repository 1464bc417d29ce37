"""An audit trail a regulator can use: each served answer names where its models came from, and
the audit tables can only grow.

- ``recommendations.model_provenance`` (JSON, nullable): ``{model name: {"version", "run_id",
  "artifact_sha256", "served_from"}}`` of the models that produced the row: the MLflow run that
  trained the version, the sha256 of the model files the service loaded, and whether they came
  through the registry or from the service's local copy. Rows written before this revision
  have none (null): what served them was not recorded.
- ``recommendations`` and ``feedback`` are append-only: triggers refuse every UPDATE and DELETE
  (and, on PostgreSQL, TRUNCATE), whoever connects. On SQLite a ``BEFORE`` trigger per
  statement kind aborts it; on PostgreSQL one plpgsql function raises for every table and
  statement kind. rmreco itself never changes these rows (a later report is a new row).

The triggers live here and nowhere else: tests, ``rmreco db upgrade`` and the first ingest all
create the schema through the migrations. A later migration that rebuilds one of these tables
on SQLite (``batch_alter_table`` copies it, and the copy has no triggers) must create them
again; a test checks that the newest revision refuses the changes.

Going back drops the triggers, then the column.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
#: The audit tables: what was served, and what became of it.
APPEND_ONLY = ("recommendations", "feedback")
PG_FUNCTION = "rmreco_refuse_audit_change"


def _sqlite_trigger(table: str, statement: str) -> str:
    return f"{table}_no_{statement.lower()}"


def _create_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END;
            $$
            """
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()"
            )
            # TRUNCATE fires no row trigger: it gets its own
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()"
            )
        return
    for table in APPEND_ONLY:
        for statement in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {_sqlite_trigger(table, statement)} BEFORE {statement} "
                f"ON {table} BEGIN SELECT RAISE(ABORT, "
                f"'{table} is append-only: {statement} refused'); END"
            )


def _drop_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()")
        return
    for table in APPEND_ONLY:
        for statement in ("UPDATE", "DELETE"):
            op.execute(f"DROP TRIGGER IF EXISTS {_sqlite_trigger(table, statement)}")


def upgrade() -> None:
    # a plain ADD COLUMN on both databases: no table copy, which on SQLite would lose triggers
    op.add_column("recommendations", sa.Column("model_provenance", JSON_TYPE, nullable=True))
    _create_triggers()


def downgrade() -> None:
    _drop_triggers()
    with op.batch_alter_table("recommendations") as batch:
        batch.drop_column("model_provenance")
