"""database_identity: the database's own id, for the owner's mark of media_root

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 23:45:00

A copy made with ``tertulia copy`` kept the conversations' ids and, by default, the same
``media_root``: ``tertulia delete`` (or retention) run on the copy removed the directories
of the live database's conversations, files uploaded after the copy included. Each
database now has an id of its own, made here (a copy's target makes its own as it is
migrated), and ``media_root`` is marked with the id of the database whose files it holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "database_identity",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_database_identity")),
    )
    op.bulk_insert(table, [{"id": uuid.uuid4().hex}])


def downgrade() -> None:
    op.drop_table("database_identity")
