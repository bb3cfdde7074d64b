"""Redirected copies kept for the bots that take them over their own sockets (PROTOCOL 7.3).

A copy is recorded in the transaction of the manager's command, and numbered: its number
goes out with it (``copy_seq``), and a bot's socket that resumes with ``?copies_after=N``
is first sent the copies for it numbered above N. A conversation's copies are numbered in
the order they commit: on PostgreSQL its row is locked while one is recorded (the numbers
come from one sequence for every conversation, so a bot sees gaps, never a lower number
after a higher one); SQLite has one writer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select

from tertulia.storage.database import Connection
from tertulia.storage.tables import copies

_RECORD = copies.insert()
_RECORD_RETURNING = _RECORD.returning(copies.c.pk)
_FOR_BOT = copies.c.bot_participant_id == bindparam("bot_participant_id")
_AFTER = (
    select(copies.c.pk, copies.c.payload)
    .where(_FOR_BOT, copies.c.pk > bindparam("after"))
    .order_by(copies.c.pk)
    .limit(bindparam("limit"))
)
_LAST = select(func.max(copies.c.pk)).where(_FOR_BOT)
_LAST_BEFORE = _LAST.where(copies.c.created_at < bindparam("before"))


async def record(
    conn: Connection,
    conversation_id: str,
    bot_participant_id: str,
    payload: dict[str, Any],
    *,
    now: datetime,
) -> int:
    """Record a copy for the bot; returns its number. (By a use case, which holds the
    conversation's row where several processes write: tertulia.chats.)"""
    sqlite = conn.dialect.name == "sqlite"
    result = await conn.execute(
        _RECORD if sqlite else _RECORD_RETURNING,
        {
            "conversation_id": conversation_id,
            "bot_participant_id": bot_participant_id,
            "payload": payload,
            "created_at": now,
        },
    )
    number = result.lastrowid if sqlite else result.scalar_one()
    assert number is not None
    return int(number)


async def after(
    conn: Connection, bot_participant_id: str, after: int, *, limit: int
) -> list[tuple[int, dict[str, Any]]]:
    """The bot's copies numbered above ``after``, oldest first: (number, payload)."""
    rows = await conn.execute(
        _AFTER, {"bot_participant_id": bot_participant_id, "after": after, "limit": limit}
    )
    return [(row.pk, dict(row.payload)) for row in rows]


async def last(conn: Connection, bot_participant_id: str, *, before: datetime | None = None) -> int:
    """The number of the bot's newest copy (recorded before ``before``); 0 for none."""
    params: dict[str, Any] = {"bot_participant_id": bot_participant_id}
    if before is not None:
        params["before"] = before
    found = (await conn.execute(_LAST if before is None else _LAST_BEFORE, params)).scalar()
    return int(found or 0)
