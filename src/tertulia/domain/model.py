"""The domain's types: conversations, participants, messages, and their codes."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import IntEnum, StrEnum
from operator import attrgetter
from typing import Any

from tertulia.domain.times import format_time


class MessageType(StrEnum):
    """BLAB's message type codes (case-sensitive; compare equal to the plain strings)."""

    SYSTEM = "S"
    TEXT = "T"
    VOICE = "V"
    AUDIO = "a"
    VIDEO = "v"
    IMAGE = "i"
    ATTACHMENT = "A"


FILE_TYPES = frozenset(
    {
        MessageType.VOICE,
        MessageType.AUDIO,
        MessageType.VIDEO,
        MessageType.IMAGE,
        MessageType.ATTACHMENT,
    }
)


class SystemEvent(StrEnum):
    """The ``event`` of system messages."""

    CONVERSATION_CREATED = "conversation-created"
    PARTICIPANT_JOINED = "participant-joined"
    PARTICIPANT_LEFT = "participant-left"
    CONVERSATION_ENDED = "conversation-ended"


class Approval(IntEnum):
    """A message's approval status (never on the wire)."""

    NOT_APPROVED = 0
    AUTOMATIC = 1
    BY_MANAGER = 2


class ParticipantType(StrEnum):
    HUMAN = "H"
    BOT = "B"


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    name: str | None
    created_at: datetime
    ended: bool = False


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    conversation_id: str
    name: str
    type: ParticipantType
    is_required: bool = False
    is_manager: bool = False
    bot_name: str | None = None  # the bot spec's key, for bot participants

    @property
    def is_human(self) -> bool:
        return self.type is ParticipantType.HUMAN

    @property
    def is_bot(self) -> bool:
        return self.type is ParticipantType.BOT

    def public(self) -> dict[str, str]:
        """The participant as the wire shows it: ``{"id", "name", "type"}``."""
        return {"id": self.id, "name": self.name, "type": self.type.value}


@dataclass(slots=True)
class FileInfo:
    """An uploaded file (``path`` set) or an external one (``external_url`` set)."""

    path: str | None = None
    external_url: str | None = None
    size: int | None = None
    name: str | None = None
    mime_type: str | None = None


@dataclass(slots=True)
class Message:
    """A stored message. Treat it as immutable (make changed copies with
    ``dataclasses.replace``); it is not frozen only because a frozen dataclass is several
    times slower to build, and one is built per message stored, sent or read."""

    id: str
    conversation_id: str
    type: MessageType
    time: datetime
    approval: Approval
    seq: int | None = None
    sender_id: str | None = None
    text: str = ""
    local_id: str | None = None
    quoted_message_id: str | None = None
    event: SystemEvent | None = None
    additional_metadata: dict[str, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    file: FileInfo | None = None
    sent_by_human: bool = False
    # audit (never on the wire)
    command: str | None = None
    sent_by_manager: bool = False
    real_sender_id: str | None = None

    @property
    def is_system(self) -> bool:
        return self.type is MessageType.SYSTEM

    @property
    def visible(self) -> bool:
        """Whether people may see it (approval status > 0)."""
        return self.approval > Approval.NOT_APPROVED

    def numbered(self, seq: int) -> Message:
        """A copy with ``seq``: ``dataclasses.replace(self, seq=seq)`` in a quarter of its
        time (one is made for each message stored; ``replace`` looks every field up by
        name, twice)."""
        values = list(_message_values(self))
        values[_SEQ_POSITION] = seq
        return Message(*values)


_MESSAGE_FIELDS = [f.name for f in fields(Message)]
_message_values = attrgetter(*_MESSAGE_FIELDS)  # in the order of Message's positional init
_SEQ_POSITION = _MESSAGE_FIELDS.index("seq")


def public_message(message: Message, *, media_url: str = "/media/") -> dict[str, Any]:
    """The representation of PROTOCOL 5.1 (plus ``seq`` once the message is visible).

    Args:
        message: the stored message.
        media_url: prefix of uploaded files' relative URLs.
    """
    out: dict[str, Any] = {
        "type": message.type.value,
        "time": format_time(message.time),
        "id": message.id,
        "sent_by_human": message.sent_by_human,
    }
    if message.is_system:
        out["event"] = message.event.value if message.event else None
        out["additional_metadata"] = dict(message.additional_metadata)
    else:
        out["quoted_message_id"] = message.quoted_message_id
        out["sender_id"] = message.sender_id
        out["local_id"] = message.local_id
        out["text"] = message.text
        if message.type in FILE_TYPES:
            file = message.file
            if file is None:
                out["file_url"] = out["file_size"] = out["file_name"] = None
            else:
                out["file_url"] = (
                    media_url + file.path if file.path is not None else file.external_url
                )
                out["file_size"] = file.size
                out["file_name"] = file.name
    out["options"] = list(message.options)
    if message.seq is not None:
        out["seq"] = message.seq
    return out
