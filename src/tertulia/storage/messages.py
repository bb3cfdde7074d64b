"""Messages: rows <-> domain objects, history queries. Callers own the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from tertulia.domain.model import Approval, FileInfo, Message, MessageType, SystemEvent
from tertulia.storage.tables import messages


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
        type=MessageType(row.type),
        time=row.time,
        approval=Approval(row.approval),
        seq=row.seq,
        sender_id=row.sender_id,
        text=row.text,
        local_id=row.local_id,
        quoted_message_id=row.quoted_message_id,
        event=SystemEvent(row.event) if row.event else None,
        additional_metadata=dict(row.additional_metadata or {}),
        options=tuple(row.options or ()),
        file=file,
        sent_by_human=row.sent_by_human,
        command=row.command,
        sent_by_manager=row.sent_by_manager,
        real_sender_id=row.real_sender_id,
    )


def _values(message: Message) -> dict[str, Any]:
    file = message.file
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "type": message.type.value,
        "time": message.time,
        "approval": int(message.approval),
        "seq": message.seq,
        "sender_id": message.sender_id,
        "sent_by_human": message.sent_by_human,
        "text": message.text,
        "local_id": message.local_id,
        "quoted_message_id": message.quoted_message_id,
        "event": message.event.value if message.event else None,
        "additional_metadata": message.additional_metadata or None,
        "options": list(message.options) or None,
        "file_path": file.path if file else None,
        "external_url": file.external_url if file else None,
        "file_size": file.size if file else None,
        "file_name": file.name if file else None,
        "mime_type": file.mime_type if file else None,
        "command": message.command,
        "sent_by_manager": message.sent_by_manager,
        "real_sender_id": message.real_sender_id,
    }


async def insert_messages(conn: AsyncConnection, new: list[Message]) -> None:
    await conn.execute(messages.insert(), [_values(m) for m in new])


async def insert_unless_duplicate(conn: AsyncConnection, message: Message) -> bool:
    """Insert ``message`` unless its sender already used its ``local_id`` here.

    One statement (``ON CONFLICT DO NOTHING`` on exactly that unique constraint, so any
    other conflict still raises). Returns False for a duplicate, which inserted nothing.
    """
    if message.local_id is None:
        await insert_messages(conn, [message])
        return True
    dialect = conn.dialect.name
    insert: Any = sqlite_insert if dialect == "sqlite" else postgresql_insert
    statement = (
        insert(messages)
        .values(_values(message))
        .on_conflict_do_nothing(index_elements=["conversation_id", "sender_id", "local_id"])
    )
    result = await conn.execute(statement)
    return bool(result.rowcount)


async def max_seq(conn: AsyncConnection, conversation_id: str) -> int:
    """The highest ``seq`` given in a conversation (0 when none)."""
    found = (
        await conn.execute(
            select(func.max(messages.c.seq)).where(messages.c.conversation_id == conversation_id)
        )
    ).scalar_one_or_none()
    return int(found or 0)


async def get_message(
    conn: AsyncConnection, conversation_id: str, message_id: str
) -> Message | None:
    row = (
        await conn.execute(
            select(messages).where(
                messages.c.id == message_id, messages.c.conversation_id == conversation_id
            )
        )
    ).first()
    return _message(row) if row else None


async def find_by_local_id(
    conn: AsyncConnection, conversation_id: str, sender_id: str, local_id: str
) -> Message | None:
    row = (
        await conn.execute(
            select(messages).where(
                messages.c.conversation_id == conversation_id,
                messages.c.sender_id == sender_id,
                messages.c.local_id == local_id,
            )
        )
    ).first()
    return _message(row) if row else None


async def find_by_file_path(
    conn: AsyncConnection, conversation_id: str, file_path: str
) -> Message | None:
    """The message of a conversation that carries the uploaded file ``file_path``."""
    row = (
        await conn.execute(
            select(messages).where(
                messages.c.conversation_id == conversation_id,
                messages.c.file_path == file_path,
            )
        )
    ).first()
    return _message(row) if row else None


async def set_approval(
    conn: AsyncConnection, message_id: str, *, approval: Approval, seq: int | None, at: datetime
) -> None:
    values: dict[str, Any] = {"approval": int(approval), "approved_at": at}
    if seq is not None:
        values["seq"] = seq
    await conn.execute(update(messages).where(messages.c.id == message_id).values(**values))


def _visible(conversation_id: str) -> Select[Any]:
    return select(messages).where(
        messages.c.conversation_id == conversation_id,
        messages.c.approval > int(Approval.NOT_APPROVED),
    )


async def history(
    conn: AsyncConnection,
    conversation_id: str,
    *,
    until: datetime | None,
    since: datetime | None,
    limit: int | None,
    offset: int,
    page_size: int,
) -> tuple[int, list[Message]]:
    """Visible messages in ``[since, until]``; the newest ``limit``; oldest first; one page.

    Returns:
        the number of messages selected (before paging) and the page.
    """
    conditions = [
        messages.c.conversation_id == conversation_id,
        messages.c.approval > int(Approval.NOT_APPROVED),
    ]
    if until is not None:
        conditions.append(messages.c.time <= until)
    if since is not None:
        conditions.append(messages.c.time >= since)
    where = and_(*conditions)
    total = (
        await conn.execute(select(func.count()).select_from(messages).where(where))
    ).scalar_one()
    if limit is not None:
        total = min(total, limit)
    if offset >= total:
        return total, []
    # Not LIMIT total: on PostgreSQL (read committed) a message stored since the count
    # would push the oldest one out of the page.
    selected = select(messages).where(where)
    if limit is not None:
        newest = (
            select(messages.c.pk)
            .where(where)
            .order_by(messages.c.time.desc(), messages.c.pk.desc())
            .limit(limit)
            .subquery()
        )
        selected = select(messages).where(messages.c.pk.in_(select(newest.c.pk)))
    rows = await conn.execute(
        selected.order_by(messages.c.time, messages.c.pk).offset(offset).limit(page_size)
    )
    return total, [_message(r) for r in rows]


async def visible_after(
    conn: AsyncConnection, conversation_id: str, after: int, *, limit: int
) -> list[Message]:
    """Visible messages with ``seq > after``, in ``seq`` order (the replay of ``?after=``)."""
    rows = await conn.execute(
        select(messages)
        .where(messages.c.conversation_id == conversation_id, messages.c.seq > after)
        .order_by(messages.c.seq)
        .limit(limit)
    )
    return [_message(r) for r in rows]


async def latest_visible(
    conn: AsyncConnection, conversation_id: str, count: int = 1
) -> list[Message]:
    """The ``count`` most recent visible messages, oldest first."""
    rows = await conn.execute(
        _visible(conversation_id).order_by(messages.c.seq.desc()).limit(count)
    )
    return [_message(r) for r in reversed(rows.all())]
