"""Conversations and participants: rows <-> domain objects. Callers own the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.sql.elements import BindParameter, Label
from sqlalchemy.sql.selectable import Subquery

from tertulia.domain.model import Conversation, Participant, ParticipantType
from tertulia.domain.times import utcnow
from tertulia.storage.database import Connection
from tertulia.storage.tables import (
    bot_states,
    conversations,
    copies,
    deliveries,
    messages,
    participants,
    session_participations,
    sessions,
)

_THIS_CONVERSATION = conversations.c.id == bindparam("conversation_id")
_INSERT_CONVERSATION = conversations.insert()
_INSERT_PARTICIPANT = participants.insert()
_GET = select(conversations).where(_THIS_CONVERSATION)
_COUNT = select(func.count()).select_from(conversations)
# By id, which orders them by creation (UUIDv7), to read them all by pages.
_IDS_AFTER = (
    select(conversations.c.id)
    .where(conversations.c.id > bindparam("after"))
    .order_by(conversations.c.id)
    .limit(bindparam("limit"))
)
_SET_ENDED = update(conversations).where(_THIS_CONVERSATION).values(ended=True)
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
_MARK_PRESENT = (
    update(participants)
    .where(participants.c.id == bindparam("participant_id"))
    .where(participants.c.present == bindparam("was"))
    .values(present=bindparam("present"))
)
_THIS_PARTICIPANT = participants.c.id == bindparam("participant_id")
_MARK_AWAY = update(participants).where(_THIS_PARTICIPANT).values(away=True)
_BOT_RETURN = select(
    participants.c.away, participants.c.resume_after, participants.c.resume_copies_after
).where(_THIS_PARTICIPANT)
_BOT_BACK = (
    update(participants)
    .where(_THIS_PARTICIPANT)
    .values(away=False, resume_after=None, resume_copies_after=None)
)
_HOLD_RESUME = (
    update(participants)
    .where(_THIS_PARTICIPANT, participants.c.resume_after.is_(None))
    .values(resume_after=bindparam("after"), resume_copies_after=bindparam("copies"))
)
# The people the transcript says are here, by id, to read them all by pages (a partial
# index holds only them: ix_participants_present).
_PRESENT_AFTER = (
    select(participants.c.id, participants.c.conversation_id)
    .where(participants.c.present)
    .where(participants.c.id > bindparam("after"))
    .order_by(participants.c.id)
    .limit(bindparam("limit"))
)


def _participant_count(page: Subquery) -> Label[Any]:
    """The participant count of each conversation of a page: counted for the page's rows
    only, through the participants' (conversation_id, ordinal) index. A count grouped over
    the whole participants table, joined to the page, scanned every participant of the
    installation for every list (soak QA: ``?mine=true`` for a session in 3 conversations
    went from 1 to 78 ms with 100,000 other conversations, and SQLite's scan held up
    everyone else's messages meanwhile)."""
    counted = (
        select(func.count())
        .select_from(participants)
        .where(participants.c.conversation_id == page.c.id)
        .scalar_subquery()
    )
    return counted.label("participant_count")


@cache
def _page(dialect: str) -> Executable:
    # The same order on every database: no name first, then names by code point
    # (PostgreSQL would otherwise put NULLs last and sort by the locale's collation); each
    # database's index is in it (tables.py: ix_conversations_by_name, and _c).
    def order(table: Any) -> list[Any]:
        name: ColumnElement[Any] = table.c.name
        if dialect == "postgresql":
            name = name.collate("C")
        return [name.asc().nulls_first(), table.c.created_at, table.c.id]

    page = (
        select(conversations)
        .order_by(*order(conversations))
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
        .subquery()
    )
    return select(page, _participant_count(page)).order_by(*order(page))


_OF_SESSION = session_participations.c.session_key == bindparam("session_key")
_COUNT_OF_SESSION = select(func.count()).select_from(session_participations).where(_OF_SESSION)


@cache
def _session_page() -> Executable:
    page = (
        select(
            conversations,
            session_participations.c.participant_id.label("my_participant_id"),
        )
        .join(
            session_participations, session_participations.c.conversation_id == conversations.c.id
        )
        .where(_OF_SESSION)
        .order_by(conversations.c.created_at.desc(), conversations.c.id.desc())
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
        .subquery()
    )
    return select(page, _participant_count(page)).order_by(
        page.c.created_at.desc(), page.c.id.desc()
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


async def list_session_conversations(
    conn: Connection, session_key: str, *, offset: int, limit: int
) -> tuple[int, list[tuple[Conversation, int, str]]]:
    """One page of a session's conversations, newest first, with participant counts and
    the session's participant in each."""
    total = (await conn.execute(_COUNT_OF_SESSION, {"session_key": session_key})).scalar_one()
    if offset and offset >= total:
        return total, []
    params = {"session_key": session_key, "offset": offset, "limit": limit}
    rows = await conn.execute(_session_page(), params)
    return total, [(_conversation(r), r.participant_count, r.my_participant_id) for r in rows]


_BEFORE = bindparam("before", type_=conversations.c.created_at.type)


def _idle(conversation_id: Any) -> ColumnElement[bool]:
    """Whether the conversation's last visible message (or, without any, its creation) is
    older than ``before``: the last one read straight off ``ix_messages_visible``, whose
    condition (``approval > 0``) the query repeats as a literal, so that it is used."""
    last = (
        select(func.max(messages.c.time))
        .where(
            messages.c.conversation_id == conversation_id,
            messages.c.approval > literal_column("0"),
        )
        .scalar_subquery()
    )
    return func.coalesce(last, conversations.c.created_at) < _BEFORE


# Conversations by id, a page at a time, each with whether it is idle: every statement does
# a bounded amount of work (one index probe per conversation), however large the database.
_IDLE_PAGE = (
    select(conversations.c.id, _idle(conversations.c.id).label("idle"))
    .where(conversations.c.id > bindparam("after"))
    .order_by(conversations.c.id)
    .limit(bindparam("limit"))
)
_THIS_ONE: BindParameter[str] = bindparam("id")
# A conversation's row, locked where rows can be (PostgreSQL: a message being stored
# meanwhile waits, then finds the conversation gone; SQLite writes one at a time anyway).
_LOCK = select(conversations.c.id).where(conversations.c.id == _THIS_ONE).with_for_update()
# FOR NO KEY UPDATE: the lock that numbering a message takes too, so the two take turns,
# but not in conflict with the share lock a foreign key takes on the row when a message or
# a delivery of the conversation is inserted (FOR UPDATE is: two transactions that had
# each inserted one, then locked, waited for each other, and one died as a deadlock).
_TAKE_TURNS = (
    select(conversations.c.id)
    .where(conversations.c.id == _THIS_ONE)
    .with_for_update(key_share=True)
)
_STILL_IDLE = select(conversations.c.id).where(conversations.c.id == _THIS_ONE, _idle(_THIS_ONE))
# A conversation's rows in each table, in the order of the foreign keys.
_DELETES = [
    (table, delete(table).where(rows))
    for table, rows in (
        (
            bot_states,
            bot_states.c.participant_id.in_(
                select(participants.c.id).where(participants.c.conversation_id == _THIS_ONE)
            ),
        ),
        (deliveries, deliveries.c.conversation_id == _THIS_ONE),
        (copies, copies.c.conversation_id == _THIS_ONE),
        (session_participations, session_participations.c.conversation_id == _THIS_ONE),
        (messages, messages.c.conversation_id == _THIS_ONE),
        (sessions, sessions.c.bot_conversation_id == _THIS_ONE),  # its bots' sessions
        (participants, participants.c.conversation_id == _THIS_ONE),
        (conversations, conversations.c.id == _THIS_ONE),
    )
]


async def idle_conversation_ids(
    conn: Connection, before: datetime, *, after: str = "", limit: int = 1000
) -> tuple[list[str], str | None]:
    """Of the next ``limit`` conversations by id after ``after`` ("" for the first), those
    whose last visible message (or, without any, creation) is older than ``before``; and
    the ``after`` of the next page (None when this one reached the end)."""
    rows = (
        await conn.execute(_IDLE_PAGE, {"before": before, "after": after, "limit": limit})
    ).all()
    following = str(rows[-1].id) if len(rows) == limit else None
    return [str(row.id) for row in rows if row.idle], following


async def lock_conversation(conn: Connection, conversation_id: str) -> bool:
    """Lock a conversation's row until the transaction ends; False when there is none.
    A deletion takes it first, so that nothing is written to the conversation meanwhile."""
    return (await conn.execute(_LOCK, {"id": conversation_id})).first() is not None


async def still_idle(conn: Connection, conversation_id: str, before: datetime) -> bool:
    """Whether a conversation (locked) has had no visible message since ``before``: a
    deletion for being idle checks again in its own transaction, as a message may have come
    since the conversation was listed (:func:`idle_conversation_ids`)."""
    found = await conn.execute(_STILL_IDLE, {"id": conversation_id, "before": before})
    return found.first() is not None


async def delete_conversation(conn: Connection, conversation_id: str) -> int:
    """Delete a conversation (locked: :func:`lock_conversation`) and every row of it:
    messages, participants, deliveries, redirected copies, bot states, the sessions' places
    in it and its bots' sessions (people's sessions stay). Returns how many messages went."""
    gone = 0
    for table, statement in _DELETES:
        result = await conn.execute(statement, {"id": conversation_id})
        if table is messages:
            gone = result.rowcount
    return gone


async def conversation_ids(conn: Connection, after: str, *, limit: int) -> list[str]:
    """Up to ``limit`` conversation ids greater than ``after`` ("" for the first), in order."""
    rows = await conn.execute(_IDS_AFTER, {"after": after, "limit": limit})
    return [row.id for row in rows]


async def set_ended(conn: Connection, conversation_id: str) -> None:
    await conn.execute(_SET_ENDED, {"conversation_id": conversation_id})


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


async def mark_present(conn: Connection, participant_id: str, present: bool) -> bool:
    """Record that a person is here (``present``) or has left; returns False when that was
    already so (nothing to announce). The row's own lock decides between processes."""
    result = await conn.execute(
        _MARK_PRESENT, {"participant_id": participant_id, "was": not present, "present": present}
    )
    return bool(result.rowcount)


@dataclass(frozen=True, slots=True)
class BotReturn:
    """What a bot's socket opening finds (:func:`bot_connects`): whether its *participant-left*
    was stored since it was last here, and where a socket that does not say starts."""

    was_away: bool = False
    after: int | None = None
    copies_after: int | None = None


async def mark_away(conn: Connection, bot_participant_id: str) -> None:
    """A bot's *participant-left* is stored: its return is to be announced."""
    await conn.execute(_MARK_AWAY, {"participant_id": bot_participant_id})


async def bot_connects(conn: Connection, bot_participant_id: str) -> BotReturn:
    """A bot's first socket opened: what :class:`BotReturn` says, which is then cleared."""
    row = (await conn.execute(_BOT_RETURN, {"participant_id": bot_participant_id})).first()
    if row is None or not (row.away or row.resume_after is not None):
        return BotReturn()
    await conn.execute(_BOT_BACK, {"participant_id": bot_participant_id})
    return BotReturn(bool(row.away), row.resume_after, row.resume_copies_after)


async def hold_resume_point(
    conn: Connection, bot_participant_id: str, after: int, copies_after: int | None
) -> tuple[int, int | None]:
    """A bot is called back: its next socket starts at ``after`` (and ``copies_after``)
    unless an earlier call it has not come back from set a point already, which stays.
    Returns the point held."""
    params = {"participant_id": bot_participant_id, "after": after, "copies": copies_after}
    await conn.execute(_HOLD_RESUME, params)
    row = (await conn.execute(_BOT_RETURN, {"participant_id": bot_participant_id})).one()
    held = row.resume_after if row.resume_after is not None else after
    return held, row.resume_copies_after


async def present_people(conn: Connection, *, after: str, limit: int) -> list[tuple[str, str]]:
    """(participant id, conversation id) of the people the transcript says are here (their
    *participant-joined* stored, no *participant-left* since), ids above ``after``, by id."""
    rows = await conn.execute(_PRESENT_AFTER, {"after": after, "limit": limit})
    return [(row.id, row.conversation_id) for row in rows]


async def take_turns(conn: Connection, conversation_id: str) -> bool:
    """Lock the conversation's row until the transaction ends, as numbering one of its
    messages does (PostgreSQL; SQLite renders no lock, its one writer takes turns anyway);
    False when there is no such row (deleted). Every use case of a conversation takes it
    first (tertulia.chats), so that those of several processes take turns, and none holds
    a row of the conversation's while it waits for it: a deletion takes it first too."""
    return (await conn.execute(_TAKE_TURNS, {"id": conversation_id})).first() is not None
