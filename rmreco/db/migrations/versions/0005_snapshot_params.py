"""Feature snapshots record the builder settings they were computed with.

A served model carries the feature settings it was trained with (financials lag, cure months);
the service serves it from the stored snapshots only when they were computed with the same
ones. Snapshots from before this revision have none recorded (null) until the next refresh.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("client_features") as batch:
        batch.add_column(sa.Column("params", JSON_TYPE, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("client_features") as batch:
        batch.drop_column("params")
