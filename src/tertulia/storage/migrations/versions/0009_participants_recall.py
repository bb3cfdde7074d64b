"""participants.away, resume_after, resume_copies_after: calling back external bots

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 23:10:00

An external bot gone from a conversation is triggered again when a person writes
(``tertulia.recall``). ``away`` says its *participant-left* is stored, so that its return is
announced, after a restart too. ``resume_after`` and ``resume_copies_after`` are where its
next socket starts when it does not say (BLAB's library never does): the message that
called it back comes first. Existing rows: not away, no resume point.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        # Constant or no defaults: SQLite adds each in place, without copying the table.
        batch_op.add_column(sa.Column("away", sa.Boolean(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("resume_after", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("resume_copies_after", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_column("resume_copies_after")
        batch_op.drop_column("resume_after")
        batch_op.drop_column("away")
