"""Offer candidates: the cross-sell rows of each client's latest month, beside its features.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("client_features") as batch:
        batch.add_column(sa.Column("offer_candidates", JSON_TYPE, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("client_features") as batch:
        batch.drop_column("offer_candidates")
