"""ix_participants_present: the people the transcript says are here

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 17:00:00

A restart closes every socket and stores nothing; a person who never comes back is
announced as having left by a periodic sweep over the participants marked present
(``participants.present``, 0006). A partial index holds only those rows, so the sweep reads
a few rows rather than every participant ever.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.create_index(
            "ix_participants_present",
            ["id"],
            unique=False,
            sqlite_where=sa.text("present = 1"),
            postgresql_where=sa.text("present"),
        )


def downgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_index("ix_participants_present")
