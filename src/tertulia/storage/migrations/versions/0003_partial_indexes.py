"""partial indexes: visible messages by time, files, pending deliveries

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 04:00:00

History reads the newest visible messages straight off ``ix_messages_visible`` (it
replaces ``ix_messages_history``, whose ``approval`` column forced a sort of the whole
conversation); text messages no longer get an entry in ``ix_messages_file``; a delivery
leaves ``ix_deliveries_pending`` when it is done. Fewer pages written per message.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILES = sa.text("file_path IS NOT NULL")
PENDING = sa.text("status = 'pending'")
VISIBLE = sa.text("approval > 0")


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_history")
        batch_op.create_index(
            "ix_messages_visible",
            ["conversation_id", "time", "pk"],
            unique=False,
            sqlite_where=VISIBLE,
            postgresql_where=VISIBLE,
        )
        batch_op.drop_index("ix_messages_file")
        batch_op.create_index(
            "ix_messages_file",
            ["conversation_id", "file_path"],
            unique=False,
            sqlite_where=FILES,
            postgresql_where=FILES,
        )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_pending")
        batch_op.create_index(
            "ix_deliveries_pending",
            ["bot_participant_id", "pk"],
            unique=False,
            sqlite_where=PENDING,
            postgresql_where=PENDING,
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_pending")
        batch_op.create_index(
            "ix_deliveries_pending", ["status", "bot_participant_id", "pk"], unique=False
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_file")
        batch_op.create_index("ix_messages_file", ["conversation_id", "file_path"], unique=False)
        batch_op.drop_index("ix_messages_visible")
        batch_op.create_index(
            "ix_messages_history", ["conversation_id", "approval", "time", "pk"], unique=False
        )
