"""Conversations and participants: rows <-> domain objects. Callers own the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Executable, bindparam, func, select, update

from tertulia.domain.model import (
    Approval,
    Conversation,
    Message,
    Participant,
    ParticipantType,
)
from tertulia.domain.times import utcnow
from tertulia.storage import messages as msg_repo
from tertulia.storage.database import Connection
from tertulia.storage.tables import conversations, participants

# Conversations whose last seq one writer keeps in memory (then it starts again, reading).
COUNTED_CONVERSATIONS = 100_000

_THIS_CONVERSATION = conversations.c.id == bindparam("conversation_id")
_INSERT_CONVERSATION = conversations.insert()
_INSERT_PARTICIPANT = participants.insert()
_GET = select(conversations).where(_THIS_CONVERSATION)
_COUNT = select(func.count()).select_from(conversations)
_SET_ENDED = update(conversations).where(_THIS_CONVERSATION).values(ended=True)
_NEXT_SEQ = (
    update(conversations)
    .where(_THIS_CONVERSATION)
    .values(last_seq=conversations.c.last_seq + 1)
    .returning(conversations.c.last_seq)
)
_PARTICIPANTS = (
    select(participants)
    .where(participants.c.conversation_id == bindparam("conversation_id"))
    .order_by(participants.c.ordinal)
)
_COUNT_PARTICIPANTS = (
    select(func.count())
    .select_from(participants)
    .where(participants.c.conversation_id == bindparam("conversation_id"))
)
_RENAME = (
    update(participants)
    .where(participants.c.id == bindparam("participant_id"))
    .values(name=bindparam("name"))
)


@cache
def _page(dialect: str) -> Executable:
    # The same order on every database: no name first, then names by code point
    # (PostgreSQL would otherwise put NULLs last and sort by the locale's collation).
    name: ColumnElement[Any] = conversations.c.name
    if dialect == "postgresql":
        name = name.collate("C")
    counts = (
        select(participants.c.conversation_id, func.count().label("n"))
        .group_by(participants.c.conversation_id)
        .subquery()
    )
    return (
        select(conversations, func.coalesce(counts.c.n, 0).label("participant_count"))
        .outerjoin(counts, counts.c.conversation_id == conversations.c.id)
        .order_by(name.asc().nulls_first(), conversations.c.created_at, conversations.c.id)
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
    )


def _conversation(row: Any) -> Conversation:
    return Conversation(id=row.id, name=row.name, created_at=row.created_at, ended=row.ended)


def _participant(row: Any) -> Participant:
    return Participant(
        id=row.id,
        conversation_id=row.conversation_id,
        name=row.name,
        type=ParticipantType(row.type),
        is_required=row.is_required,
        is_manager=row.is_manager,
        bot_name=row.bot_name,
    )


async def insert_conversation(conn: Connection, conversation: Conversation) -> None:
    await conn.execute(
        _INSERT_CONVERSATION,
        {
            "id": conversation.id,
            "name": conversation.name,
            "created_at": conversation.created_at,
            "ended": conversation.ended,
            "last_seq": 0,
        },
    )


async def get_conversation(conn: Connection, conversation_id: str) -> Conversation | None:
    row = (await conn.execute(_GET, {"conversation_id": conversation_id})).first()
    return _conversation(row) if row else None


async def list_conversations(
    conn: Connection, *, offset: int, limit: int
) -> tuple[int, list[tuple[Conversation, int]]]:
    """One page of all conversations, by name then creation, with participant counts."""
    total = (await conn.execute(_COUNT)).scalar_one()
    if offset and offset >= total:
        return total, []  # past the end (and no huge OFFSET for the database to refuse)
    rows = await conn.execute(_page(conn.dialect.name), {"offset": offset, "limit": limit})
    return total, [(_conversation(r), r.participant_count) for r in rows]


async def set_ended(conn: Connection, conversation_id: str) -> None:
    await conn.execute(_SET_ENDED, {"conversation_id": conversation_id})


async def next_seq(conn: Connection, conversation_id: str) -> int:
    """Take the conversation's next ``seq`` for a message stored in this transaction.

    Visible messages are numbered 1, 2, ... with no gap. Where several processes write
    (PostgreSQL) the number is the conversation row's ``last_seq``, bumped here, and the
    row stays locked until the transaction ends. Where this process is the only writer
    (SQLite's one writer connection, ``conn.last_seqs``), it is counted in memory: the
    highest ``seq`` among the conversation's messages the first time, then one more each
    time; the database forgets the counts whenever it rolls anything back, so an undone
    message gives its number back. (That saves a statement per message, about a tenth of
    the instructions of an answered message: docs/performance.md.)
    """
    counted = conn.last_seqs
    if counted is None:
        result = await conn.execute(_NEXT_SEQ, {"conversation_id": conversation_id})
        return int(result.scalar_one())
    last = counted.get(conversation_id)
    if last is None:
        if len(counted) >= COUNTED_CONVERSATIONS:
            counted.clear()
        last = await msg_repo.max_seq(conn, conversation_id)
    counted[conversation_id] = last + 1
    return last + 1


async def insert_message(
    conn: Connection, message: Message, *, unless_duplicate: bool = False
) -> Message | None:
    """Store ``message``, numbered first (:func:`next_seq`) if people can see it and it has
    no ``seq`` yet; returns it as stored, with its ``seq``.

    Where the number is kept in the conversation's row (PostgreSQL), the numbering and the
    insert are one statement (:func:`messages.insert_numbered`).

    With ``unless_duplicate``, a ``local_id`` its sender already used in the conversation
    stores nothing and returns None; the caller's transaction must then roll back (a number
    may have been taken).
    """
    if message.visible and message.seq is None:
        if conn.last_seqs is None:
            seq = await msg_repo.insert_numbered(conn, message, unless_duplicate=unless_duplicate)
            return None if seq is None else message.numbered(seq)
        message = message.numbered(await next_seq(conn, message.conversation_id))
    if not unless_duplicate:
        await msg_repo.insert_messages(conn, [message])
    elif not await msg_repo.insert_unless_duplicate(conn, message):
        return None
    return message


async def approve_message(
    conn: Connection, message: Message, *, approval: Approval, at: datetime
) -> Message:
    """Record ``approval`` (a manager's) of ``message``, numbering it first (as
    :func:`insert_message` does) if that makes it visible and it has no ``seq`` yet; returns
    it as stored."""
    seq = message.seq
    if seq is not None or approval <= Approval.NOT_APPROVED:
        await msg_repo.set_approval(conn, message.id, approval=approval, seq=None, at=at)
    elif conn.last_seqs is None:
        seq = await msg_repo.approve_numbered(conn, message, approval=approval, at=at)
    else:
        seq = await next_seq(conn, message.conversation_id)
        await msg_repo.set_approval(conn, message.id, approval=approval, seq=seq, at=at)
    return replace(message, approval=approval, seq=seq)


async def insert_participants(
    conn: Connection, new: Sequence[Participant], *, first_ordinal: int
) -> None:
    if not new:
        return
    now = utcnow()
    await conn.execute(
        _INSERT_PARTICIPANT,
        [
            {
                "id": p.id,
                "conversation_id": p.conversation_id,
                "ordinal": first_ordinal + i,
                "name": p.name,
                "type": p.type.value,
                "is_required": p.is_required,
                "is_manager": p.is_manager,
                "bot_name": p.bot_name,
                "created_at": now,
            }
            for i, p in enumerate(new)
        ],
    )


async def list_participants(conn: Connection, conversation_id: str) -> list[Participant]:
    """The conversation's participants in the order they were added."""
    rows = await conn.execute(_PARTICIPANTS, {"conversation_id": conversation_id})
    return [_participant(r) for r in rows]


async def count_participants(conn: Connection, conversation_id: str) -> int:
    """How many participants the conversation has (participants are never removed)."""
    result = await conn.execute(_COUNT_PARTICIPANTS, {"conversation_id": conversation_id})
    return int(result.scalar_one())


async def rename_participant(conn: Connection, participant_id: str, name: str) -> None:
    await conn.execute(_RENAME, {"participant_id": participant_id, "name": name})
