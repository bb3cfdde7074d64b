"""The storage floor: the rows Tertulia writes per message, written with nothing else.

Used by ``bench.echo_server --store FILE`` (the *stored limit*): the bare limit, plus
what no compatible server may skip, with none of Tertulia's own code on the path. A
person's text is stored with its delivery to the bot in one commit, then the bot's answer
with that delivery's completion in another; the frames go out only after their commit, so
"acknowledged means stored" holds as in Tertulia. The file is SQLite with Tertulia's own
schema (its migrations), connection settings (``open_connection``: WAL,
``synchronous=NORMAL``, foreign keys), time text (``UTCDateTime``) and statements (the
message ``INSERT`` with its ``ON CONFLICT`` on the sender's ``local_id``, the delivery's
``INSERT``, its completion's ``UPDATE``), and its ways: ids ordered by time (UUIDv7), each
conversation's ``seq`` counted in memory, commits grouped (the use cases ready within two
turns of the event loop share one transaction, and none returns before its ``COMMIT``),
checkpoints off the loop by Tertulia's own :class:`~tertulia.storage.sqlite.Checkpointer`,
quiet windows included (without them the log never starts over under steady load: it grew
to 2.7 GB in 15 seconds here, and its writes doubled the server's CPU per answer).

What it leaves out, and Tertulia does: validation, the chat's rules and routing, the
bot runner (the answer is written inline, not by a bot), savepoints per use case, the
outcomes' own batched write, the working indicator, logs, every failure path. So
Tertulia / stored limit measures what Tertulia's own code costs, and stored limit / bare
limit what storing costs. The scenarios it is measured in: ``STORED_SCENARIOS``
(``bench.servers``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import orjson
from sqlalchemy.dialects import sqlite

from tertulia.domain.times import utcnow
from tertulia.storage.migrate import upgrade
from tertulia.storage.sqlite import Checkpointer, open_connection
from tertulia.storage.tables import UTCDateTime

Statement = tuple[str, Sequence[Any]]

db_time = cast(Callable[[datetime], str], UTCDateTime().bind_processor(sqlite.dialect()))
"""Tertulia's SQLite text of a time (its column type's own conversion, always one there)."""

MESSAGE_COLUMNS = (
    "id, conversation_id, type, time, approval, seq, sender_id, sent_by_human, text, "
    "local_id, quoted_message_id, sent_by_manager"
)
INSERT_MESSAGE_ALWAYS = (
    f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?, ?, 'T', ?, 1, ?, ?, ?, ?, ?, ?, 0)"
)
"""The message's ``INSERT`` with no ``ON CONFLICT`` (``bench.storing``: without the
sender's ``local_id`` constraint)."""
INSERT_MESSAGE = (
    f"{INSERT_MESSAGE_ALWAYS} ON CONFLICT (conversation_id, sender_id, local_id) DO NOTHING"
)
INSERT_DELIVERY = (
    "INSERT INTO deliveries (conversation_id, bot_participant_id, kind, payload, status, "
    "attempts, created_at) VALUES (?, ?, 'message', ?, 'pending', 0, ?)"
)
FINISH_DELIVERY = (
    "UPDATE deliveries SET status = 'done', attempts = 1, finished_at = ? WHERE pk = ?"
)
INSERT_CONVERSATION = (
    "INSERT INTO conversations (id, name, created_at, ended, last_seq) VALUES (?, '', ?, 0, 0)"
)
INSERT_PARTICIPANT = (
    "INSERT INTO participants (id, conversation_id, ordinal, name, type, is_required, "
    "is_manager, bot_name, created_at) VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?)"
)


