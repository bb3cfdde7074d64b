"""Messages: rows <-> domain objects, history queries. Callers own the transaction.

Statements are built once, with ``bindparam`` placeholders, so each compiles once per
dialect (see :mod:`tertulia.storage.sql`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from functools import cache
from itertools import groupby
from typing import Any

from sqlalchemy import Executable, and_, bindparam, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tertulia.domain.model import Approval, FileInfo, Message, MessageType, SystemEvent
from tertulia.storage.database import Connection
from tertulia.storage.tables import conversations, messages

# Conversations whose last seq one writer keeps in memory (then it starts again, reading).
COUNTED_CONVERSATIONS = 100_000

# Written into the SQL, not bound: only then can the planners use the partial index
# ``ix_messages_visible`` (whose condition is ``approval > 0``).
_VISIBLE = messages.c.approval > literal_column(str(int(Approval.NOT_APPROVED)))
_IN_CONVERSATION = messages.c.conversation_id == bindparam("conversation_id")
_INSERT = messages.insert()
_GET = select(messages).where(messages.c.id == bindparam("message_id"), _IN_CONVERSATION)
_BY_LOCAL_ID = select(messages).where(
    _IN_CONVERSATION,
    messages.c.sender_id == bindparam("sender_id"),
    messages.c.local_id == bindparam("local_id"),
)
_BY_FILE = select(messages).where(_IN_CONVERSATION, messages.c.file_path == bindparam("file_path"))
_MAX_SEQ = select(func.max(messages.c.seq)).where(_IN_CONVERSATION)
# The bytes of a conversation's uploaded files (``file_path IS NOT NULL``: an external
# file's URL takes no disk). The condition is the partial index ``ix_messages_file``'s, so
# only the conversation's files are read.
_FILE_BYTES = select(func.coalesce(func.sum(messages.c.file_size), 0)).where(
    _IN_CONVERSATION, messages.c.file_path.is_not(None)
)
_APPROVE = (
    update(messages)
    .where(messages.c.id == bindparam("message_id"))
    .values(approval=bindparam("approval"), approved_at=bindparam("at"))
)
_APPROVE_WITH_SEQ = _APPROVE.values(seq=bindparam("seq"))
# Where several processes write (PostgreSQL): the conversation's next seq, taken from its
# row in a data-modifying WITH of the statement that uses the number. The row stays locked
# until the end of the transaction, which gives the number back if it rolls back.
_NUMBERED = (
    update(conversations)
    .where(conversations.c.id == bindparam("conversation_id"))
    .values(last_seq=conversations.c.last_seq + 1)
    .returning(conversations.c.last_seq)
    .cte("numbered")
)
_APPROVE_NUMBERED = _APPROVE.values(seq=_NUMBERED.c.last_seq).returning(messages.c.seq)
# A message's seq as stored, its row locked: of two processes approving it at once, the
# second waits, then sees the first's number (READ COMMITTED reads the newest row for
# FOR UPDATE) and keeps it.
_SEQ_LOCKED = (
    select(messages.c.seq)
    .where(messages.c.id == bindparam("message_id"), _IN_CONVERSATION)
    .with_for_update()
)
_AFTER = (
    select(messages)
    .where(_IN_CONVERSATION, messages.c.seq > bindparam("after"))
    .order_by(messages.c.seq)
    .limit(bindparam("limit"))
)
# Written into the SQL, not bound: only then can the planners use the partial index.
_AWAITING = (
    select(messages)
    .where(
        _IN_CONVERSATION,
        messages.c.approval == literal_column("0"),
        messages.c.sent_by_manager == literal_column("false"),
        messages.c.pk > bindparam("after_pk"),
    )
    .order_by(messages.c.pk)
    .limit(bindparam("limit"))
)
# The key of the visible message numbered ``after`` (or the last before it).
_PK_AT_SEQ = (
    select(messages.c.pk)
    .where(_IN_CONVERSATION, messages.c.seq <= bindparam("after"))
    .order_by(messages.c.seq.desc())
    .limit(1)
)
# The ``seq`` of the last visible message stored before a message (0: none), in the
# conversation's (conversation_id, seq) index from its end: the first found is it, almost
# always (a message approved later has an earlier key than its number says).
_SEQ_BEFORE = (
    select(messages.c.seq)
    .where(
        _IN_CONVERSATION,
        messages.c.seq.is_not(None),
        messages.c.pk
        < select(messages.c.pk).where(messages.c.id == bindparam("message_id")).scalar_subquery(),
    )
    .order_by(messages.c.seq.desc())
    .limit(1)
)
_LATEST = (
    select(messages)
    .where(_IN_CONVERSATION, _VISIBLE)
    .order_by(messages.c.seq.desc())
    .limit(bindparam("limit"))
)


# The unique constraint a resent message runs into: its sender's ``local_id`` here.
_RESEND = ["conversation_id", "sender_id", "local_id"]


@cache
def _insert_unless_duplicate(dialect: str) -> Executable:
    insert: Any = sqlite_insert if dialect == "sqlite" else postgresql_insert
    statement: Executable = insert(messages).on_conflict_do_nothing(index_elements=_RESEND)
    return statement


@cache
def _insert_numbered(keys: tuple[str, ...], unless_duplicate: bool) -> Executable:
    """PostgreSQL: an ``INSERT … SELECT`` of the message's ``keys`` whose ``seq`` comes from
    its conversation's row (``_NUMBERED``)."""
    row = select(*(bindparam(k, type_=messages.c[k].type) for k in keys), _NUMBERED.c.last_seq)
    columns = [*(messages.c[k] for k in keys), messages.c.seq]
    statement = postgresql_insert(messages).from_select(columns, row)
    if unless_duplicate:
        statement = statement.on_conflict_do_nothing(index_elements=_RESEND)
    returning: Executable = statement.returning(messages.c.seq)
    return returning


