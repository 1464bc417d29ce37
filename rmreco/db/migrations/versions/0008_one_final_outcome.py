"""One final outcome per recommendation, enforced by the database; answers kept for retries.

- ``uq_feedback_final_outcome``: a partial unique index on ``feedback(recommendation_id)`` over
  the final outcomes (accepted, declined, not interested). Two service workers could both check
  that a recommendation had no final outcome and both insert one; now the second insert fails.
- ``feedback_conflicts``: where the upgrade moves the final outcomes that a recommendation
  received after its first one (they could only arise through that race). The first final
  outcome stays in ``feedback``, as the service would have answered had it seen both; the later
  ones are kept here, with when they were moved, so nothing an RM reported is lost.
- ``idempotent_answers``: the answer to a mutating request sent with an ``Idempotency-Key``,
  keyed by (user, key), so that a retry gets the same answer and records nothing twice.

Going back drops the index and the answers and moves the conflicting outcomes back.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
FINAL = "outcome IN ('accepted', 'declined', 'not_interested')"
COLUMNS = "id, recommendation_id, client_id, product_code, user_id, outcome, reason, amount, "
COLUMNS += "created_at"

# the final outcomes that are not their recommendation's first (by time, then id)
LATER_FINALS = f"""
SELECT f.id FROM feedback f
WHERE f.{FINAL} AND EXISTS (
    SELECT 1 FROM feedback e
    WHERE e.recommendation_id = f.recommendation_id AND e.{FINAL}
      AND (e.created_at < f.created_at OR (e.created_at = f.created_at AND e.id < f.id))
)
"""


def upgrade() -> None:
    op.create_table(
        "feedback_conflicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recommendation_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("product_code", sa.String(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_conflicts")),
    )
    bind = op.get_bind()
    later = [row[0] for row in bind.execute(sa.text(LATER_FINALS))]
    if later:
        ids = ", ".join(str(int(i)) for i in later)
        bind.execute(
            sa.text(
                f"INSERT INTO feedback_conflicts ({COLUMNS}, moved_at) "
                f"SELECT {COLUMNS}, CURRENT_TIMESTAMP FROM feedback WHERE id IN ({ids})"
            )
        )
        bind.execute(sa.text(f"DELETE FROM feedback WHERE id IN ({ids})"))
        log.warning(
            "%d final outcomes recorded after another one on the same recommendation were "
            "moved to feedback_conflicts",
            len(later),
        )
    op.create_index(
        "uq_feedback_final_outcome",
        "feedback",
        ["recommendation_id"],
        unique=True,
        sqlite_where=sa.text(FINAL),
        postgresql_where=sa.text(FINAL),
    )
    op.create_table(
        "idempotent_answers",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", JSON_TYPE, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_idempotent_answers_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_idempotent_answers")),
    )
    op.create_index(op.f("ix_idempotent_answers_created_at"), "idempotent_answers", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_idempotent_answers_created_at"), table_name="idempotent_answers")
    op.drop_table("idempotent_answers")
    op.drop_index("uq_feedback_final_outcome", table_name="feedback")
    op.execute(f"INSERT INTO feedback ({COLUMNS}) SELECT {COLUMNS} FROM feedback_conflicts")
    op.drop_table("feedback_conflicts")
