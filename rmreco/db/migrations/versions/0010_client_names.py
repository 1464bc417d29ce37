"""Clients have names: ``clients.name``, the client's legal name (a firm) or personal name (a
person), for RMs to read and search.

- ``clients.name`` (text of at most 200 characters, nullable): rows loaded before this revision
  have none (null) until their folder is loaded again; a bank whose extract has no names keeps
  null, and the pages show the client's id.
- A bank that loaded a ``name`` column before this revision had it kept as one of its own
  columns, in ``clients.extra``, with an inferred kind in ``extra_columns``, and so a model
  feature. The upgrade moves each such value into ``clients.name`` (trimmed, empty as null, cut
  to 200 characters), removes it from ``extra`` and forgets its kind: a name is text to read,
  never a feature. A model trained on it is refused by scoring, naming the column: train again.

Going back drops the column and the names with it (they do not return to ``extra``: a name is
not a feature at any revision); load the folders again after upgrading once more.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Longest name, as ``rmreco.domain.contract.CLIENT_NAME_MAX_LENGTH`` was at this revision (a
#: migration does not follow later code).
NAME_LENGTH = 200


def _move_names_out_of_extra() -> None:
    """Names kept as a bank's own column become the contract's column."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            UPDATE clients
            SET name = left(nullif(btrim(extra ->> 'name'), ''), {NAME_LENGTH}),
                extra = extra - 'name'
            WHERE extra ->> 'name' IS NOT NULL
            """
        )
    else:
        op.execute(
            f"""
            UPDATE clients
            SET name = substr(nullif(trim(json_extract(extra, '$.name')), ''), 1, {NAME_LENGTH}),
                extra = json_remove(extra, '$.name')
            WHERE json_extract(extra, '$.name') IS NOT NULL
            """
        )
    op.execute("DELETE FROM extra_columns WHERE table_name = 'clients' AND column_name = 'name'")


def upgrade() -> None:
    # a plain ADD COLUMN on both databases: no copy of what may be millions of clients
    op.add_column("clients", sa.Column("name", sa.String(length=NAME_LENGTH), nullable=True))
    _move_names_out_of_extra()


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("name")