@cache
def _history(until: bool, since: bool, descending: bool) -> tuple[Executable, Executable]:
    """(count, page) statements for one combination of the filters and one direction.

    Both read ``ix_messages_visible`` (conversation, time, pk) in index order: no sort.
    """
    conditions = [_IN_CONVERSATION, _VISIBLE]
    if until:
        conditions.append(messages.c.time <= bindparam("until"))
    if since:
        conditions.append(messages.c.time >= bindparam("since"))
    where = and_(*conditions)
    count = select(func.count()).select_from(messages).where(where)
    order = (
        (messages.c.time.desc(), messages.c.pk.desc())
        if descending
        else (messages.c.time, messages.c.pk)
    )
    page = (
        select(messages)
        .where(where)
        .order_by(*order)
        .offset(bindparam("offset"))
        .limit(bindparam("page_size"))
    )
    return count, page


# Every message of a conversation, hidden ones included, in the order they were stored (an
# export): their keys first (SQLite reads them off an index, whose entries hold the row
# key), then the rows by pages of keys.
_STORED_KEYS = select(messages.c.pk).where(_IN_CONVERSATION).order_by(messages.c.pk)

# Codes to members by dictionary: calling the enum classes costs more than the rest of a row.
_TYPES = {t.value: t for t in MessageType}
_APPROVALS = {int(a): a for a in Approval}
_EVENTS = {e.value: e for e in SystemEvent}


def _message(row: Any) -> Message:
    file = None
    if row.file_path is not None or row.external_url is not None:
        file = FileInfo(
            path=row.file_path,
            external_url=row.external_url,
            size=row.file_size,
            name=row.file_name,
            mime_type=row.mime_type,
        )
    return Message(
        id=row.id,
        conversation_id=row.conversation_id,
        type=_TYPES[row.type],
        time=row.time,
        approval=_APPROVALS[row.approval],
        seq=row.seq,
        sender_id=row.sender_id,
        text=row.text,
        local_id=row.local_id,
        quoted_message_id=row.quoted_message_id,
        event=_EVENTS[row.event] if row.event else None,
        additional_metadata=dict(row.additional_metadata or {}),
        options=tuple(row.options or ()),
        file=file,
        sent_by_human=row.sent_by_human,
        command=row.command,
        sent_by_manager=row.sent_by_manager,
        real_sender_id=row.real_sender_id,
    )


