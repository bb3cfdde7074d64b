"""The internal bot API, compatible with BLAB's (PROTOCOL 6.2).

A bot is any class built as ``cls(conversation_info, *args, **kwargs)`` with the methods
``receive_message(message)`` and ``update_status(status)``; either may be a plain function
(run in a worker thread) or a coroutine function (run on the event loop). Subclassing
:class:`Bot` is optional: classes written for BLAB work unchanged.

A fresh instance is made for every event, as in BLAB, so state that must survive belongs in
``conversation_info.state`` (a dict stored durably per conversation and bot: it is loaded
before each call and saved after the call returns normally).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from tertulia.domain.model import MessageType

SendFunction = Callable[[dict[str, Any]], Any]
SessionFactory = Callable[[], Awaitable[str]]
"""Stores a message as sent by the bot and returns its representation (PROTOCOL 5.1).

Called from a worker thread (a synchronous bot) it blocks until the message is stored and
returns the stored message as a dict; for a duplicate ``local_id`` (a retried delivery
sending again what its first attempt sent), the message stored then.
Called on the event loop (an asynchronous bot) it returns an awaitable of the same.
Raises :class:`tertulia.errors.ValidationFailed` for invalid input.
"""
RecentMessages = Callable[[int], Awaitable[list[dict[str, Any]]]]


class BotFailed(Exception):
    """A bot's failure said in words: the runner logs its text alone. Raise it (or a
    subclass) for a failure you expect, such as a service of yours out of reach; any other
    exception is logged with its traceback, which names the line that raised it. Either
    way the delivery is tried again (the spec's ``retries``)."""


@dataclass(frozen=True, slots=True)
class BotServices:
    """Server resources a bot may use (external bots mostly).

    Attributes:
        http: the server's shared HTTP client (timeouts set; use it, do not make your own).
        new_session: creates a session valid only for this bot in this conversation and
            returns its key (the ``sessionid`` cookie value an external bot connects with).
        recent_messages: ``await recent_messages(n)`` is the conversation's newest ``n``
            messages people can see, oldest first, as wire representations (PROTOCOL 5.1).
        connected: ``await connected()``: whether this bot has a socket open now (on any
            server process).
        trigger_session: as ``new_session``, for a trigger (a WebSocket bot's): it lasts a
            short while until the bot uses it, and on a retry of the trigger it ends the
            sessions the delivery's earlier attempts handed out, and their sockets.
    """

    http: Any
    new_session: SessionFactory
    recent_messages: RecentMessages | None = None
    connected: Callable[[], Awaitable[bool]] | None = None
    trigger_session: SessionFactory | None = None


@dataclass(slots=True)
class ConversationInfo:
    """What a bot knows of its conversation.

    Attributes:
        conversation_id: the conversation's id (a ``str``, canonical).
        bot_participant_id: this bot's participant id in it.
        send_function: see :data:`SendFunction`.
        participants: the conversation's participants, ``[{"id", "name", "type"}]``, at the
            time of the call (an extension; BLAB bots learn them from ``update_status``).
        state: durable per-(conversation, bot) state; JSON values only.
        services: server resources (HTTP client, bot sessions); None outside the server.
        delivery_id: the id of the delivery being handled, a UUID string, the same on every
            retry of it (an idempotency key for outbound calls; a webhook bot sends it as
            its ``delivery_id``); None outside the runner.
        bot_name: the bot's name in the configuration (``[bots.<name>]``), for its log
            lines; None outside the runner.
    """

    conversation_id: str
    bot_participant_id: str
    send_function: SendFunction
    participants: list[dict[str, str]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    services: BotServices | None = None
    delivery_id: str | None = None
    bot_name: str | None = None


_FIELDS: dict[type, frozenset[str]] = {}


@dataclass(slots=True)
class ChatMessage:
    """A message as a bot receives it: the wire representation as attributes.

    Keys BLAB's ``ChatMessage`` has are always present (``None`` when absent on the wire).
    Extensions: ``file_url``, ``file_size``, ``file_name``, ``seq``, and ``approved`` (set
    only on deliveries to the manager: whether people can see the message yet).
    """

    id: str
    time: datetime
    type: MessageType
    sent_by_human: bool
    options: list[str] = field(default_factory=list)
    local_id: str | None = None
    text: str | None = None
    sender_id: str | None = None
    additional_metadata: dict[str, Any] | None = None
    event: str | None = None
    quoted_message_id: str | None = None
    file_url: str | None = None
    file_size: int | None = None
    file_name: str | None = None
    seq: int | None = None
    approved: bool | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChatMessage:
        """Build from a wire representation (with any redirect overrides merged in).

        Unknown keys are dropped; ``time`` may be a datetime or an ISO string.
        """
        known = _FIELDS.get(cls)
        if known is None:
            known = _FIELDS[cls] = frozenset(f.name for f in fields(cls))
        values = {k: v for k, v in data.items() if k in known}
        moment = values.get("time")
        if isinstance(moment, str):
            values["time"] = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        values["type"] = MessageType(values["type"])
        values["options"] = list(values.get("options") or [])
        return cls(**values)


class Bot:
    """Optional base class for internal bots.

    Subclasses override :meth:`receive_message` and, if they care, :meth:`update_status`.
    Either may be ``async def``. A subclass that does not override :meth:`update_status` is
    not sent status updates at all.

    Optional hook, for any bot class: a classmethod
    ``accepts_delivery(kind, payload, participant_id) -> bool`` (``kind`` is ``"message"`` or
    ``"status"``, ``payload`` the wire representation). Deliveries it refuses are never
    recorded or run — a cheap way for a bot that ignores most messages to cost nothing.
    """

    def __init__(self, conversation_info: ConversationInfo, *args: Any, **kwargs: Any) -> None:
        self.conversation_info = conversation_info

    def receive_message(self, message: ChatMessage) -> Awaitable[None] | None:
        """Called with every message routed to this bot (PROTOCOL 7.1)."""

    def update_status(self, status: dict[str, Any]) -> Awaitable[None] | None:
        """Called with ``{"participants": [...]}`` when participants or presence change."""

    def send(self, **message: Any) -> Any:
        """Shorthand for ``self.conversation_info.send_function(message)``."""
        return self.conversation_info.send_function(message)
