"""copies: redirected copies kept for the socket bots they went to

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 22:30:00

A copy the manager redirects to a bot that takes it over its own socket was only sent live:
one redirected while that socket was reconnecting was lost. Each is now recorded, numbered,
and sent to the bot's socket that resumes with ``?copies_after=N``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "copies",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("bot_participant_id", sa.String(length=36), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_participant_id"],
            ["participants.id"],
            name=op.f("fk_copies_bot_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_copies_conversation_id_conversations"),
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_copies")),
    )
    op.create_index("ix_copies_bot", "copies", ["bot_participant_id", "pk"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_copies_bot", table_name="copies")
    op.drop_table("copies")