def _values(message: Message) -> dict[str, Any]:
    """The message's column values, leaving out the columns that stay NULL.

    Statements are compiled per set of columns (:mod:`tertulia.storage.sql`), so leaving
    them out costs a few compiled variants, and saves binding a dozen NULLs per message,
    each of which ``sqlite3`` runs through its adapter lookup.
    """
    file = message.file
    values: dict[str, Any] = {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "type": message.type.value,
        "time": message.time,
        "approval": int(message.approval),
        "sent_by_human": message.sent_by_human,
        "text": message.text,
        "sent_by_manager": message.sent_by_manager,
    }
    for name, value in (
        ("seq", message.seq),
        ("sender_id", message.sender_id),
        ("local_id", message.local_id),
        ("quoted_message_id", message.quoted_message_id),
        ("event", message.event.value if message.event else None),
        ("additional_metadata", message.additional_metadata or None),
        ("options", list(message.options) or None),
        ("command", message.command),
        ("real_sender_id", message.real_sender_id),
    ):
        if value is not None:
            values[name] = value
    if file is not None:
        for name, value in (
            ("file_path", file.path),
            ("external_url", file.external_url),
            ("file_size", file.size),
            ("file_name", file.name),
            ("mime_type", file.mime_type),
        ):
            if value is not None:
                values[name] = value
    return values


async def insert_messages(conn: Connection, new: list[Message]) -> None:
    """Insert ``new`` in order (one statement per run of messages with the same columns)."""
    for _, group in groupby((_values(m) for m in new), key=lambda values: values.keys()):
        rows = list(group)
        await conn.execute(_INSERT, rows[0] if len(rows) == 1 else rows)


async def insert_unless_duplicate(conn: Connection, message: Message) -> bool:
    """Insert ``message`` unless its sender already used its ``local_id`` here.

    One statement (``ON CONFLICT DO NOTHING`` on exactly that unique constraint, so any
    other conflict still raises). Returns False for a duplicate, which inserted nothing.
    """
    if message.local_id is None:
        await insert_messages(conn, [message])
        return True
    statement = _insert_unless_duplicate(conn.dialect.name)
    result = await conn.execute(statement, _values(message))
    return bool(result.rowcount)


async def max_seq(conn: Connection, conversation_id: str) -> int:
    """The highest ``seq`` given in a conversation (0 when none)."""
    found = (
        await conn.execute(_MAX_SEQ, {"conversation_id": conversation_id})
    ).scalar_one_or_none()
    return int(found or 0)


async def stored_file_bytes(conn: Connection, conversation_id: str) -> int:
    """The bytes of the files uploaded to a conversation and kept (its messages' sizes,
    hidden messages included), read by a use case, which holds the conversation's row
    where several processes write (tertulia.chats): two uploads counted at once in two
    processes would both fit, and together pass the budget."""
    values = {"conversation_id": conversation_id}
    return int((await conn.execute(_FILE_BYTES, values)).scalar_one())


async def get_message(conn: Connection, conversation_id: str, message_id: str) -> Message | None:
    row = (
        await conn.execute(_GET, {"conversation_id": conversation_id, "message_id": message_id})
    ).first()
    return _message(row) if row else None


async def find_by_local_id(
    conn: Connection, conversation_id: str, sender_id: str, local_id: str
) -> Message | None:
    row = (
        await conn.execute(
            _BY_LOCAL_ID,
            {"conversation_id": conversation_id, "sender_id": sender_id, "local_id": local_id},
        )
    ).first()
    return _message(row) if row else None


async def find_by_file_path(
    conn: Connection, conversation_id: str, file_path: str
) -> Message | None:
    """The message of a conversation that carries the uploaded file ``file_path``."""
    row = (
        await conn.execute(_BY_FILE, {"conversation_id": conversation_id, "file_path": file_path})
    ).first()
    return _message(row) if row else None


async def set_approval(
    conn: Connection, message_id: str, *, approval: Approval, seq: int | None, at: datetime
) -> None:
    values: dict[str, Any] = {"message_id": message_id, "approval": int(approval), "at": at}
    if seq is None:
        await conn.execute(_APPROVE, values)
    else:
        await conn.execute(_APPROVE_WITH_SEQ, {**values, "seq": seq})


async def visible_count(conn: Connection, conversation_id: str) -> int:
    """How many messages people can see in the conversation, in one indexed read.

    Visible messages are numbered 1, 2, ... by ``seq`` with no gap as they become visible
    (in the transaction that makes them visible), so the highest ``seq`` is their count,
    and it changes whenever the visible history does.
    """
    return await max_seq(conn, conversation_id)


