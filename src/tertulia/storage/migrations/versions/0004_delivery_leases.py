"""delivery leases: which process runs a pending delivery, and until when

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 18:30:00

A process claims the deliveries it records and renews its claims while it runs; the others
take over only deliveries whose claim has lapsed (bots/runner.py). Rows recorded before
this revision have no claim: any process may take them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("claimed_by")
