"""messages awaiting approval: a partial index for a manager's socket that reconnects

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 19:30:00

A manager's socket that (re)connects is sent the messages still waiting for its approval
(the bot answers stored while it was away would otherwise stay hidden for good). They are
read off this index, which holds only them (not the manager's own commands, never shown).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AWAITING = sa.text("approval = 0 AND sent_by_manager = false")


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_awaiting",
            ["conversation_id", "pk"],
            unique=False,
            sqlite_where=AWAITING,
            postgresql_where=AWAITING,
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_awaiting")