async def history(
    conn: Connection,
    conversation_id: str,
    *,
    until: datetime | None,
    since: datetime | None,
    limit: int | None,
    offset: int,
    page_size: int,
    visible: int | None = None,
) -> tuple[int, list[Message]]:
    """Visible messages in ``[since, until]``; the newest ``limit``; oldest first; one page.

    Args:
        visible: the conversation's :func:`visible_count`, when the caller has just read
            it (used without time filters instead of reading it again).

    Returns:
        the number of messages selected (before paging) and the page.
    """
    params = {"conversation_id": conversation_id, "until": until, "since": since}
    if until is not None or since is not None:
        count, _ = _history(until is not None, since is not None, False)
        total = (await conn.execute(count, params)).scalar_one()
    elif visible is not None:
        total = visible
    else:
        total = await visible_count(conn, conversation_id)
    if limit is not None:
        total = min(total, limit)
    if offset >= total:
        return total, []
    end = min(offset + page_size, total)
    if limit is None:
        _, page = _history(until is not None, since is not None, False)
        rows = await conn.execute(page, {**params, "offset": offset, "page_size": end - offset})
        return total, [_message(r) for r in rows]
    # The newest ``limit`` in ascending order, one page of them: read newest first and turn
    # the page around. Positions counted from the newest: [total - end, total - offset).
    # Cut at ``end``, not read to the end: on PostgreSQL (read committed) a message stored
    # since the count would push the oldest one out of the page.
    _, page = _history(until is not None, since is not None, True)
    rows = await conn.execute(page, {**params, "offset": total - end, "page_size": end - offset})
    return total, [_message(r) for r in reversed(rows.all())]


async def visible_after(
    conn: Connection, conversation_id: str, after: int, *, limit: int
) -> list[Message]:
    """Visible messages with ``seq > after``, in ``seq`` order (the replay of ``?after=``)."""
    rows = await conn.execute(
        _AFTER, {"conversation_id": conversation_id, "after": after, "limit": limit}
    )
    return [_message(r) for r in rows]


async def awaiting_approval(
    conn: Connection, conversation_id: str, *, after: int, limit: int
) -> list[Message]:
    """The messages still waiting for the manager's approval (not its own, which are
    commands) stored after the visible message numbered ``after``: the oldest ``limit``,
    oldest first."""
    after_pk = 0
    if after > 0:
        found = await conn.execute(_PK_AT_SEQ, {"conversation_id": conversation_id, "after": after})
        after_pk = found.scalar_one_or_none() or 0
    rows = await conn.execute(
        _AWAITING, {"conversation_id": conversation_id, "after_pk": after_pk, "limit": limit}
    )
    return [_message(r) for r in rows]


async def seq_before(conn: Connection, conversation_id: str, message_id: str) -> int:
    """The ``seq`` of the last visible message stored before ``message_id`` (0: none): a
    point to resume from for whoever is to see that message, visible or not (a manager's
    socket that resumes there is sent those awaiting approval stored after it, this one
    among them: :func:`awaiting_approval`)."""
    params = {"conversation_id": conversation_id, "message_id": message_id}
    found = (await conn.execute(_SEQ_BEFORE, params)).scalar_one_or_none()
    return int(found or 0)


async def latest_visible(conn: Connection, conversation_id: str, count: int = 1) -> list[Message]:
    """The ``count`` most recent visible messages, oldest first."""
    rows = await conn.execute(_LATEST, {"conversation_id": conversation_id, "limit": count})
    return [_message(r) for r in reversed(rows.all())]


# -- numbering: a message's seq, taken as it becomes visible --------------------------


async def _counted_seq(conn: Connection, conversation_id: str) -> int:
    """Take the conversation's next ``seq`` where this process is the only writer (SQLite's
    one writer connection, ``conn.last_seqs``): counted in memory, from the highest ``seq``
    among the conversation's messages the first time, then one more each time. The database
    forgets the counts whenever it rolls anything back, so an undone message gives its
    number back. (That saves a statement per message, about a tenth of the instructions of
    an answered message: docs/performance-history.md.)
    """
    counted = conn.last_seqs
    assert counted is not None, "numbers are counted in memory by a single writer only"
    last = counted.get(conversation_id)
    if last is None:
        if len(counted) >= COUNTED_CONVERSATIONS:
            counted.clear()
        last = await max_seq(conn, conversation_id)
    counted[conversation_id] = last + 1
    return last + 1


