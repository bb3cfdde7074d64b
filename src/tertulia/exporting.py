"""``tertulia export``: conversations as JSON Lines, for research, audits and backups of
the record.

One line per conversation::

    {"conversation": {"id", "name", "created_at", "ended"},
     "participants": [{"id", "name", "type", "is_required", "is_manager", "bot_name"}, ...],
     "messages": [...]}

``messages`` holds every stored message in the order it was stored, each in its wire form
(PROTOCOL 5.1: ``seq`` once people can see it, ``file_url`` and the file's metadata, not its
bytes) plus what the wire never shows: ``approved`` (whether people can see it),
``approved_at`` (when a manager approved it), ``sent_by_manager``, ``command`` (a
manager's) and ``real_sender_id`` (behind ``on_behalf_of``). Bot answers a manager never
approved are there too, with ``"approved": false``.

Each conversation is read in one read-only snapshot (a running server may go on writing:
the line is the conversation as it was at one moment), a page of messages at a time, into
a spooled temporary file, and copied out only once its line is whole: memory does not grow
with a conversation's length, and a failure never leaves half a line. An output file is
written beside its final name and takes it only when the export succeeded, so a failed
export never replaces a good one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from tertulia.domain.model import Conversation, Message, Participant, public_message
from tertulia.domain.times import format_time
from tertulia.errors import TertuliaError
from tertulia.storage import conversations as conv_repo
from tertulia.storage import messages as msg_repo
from tertulia.storage.database import Database
from tertulia.storage.migrate import open_current

PAGE = 500
"""Messages (and conversation ids) read per statement."""
SPOOL = 8 * 1024 * 1024
"""Bytes of a line kept in memory before its spool goes to a temporary file."""


@dataclass(slots=True)
class Exported:
    """What an export wrote (whole lines only), and the ids asked for that name no
    conversation."""

    conversations: int = 0
    messages: int = 0
    missing: list[str] = field(default_factory=list)


def _conversation(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "name": conversation.name,
        "created_at": format_time(conversation.created_at),
        "ended": conversation.ended,
    }


def _participant(participant: Participant) -> dict[str, Any]:
    return {
        **participant.public(),
        "is_required": participant.is_required,
        "is_manager": participant.is_manager,
        "bot_name": participant.bot_name,
    }


def _message(message: Message, approved_at: datetime | None) -> dict[str, Any]:
    return {
        **public_message(message),
        "approved": message.visible,
        "approved_at": format_time(approved_at) if approved_at is not None else None,
        "sent_by_manager": message.sent_by_manager,
        "command": message.command,
        "real_sender_id": message.real_sender_id,
    }


async def _write_one(db: Database, conversation_id: str, out: IO[bytes], done: Exported) -> None:
    """Write one conversation's line, or note its id as missing."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL) as line:
        async with db.snapshot() as conn:
            conversation = await conv_repo.get_conversation(conn, conversation_id)
            if conversation is None:
                done.missing.append(conversation_id)
                return
            people = await conv_repo.list_participants(conn, conversation_id)
            head = orjson.dumps(
                {
                    "conversation": _conversation(conversation),
                    "participants": [_participant(p) for p in people],
                }
            )
            line.write(head[:-1] + b', "messages": [')
            keys = await msg_repo.stored_keys(conn, conversation_id)
            for start in range(0, len(keys), PAGE):
                page = await msg_repo.stored_messages(conn, keys[start : start + PAGE])
                line.write(
                    (b"," if start else b"")
                    + b",".join(orjson.dumps(_message(m, at)) for m, at in page)
                )
        line.write(b"]}\n")
        line.seek(0)
        shutil.copyfileobj(line, out)
    done.conversations += 1
    done.messages += len(keys)


async def export_conversations(
    db: Database, out: IO[bytes], conversation_ids: Sequence[str] = ()
) -> Exported:
    """Write the conversations named (each once, in the order given), or every one (by
    id: in the order they were created) when none is named, one JSON line each."""
    done = Exported()
    if conversation_ids:
        for conversation_id in dict.fromkeys(conversation_ids):
            await _write_one(db, conversation_id, out, done)
        return done
    after = ""
    while True:
        async with db.read() as conn:
            ids = await conv_repo.conversation_ids(conn, after, limit=PAGE)
        for conversation_id in ids:
            await _write_one(db, conversation_id, out, done)
        if len(ids) < PAGE:
            return done
        after = ids[-1]


class CannotWrite(TertuliaError):
    """The output file cannot be written where it is named: its directory is missing, is
    not a directory or cannot be written, or the name is a directory's."""

    code = "cannot_write"


def _beside(output: str) -> IO[bytes]:
    """A new file, its owner's only, beside ``output``, to take its name once complete.

    Raises:
        CannotWrite: naming ``output`` as given (not the temporary file) and the reason.
    """
    target = Path(output)
    try:
        if target.is_dir():  # (else found only at the end, by the rename)
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        return tempfile.NamedTemporaryFile(
            dir=target.parent, prefix=f".{target.name}.", delete=False
        )
    except OSError as exc:
        raise CannotWrite(f"cannot write {output}: {exc.strerror or exc}") from exc


async def export_database(
    url: str,
    schema: str | None,
    conversation_ids: Sequence[str],
    output: str | None,
    stdout: IO[bytes],
    *,
    check: Callable[[], Awaitable[None]] | None = None,
) -> Exported:
    """Export from the database at ``url`` to the file ``output`` (replaced only once the
    export succeeded), or to ``stdout``.

    Args:
        check: awaited once the output file could be made, before the database is opened
            (the command's preflight: a wrong ``output`` is said before it).

    Raises:
        CannotWrite: ``output`` cannot be written (found before the database is opened).
        ConfigurationError: no SQLite file at ``url`` (opening it would create one).
        SchemaNotCurrent: the database is not at this code's schema (a wrong
            ``database_schema``, say).
    """
    if output is None:
        done = await _export(url, schema, conversation_ids, stdout, check)
        stdout.flush()
        return done
    partial = _beside(output)
    try:
        done = await _export(url, schema, conversation_ids, partial, check)
        partial.flush()
        os.fsync(partial.fileno())
        partial.close()
        os.replace(partial.name, output)
    except BaseException:
        partial.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial.name)
        raise
    return done


async def _export(
    url: str,
    schema: str | None,
    conversation_ids: Sequence[str],
    out: IO[bytes],
    check: Callable[[], Awaitable[None]] | None,
) -> Exported:
    if check is not None:
        await check()
    db = await open_current(url, schema)
    try:
        return await export_conversations(db, out, conversation_ids)
    finally:
        await db.close()
