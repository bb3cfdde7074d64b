"""participants.present: a person the transcript says is here, kept across restarts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 08:00:00

A person's *participant-joined* is stored when their first socket opens and their
*participant-left* when the last one has been gone for the grace period. A restart closes
every socket and stores nothing (nobody left); the column remembers who was announced, so
the socket that comes back after the restart does not announce them again. Existing rows
start as not present: a person connected while upgrading is announced once more.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        # A constant default ("0", false on both databases), which SQLite adds in place with
        # ALTER TABLE; an expression would make the batch copy the whole table.
        batch_op.add_column(sa.Column("present", sa.Boolean(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_column("present")
