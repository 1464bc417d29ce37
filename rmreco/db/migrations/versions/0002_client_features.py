"""Client features: the latest point-in-time features of each client, read by the service.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "client_features",
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("in_default", sa.Boolean(), nullable=False),
        sa.Column("features", JSON_TYPE, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.client_id"],
            name=op.f("fk_client_features_client_id_clients"),
        ),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_client_features")),
    )
    op.create_index(op.f("ix_client_features_month"), "client_features", ["month"])


def downgrade() -> None:
    op.drop_index(op.f("ix_client_features_month"), table_name="client_features")
    op.drop_table("client_features")
