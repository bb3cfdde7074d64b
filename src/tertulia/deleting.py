"""``tertulia delete``: conversations erased, for a person's request or a retention rule
(``--idle-before DATE``: every conversation whose last message is older).

Each conversation named goes whole, in one transaction of its own: its messages (hidden
ones and manager commands too), participants, bot deliveries and bot states, the
sessions' places in it (a person's session stays, for their other conversations; an
external bot's session, which serves this conversation only, goes), and the conversation.
Its uploaded files are removed once that transaction committed (so a failed deletion never
leaves messages pointing at nothing; a crash between the two leaves files no message
names, as an interrupted upload does). ``tertulia export`` first keeps a copy, if one is
wanted.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import bindparam, delete, func, select

from tertulia.domain.ids import canonical_id
from tertulia.files import file_store
from tertulia.storage.database import Database, open_database
from tertulia.storage.tables import (
    bot_states,
    conversations,
    deliveries,
    messages,
    participants,
    session_participations,
    sessions,
)


@dataclass(slots=True)
class Deleted:
    """What was deleted, and the ids asked for that name no conversation."""

    conversations: int = 0
    messages: int = 0
    files: int = 0
    missing: list[str] = field(default_factory=list)


async def delete_conversations(
    url: str,
    schema: str | None,
    media_root: Path,
    conversation_ids: list[str],
    idle_before: datetime | None = None,
) -> Deleted:
    """Delete each conversation of ``conversation_ids`` (each once), and with
    ``idle_before`` every conversation whose last message (or, without any, whose creation)
    is older than that, with their files.

    Raises:
        ConfigurationError: an unsupported URL, or no SQLite file there.
    """
    done = Deleted()
    db = await open_database(url, schema=schema, existing=True)
    try:
        if idle_before is not None:
            conversation_ids = [*conversation_ids, *await _idle(db, idle_before)]
        for asked in dict.fromkeys(conversation_ids):
            conversation_id = canonical_id(asked)
            keys = (
                None if conversation_id is None else await _delete_rows(db, conversation_id, done)
            )
            if conversation_id is None or keys is None:
                done.missing.append(asked)
                continue
            done.files += await _delete_files(media_root, conversation_id, keys)
    finally:
        await db.close()
    return done


async def _idle(db: Database, before: datetime) -> list[str]:
    """The conversations whose last message (or creation) is older than ``before``."""
    last = func.coalesce(func.max(messages.c.time), conversations.c.created_at)
    query = (
        select(conversations.c.id)
        .select_from(
            conversations.outerjoin(messages, messages.c.conversation_id == conversations.c.id)
        )
        .group_by(conversations.c.id, conversations.c.created_at)
        .having(last < bindparam("before", type_=conversations.c.created_at.type))
        .order_by(conversations.c.created_at)
    )
    async with db.read() as conn:
        return [str(id_) for id_ in (await conn.execute(query, {"before": before})).scalars()]


async def _delete_rows(db: Database, conversation_id: str, done: Deleted) -> list[str] | None:
    """Delete the conversation's rows in one transaction; the keys of its files, or None
    when there is no such conversation."""
    async with db.write() as conn:
        found = await conn.execute(
            select(conversations.c.id).where(conversations.c.id == conversation_id)
        )
        if found.first() is None:
            return None
        keys = (
            await conn.execute(
                select(messages.c.file_path).where(
                    messages.c.conversation_id == conversation_id,
                    messages.c.file_path.is_not(None),
                )
            )
        ).scalars()
        members = select(participants.c.id).where(participants.c.conversation_id == conversation_id)
        await conn.execute(delete(bot_states).where(bot_states.c.participant_id.in_(members)))
        for table in (deliveries, session_participations):
            await conn.execute(delete(table).where(table.c.conversation_id == conversation_id))
        gone = await conn.execute(
            delete(messages).where(messages.c.conversation_id == conversation_id)
        )
        await conn.execute(
            delete(sessions).where(sessions.c.bot_conversation_id == conversation_id)
        )
        await conn.execute(
            delete(participants).where(participants.c.conversation_id == conversation_id)
        )
        await conn.execute(delete(conversations).where(conversations.c.id == conversation_id))
    done.conversations += 1
    done.messages += gone.rowcount
    return [str(key) for key in keys]


async def _delete_files(media_root: Path, conversation_id: str, keys: list[str]) -> int:
    """Remove the conversation's files (those still there), then its directory if empty."""
    store = file_store(media_root)
    removed = 0
    for key in keys:
        if store.locate(key) is not None:
            await store.delete(key)
            removed += 1
    directory = Path(media_root) / "chat" / f"chat_{conversation_id.replace('-', '')}"
    with contextlib.suppress(OSError):  # not there, or holding something else: left
        directory.rmdir()
    return removed