class Store:
    """One SQLite connection on the event loop, with grouped commits."""

    def __init__(self, path: Path) -> None:
        upgrade(f"sqlite+aiosqlite:///{path}")
        self._conn = open_connection(str(path))
        self._batch: asyncio.Future[None] | None = None
        self._seqs: dict[str, int] = {}
        self._checkpointer = Checkpointer(str(path), self._quiet)
        self._quiet_window: asyncio.Future[None] | None = None

    async def write(self, statements: Sequence[Statement]) -> list[int]:
        """Runs ``statements`` in the current batch; returns their rowids once committed."""
        while self._quiet_window is not None:
            await self._quiet_window
        if self._batch is None:
            loop = asyncio.get_running_loop()
            self._conn.execute("BEGIN IMMEDIATE")
            self._batch = loop.create_future()
            loop.call_soon(loop.call_soon, self._commit)
        batch = self._batch
        rowids = [self._conn.execute(sql, params).lastrowid or 0 for sql, params in statements]
        await batch
        return rowids

    def _commit(self) -> None:
        batch, self._batch = self._batch, None
        if batch is None:  # committed early, for a quiet window
            return
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:  # a benchmark's reference: fail loudly, never hide it
            self._conn.execute("ROLLBACK")
            batch.set_exception(exc)
        else:
            batch.set_result(None)
            self._checkpointer.committed()

    async def _quiet(self, work: Callable[[], Awaitable[object]]) -> None:
        """Run ``work`` while no write transaction is open (writers wait for it), as
        Tertulia's SQLite backend does."""
        self._commit()
        window = self._quiet_window = asyncio.get_running_loop().create_future()
        try:
            await work()
        finally:
            self._quiet_window = None
            window.set_result(None)

    def next_seq(self, conversation_id: str) -> int:
        """The conversation's next visible number (counted in memory, as Tertulia does)."""
        seq = self._seqs.get(conversation_id, 0) + 1
        self._seqs[conversation_id] = seq
        return seq

    async def create(self, conversation_id: str, participants: list[dict[str, str]]) -> None:
        """Stores a conversation and its participants (``id``, ``name``, ``type``)."""
        now = db_time(utcnow())
        rows: list[Statement] = [(INSERT_CONVERSATION, (conversation_id, now))]
        for ordinal, p in enumerate(participants):
            bot_name = p["name"] if p["type"] == "B" else None
            params = (p["id"], conversation_id, ordinal, p["name"], p["type"], bot_name, now)
            rows.append((INSERT_PARTICIPANT, params))
        await self.write(rows)

    async def join(self, conversation_id: str, participant: dict[str, str], ordinal: int) -> None:
        """Stores a participant who joined."""
        now = db_time(utcnow())
        params = (participant["id"], conversation_id, ordinal, participant["name"], "H", None, now)
        await self.write([(INSERT_PARTICIPANT, params)])

    async def message(
        self, conversation_id: str, message: dict[str, Any], bot_id: str | None
    ) -> int | None:
        """Stores a person's message, and its delivery to ``bot_id`` when there is a bot;
        returns the delivery's key."""
        rows: list[Statement] = [(INSERT_MESSAGE, _message_row(conversation_id, message))]
        if bot_id is not None:
            payload = orjson.dumps(message).decode()
            created = _time_of(message)
            rows.append((INSERT_DELIVERY, (conversation_id, bot_id, payload, created)))
        rowids = await self.write(rows)
        return rowids[1] if bot_id is not None else None

    async def answer(self, conversation_id: str, message: dict[str, Any], delivery: int) -> None:
        """Stores a bot's answer and marks the delivery that brought it done."""
        finished = db_time(utcnow())
        await self.write(
            [
                (INSERT_MESSAGE, _message_row(conversation_id, message)),
                (FINISH_DELIVERY, (finished, delivery)),
            ]
        )


def _time_of(message: dict[str, Any]) -> str:
    """The SQLite text of a message's wire ``time``."""
    return db_time(datetime.fromisoformat(message["time"]))


def _message_row(conversation_id: str, message: dict[str, Any]) -> tuple[Any, ...]:
    return (
        message["id"],
        conversation_id,
        _time_of(message),
        message["seq"],
        message["sender_id"],
        message["sent_by_human"],
        message["text"],
        message["local_id"],
        message["quoted_message_id"],
    )
