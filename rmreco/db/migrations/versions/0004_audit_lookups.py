"""Audit lookups that stay cheap as the audit trail grows.

- An option of a financing answer points at its decision row (``decision_id``), which holds the
  features and the request once for the whole answer.
- Feedback carries its recommendation's client and product (copied; they never change), so
  "declined lately" and the KPIs read feedback by client and time instead of walking every
  recommendation ever served to a portfolio.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("recommendations") as batch:
        batch.add_column(sa.Column("decision_id", sa.String(length=36), nullable=True))
        batch.create_foreign_key(
            op.f("fk_recommendations_decision_id_recommendations"),
            "recommendations",
            ["decision_id"],
            ["id"],
        )
        batch.create_index(op.f("ix_recommendations_decision_id"), ["decision_id"])
        batch.alter_column("features", existing_type=JSON_TYPE, nullable=True)
        batch.alter_column("request", existing_type=JSON_TYPE, nullable=True)

    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("client_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("product_code", sa.String(), nullable=True))
    op.execute(
        "UPDATE feedback SET "
        "client_id = (SELECT r.client_id FROM recommendations r "
        "WHERE r.id = feedback.recommendation_id), "
        "product_code = (SELECT r.product_code FROM recommendations r "
        "WHERE r.id = feedback.recommendation_id)"
    )
    with op.batch_alter_table("feedback") as batch:
        batch.alter_column("client_id", existing_type=sa.String(), nullable=False)
        batch.alter_column("product_code", existing_type=sa.String(), nullable=False)
        batch.create_foreign_key(
            op.f("fk_feedback_client_id_clients"), "clients", ["client_id"], ["client_id"]
        )
        batch.create_foreign_key(
            op.f("fk_feedback_product_code_products"),
            "products",
            ["product_code"],
            ["product_code"],
        )
        batch.create_index(op.f("ix_feedback_client_id_created_at"), ["client_id", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_index(op.f("ix_feedback_client_id_created_at"))
        batch.drop_constraint(op.f("fk_feedback_product_code_products"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_feedback_client_id_clients"), type_="foreignkey")
        batch.drop_column("product_code")
        batch.drop_column("client_id")

    # rows written since hold their inputs on the decision row only: copy them back first
    op.execute(
        "UPDATE recommendations SET features = (SELECT d.features FROM recommendations d "
        "WHERE d.id = recommendations.decision_id), request = (SELECT d.request FROM "
        "recommendations d WHERE d.id = recommendations.decision_id) "
        "WHERE decision_id IS NOT NULL"
    )
    with op.batch_alter_table("recommendations") as batch:
        batch.alter_column("request", existing_type=JSON_TYPE, nullable=False)
        batch.alter_column("features", existing_type=JSON_TYPE, nullable=False)
        batch.drop_index(op.f("ix_recommendations_decision_id"))
        batch.drop_constraint(
            op.f("fk_recommendations_decision_id_recommendations"), type_="foreignkey"
        )
        batch.drop_column("decision_id")