async def insert_message(
    conn: Connection, message: Message, *, unless_duplicate: bool = False
) -> Message | None:
    """Store ``message``, numbered if people can see it and it has no ``seq`` yet; returns
    it as stored, with its ``seq``.

    Visible messages are numbered 1, 2, ... with no gap. Where several processes write
    (PostgreSQL) the number is kept in the conversation's row, and taken in the message's
    own ``INSERT`` (:func:`_insert_taking_seq`); where this process is the only writer
    (SQLite) it is counted in memory (:func:`_counted_seq`).

    With ``unless_duplicate``, a ``local_id`` its sender already used in the conversation
    stores nothing and returns None; the caller's transaction must then roll back (a number
    may have been taken).
    """
    if message.visible and message.seq is None:
        if conn.last_seqs is None:
            seq = await _insert_taking_seq(conn, message, unless_duplicate=unless_duplicate)
            return None if seq is None else message.numbered(seq)
        message = message.numbered(await _counted_seq(conn, message.conversation_id))
    if not unless_duplicate:
        await insert_messages(conn, [message])
    elif not await insert_unless_duplicate(conn, message):
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
        await set_approval(conn, message.id, approval=approval, seq=None, at=at)
    elif conn.last_seqs is None:
        # Several processes write: the copy read earlier may be stale (another process
        # approved and numbered it since). The stored number, read under the row's lock,
        # decides; numbering it twice would leave a gap and send it twice.
        stored = (
            await conn.execute(
                _SEQ_LOCKED,
                {"message_id": message.id, "conversation_id": message.conversation_id},
            )
        ).first()
        if stored is None:
            raise LookupError(message.id)
        if stored.seq is not None:
            seq = int(stored.seq)
            await set_approval(conn, message.id, approval=approval, seq=None, at=at)
        else:
            seq = await _approve_taking_seq(conn, message, approval=approval, at=at)
    else:
        seq = await _counted_seq(conn, message.conversation_id)
        await set_approval(conn, message.id, approval=approval, seq=seq, at=at)
    return replace(message, approval=approval, seq=seq)


async def _insert_taking_seq(
    conn: Connection, message: Message, *, unless_duplicate: bool
) -> int | None:
    """Insert ``message`` (visible, with no ``seq`` yet) with its conversation's next
    ``seq``, taken from the conversation's row in the same statement, and return it.

    One round trip instead of two (an ``UPDATE … RETURNING`` of the row, then the insert);
    the row stays locked until the transaction ends all the same. With
    ``unless_duplicate``, a ``local_id`` its sender already used here inserts nothing and
    returns None; the number was taken even so, and the caller's transaction must roll
    back to give it back.

    Raises:
        LookupError: no such conversation (without ``unless_duplicate``; with it, a missing
            conversation also inserts nothing and returns None, as no number was taken).
    """
    values = _values(message)
    on_conflict = unless_duplicate and message.local_id is not None
    result = await conn.execute(_insert_numbered(tuple(values), on_conflict), values)
    if on_conflict:
        seq = result.scalar()
        return None if seq is None else int(seq)
    return int(result.scalar_one())


async def _approve_taking_seq(
    conn: Connection, message: Message, *, approval: Approval, at: datetime
) -> int:
    """Make ``message`` (not visible yet) visible with its conversation's next ``seq``,
    taken from the conversation's row in the same statement, and return it (PostgreSQL:
    the numbering and :func:`set_approval` in one round trip).

    Raises:
        LookupError: no such message or conversation (nothing changed; roll back).
    """
    values = {
        "message_id": message.id,
        "conversation_id": message.conversation_id,
        "approval": int(approval),
        "at": at,
    }
    return int((await conn.execute(_APPROVE_NUMBERED, values)).scalar_one())


async def stored_keys(conn: Connection, conversation_id: str) -> list[int]:
    """The keys of all the conversation's messages, hidden ones included, in the order
    they were stored (for :func:`stored_messages`)."""
    rows = await conn.execute(_STORED_KEYS, {"conversation_id": conversation_id})
    return [row.pk for row in rows]


async def stored_messages(
    conn: Connection, keys: list[int]
) -> list[tuple[Message, datetime | None]]:
    """The messages of these keys, in the order of the keys (ascending), each with when it
    was approved. (A statement per call: its ``IN`` list has as many values as ``keys``.)"""
    if not keys:
        return []
    rows = await conn.execute(
        select(messages).where(messages.c.pk.in_(keys)).order_by(messages.c.pk)
    )
    return [(_message(row), row.approved_at) for row in rows]
