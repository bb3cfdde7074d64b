"""Making a conversation look long idle (for deletions by age and retention)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

from tertulia.storage.database import Database
from tertulia.storage.tables import conversations, messages

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


async def age(db: Database, conversation_id: str, when: datetime = LONG_AGO) -> None:
    """Date a conversation's creation and every message of it at ``when``."""
    async with db.write() as conn:
        await conn.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(created_at=when)
        )
        await conn.execute(
            update(messages).where(messages.c.conversation_id == conversation_id).values(time=when)
        )
