"""Users of role prm: personal relationship managers, tied to an RM like brm and crm users.

The users' role check gains 'prm'. Going back refuses while prm users exist: the old check would
not hold them, and dropping users would drop who gave the feedback they recorded.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = "ck_users_role_level"
WITH_PRM = "role IN ('brm', 'crm', 'prm', 'data_scientist', 'admin')"
WITHOUT_PRM = "role IN ('brm', 'crm', 'data_scientist', 'admin')"


def _replace_check(condition: str) -> None:
    # full names, marked final: the naming convention must not prefix them again
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f(CHECK), type_="check")
        batch.create_check_constraint(op.f(CHECK), condition)


def upgrade() -> None:
    _replace_check(WITH_PRM)


def downgrade() -> None:
    count = op.get_bind().scalar(sa.text("SELECT COUNT(*) FROM users WHERE role = 'prm'"))
    if count:
        raise RuntimeError(
            f"{count} users have role prm, which revision 0005 does not know; "
            "delete them or give them another role before going back"
        )
    _replace_check(WITHOUT_PRM)
