"""``tertulia delete``: conversations erased, for a person's request or a retention rule
(``--idle-before DATE``: every conversation whose last message is older).

Each conversation named goes whole, in one transaction of its own: its messages (hidden
ones and manager commands too), participants, bot deliveries, redirected copies and bot
states, the sessions' places in it (a person's session stays, for their other
conversations; an external bot's session, which serves this conversation only, goes), and
the conversation.
Its uploaded files (its own directory of the file store) are removed once that transaction
committed, so a failed deletion never leaves messages pointing at nothing (a crash between
the two leaves files no message names, as an interrupted upload does). ``tertulia export``
first keeps a copy, if one is wanted.

Only the database that owns ``media_root`` (its mark names where this database is) removes
files there. A copy (``tertulia copy``, a backup restored elsewhere) has the same
conversation ids and, unless it was given its own ``media_root``, the same files: deleting
a conversation of the copy keeps them (:attr:`Deleted.files_owner` says whose they are),
since the original's messages name them too (tertulia/ownership.py). Before, a delete run
on a backup removed the live server's files, those uploaded after the copy included.

Servers may be running. With a Redis broker each deletion is announced once committed, and
every server process closes the conversation's sockets (4404) and forgets it at once. With
the in-process broker nothing reaches the server: it finds out at the conversation's next
write (a message, a join, a socket opening), or when a read finds nothing of it, and does
the same then; until then a socket left open on it hears nothing more.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tertulia.domain.ids import canonical_id
from tertulia.files import file_store
from tertulia.files.store import FileStore
from tertulia.outgoing import conversation_deleted
from tertulia.ownership import other_owner
from tertulia.realtime.broker import Broker, create_broker
from tertulia.storage import conversations as conv_repo
from tertulia.storage.database import Database, again_if_turn_lost
from tertulia.storage.migrate import open_current

Announce = Callable[[str], Awaitable[None]]
"""Called with each deleted conversation's id once its deletion committed."""


@dataclass(slots=True)
class Deleted:
    """What was deleted, and the ids asked for that name no conversation."""

    conversations: int = 0
    messages: int = 0
    files: int = 0
    missing: list[str] = field(default_factory=list)
    kept: int = 0  # listed as idle, written to before their turn came: kept
    # media_root's owner when it is another database (its files were kept), else None
    files_owner: str | None = None


async def delete_conversations(
    url: str,
    schema: str | None,
    media_root: Path,
    conversation_ids: list[str],
    idle_before: datetime | None = None,
    broker_url: str = "memory://",
    broker_prefix: str | None = None,
) -> Deleted:
    """Delete each conversation of ``conversation_ids`` (each once), and with
    ``idle_before`` every conversation whose last visible message (or, without any, whose creation)
    is older than that, with their files. With a shared ``broker_url`` (Redis), each
    deletion is announced to the running servers (those of ``broker_prefix``, the
    installation's ``broker_prefix`` setting).

    Raises:
        ConfigurationError: an unsupported URL, or no SQLite file there.
        SchemaNotCurrent: the database is not at this code's schema (a wrong
            ``database_schema``, say).
    """
    db = await open_current(url, schema)
    broker: Broker | None = None
    try:
        announce: Announce | None = None
        if not broker_url.startswith("memory://"):
            shared = broker = create_broker(broker_url, prefix=broker_prefix)
            await broker.start()

            async def announce(conversation_id: str) -> None:
                await shared.publish(conversation_id, [conversation_deleted()])

        return await erase(
            db, file_store(media_root), conversation_ids, idle_before, announce=announce
        )
    finally:
        if broker is not None:
            await broker.close()
        await db.close()


async def erase(
    db: Database,
    store: FileStore,
    conversation_ids: list[str],
    idle_before: datetime | None = None,
    *,
    announce: Announce | None = None,
) -> Deleted:
    """:func:`delete_conversations` on an open database and file store (the server's own
    retention uses it too, announcing through its registry)."""
    done = Deleted(files_owner=await other_owner(db.url, db.schema, store))
    idle: set[str] = set()
    if idle_before is not None:
        # A page of conversations per read: a server sweeping (retention) holds its event
        # loop for one page at a time (about 1,000 index probes), not the whole database.
        listed: list[str] = []
        after: str | None = ""
        while after is not None:
            async with db.read() as conn:
                page, after = await conv_repo.idle_conversation_ids(conn, idle_before, after=after)
            listed += page
        # (one also named goes whatever it did since)
        idle = set(listed) - {canonical_id(asked) for asked in conversation_ids}
        conversation_ids = [*conversation_ids, *listed]
    for asked in dict.fromkeys(conversation_ids):
        conversation_id = canonical_id(asked)
        gone: int | Skipped | None = None
        if conversation_id is not None:
            # (PostgreSQL may end it to let another through: a transaction that held one of
            # its rows and waited for the conversation's; rare, as use cases take that first)
            async for attempt in again_if_turn_lost():
                with attempt:
                    gone = await _erase_one(db, conversation_id, idle_before, idle)
        if gone is Skipped.KEPT:
            done.kept += 1
            continue
        if gone is Skipped.GONE_MEANWHILE:
            continue
        if conversation_id is None or gone is None:
            done.missing.append(asked)
            continue
        assert isinstance(gone, int)
        done.conversations += 1
        done.messages += gone
        if announce is not None:
            await announce(conversation_id)
        if done.files_owner is None:
            done.files += await store.delete_conversation(conversation_id)
    return done


class Skipped(enum.Enum):
    """Why :func:`_erase_one` deleted nothing of a conversation that exists."""

    KEPT = "written to since it was listed idle"
    GONE_MEANWHILE = "listed idle, deleted meanwhile by another sweep"


async def _erase_one(
    db: Database, conversation_id: str, idle_before: datetime | None, idle: set[str]
) -> int | Skipped | None:
    """Delete one conversation in a transaction of its own: how many messages went, why
    nothing did, or None when there is no such conversation.

    Raises:
        TurnLost: PostgreSQL ended the transaction to let another one through (a
            deadlock); :func:`erase` tries again.
    """
    async with db.write() as conn:
        if not await conv_repo.lock_conversation(conn, conversation_id):
            return Skipped.GONE_MEANWHILE if conversation_id in idle else None
        # One listed as idle is checked again under the row's lock: a message may have
        # come since, and an acknowledged message is never deleted so.
        if conversation_id in idle:
            assert idle_before is not None  # (idle is only listed with it)
            if not await conv_repo.still_idle(conn, conversation_id, idle_before):
                return Skipped.KEPT
        return await conv_repo.delete_conversation(conn, conversation_id)
