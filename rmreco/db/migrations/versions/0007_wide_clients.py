"""The extracts banks have: their own columns of clients and financials, and clients' as-of month.

- ``clients.extra`` and ``financials.extra`` (JSON, nullable) hold a row's columns beyond the
  contract as ``{name: value}``; ``extra_columns`` records each such column's kind (numeric or
  categorical) once per database, keyed by (table, column), with the load that first brought it.
- ``clients.as_of_month`` (date, nullable): the month a client's attributes and statements
  describe, the snapshot month of a client without account history.

Rows loaded before this revision have none of these (null). Going back drops them, and with them
the bank's own columns: load the folders again after upgrading once more.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("as_of_month", sa.Date(), nullable=True))
        batch.add_column(sa.Column("extra", JSON_TYPE, nullable=True))
    with op.batch_alter_table("financials") as batch:
        batch.add_column(sa.Column("extra", JSON_TYPE, nullable=True))
    op.create_table(
        "extra_columns",
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("column_name", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ingest_run_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "table_name IN ('clients', 'financials')",
            name=op.f("ck_extra_columns_table_name_level"),
        ),
        sa.CheckConstraint(
            "kind IN ('numeric', 'categorical')", name=op.f("ck_extra_columns_kind_level")
        ),
        sa.ForeignKeyConstraint(
            ["ingest_run_id"],
            ["ingest_runs.id"],
            name=op.f("fk_extra_columns_ingest_run_id_ingest_runs"),
        ),
        sa.PrimaryKeyConstraint("table_name", "column_name", name=op.f("pk_extra_columns")),
    )


def downgrade() -> None:
    op.drop_table("extra_columns")
    with op.batch_alter_table("financials") as batch:
        batch.drop_column("extra")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("extra")
        batch.drop_column("as_of_month")
