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

The line is written as it is read, a page of messages at a time, so memory does not grow
with a conversation's length. Only reads: a running server may keep writing meanwhile (what
it stores after a conversation's last page was read is not in that line).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO

import orjson

from tertulia.domain.model import Conversation, Message, Participant, public_message
from tertulia.domain.times import format_time
from tertulia.storage import conversations as conv_repo
from tertulia.storage import messages as msg_repo
from tertulia.storage.database import Database

PAGE = 1000
"""Messages (and conversation ids) read per statement."""


@dataclass(slots=True)
class Exported:
    """What an export wrote, and the ids asked for that name no conversation."""

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


async def _write_one(db: Database, conversation_id: str, out: BinaryIO, done: Exported) -> None:
    """Write one conversation's line, or note its id as missing."""
    async with db.read() as conn:
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
        out.write(head[:-1] + b', "messages": [')
        after, first = 0, True
        while True:
            page = await msg_repo.stored_after(conn, conversation_id, after, limit=PAGE)
            for pk, message, approved_at in page:
                out.write((b"" if first else b",") + orjson.dumps(_message(message, approved_at)))
                first, after = False, pk
            done.messages += len(page)
            if len(page) < PAGE:
                break
    out.write(b"]}\n")
    done.conversations += 1


async def export_conversations(
    db: Database, out: BinaryIO, conversation_ids: Sequence[str] = ()
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
