"""What a use case sends once its transaction commits: frames and bot deliveries.

A use case collects its effects in an :class:`Outgoing` while it writes; the chat publishes
the frames and wakes the runner only after commit, so nothing is seen before it is stored.
The routing itself is :mod:`tertulia.domain.routing`; this module applies it to frames
(serialised once per audience) and outbox rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from tertulia.domain.model import Message, Participant, SystemEvent
from tertulia.domain.routing import (
    EVERYONE,
    MANAGER,
    bot_recipients,
    message_audience,
    participant_tag,
    session_tag,
)
from tertulia.errors import ConversationGone, TertuliaError
from tertulia.realtime.broker import Event
from tertulia.storage.deliveries import Delivery, NewDelivery

Accepts = Callable[[Participant, str, dict[str, Any]], bool]
"""Whether a bot participant's class wants a delivery: (bot, kind, payload) -> bool."""

CLOSE_GONE = 4404  # a deleted conversation's sockets close with this (as a refused handshake)
CLOSE_SESSION_ENDED = 4403  # (as the handshake a lapsed session gets: refused, HTTP 403)


CLOSE_REASONS = {CLOSE_GONE: "conversation deleted", CLOSE_SESSION_ENDED: "session ended"}


def conversation_deleted() -> Event:
    """The order to every socket of a conversation, in every process, to close with
    :data:`CLOSE_GONE`: the conversation was deleted (``tertulia delete``). An older
    process that does not know the order sends its frame instead: an ``error`` frame."""
    return Event(EVERYONE, refusal_frame(ConversationGone()), close=CLOSE_GONE)


def sessions_ended(keys: Sequence[str]) -> Event:
    """The order to the sockets open on these (bot) sessions, in every process, to close
    with :data:`CLOSE_SESSION_ENDED`: a retry of their trigger replaced them. An older process
    that does not know the order has no socket with these tags: nobody gets its frame."""
    audience = frozenset(session_tag(key) for key in keys)
    return Event(
        audience, error_frame("session_ended", "Session ended."), close=CLOSE_SESSION_ENDED
    )


def redirected(public: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """A redirected copy of a message (PROTOCOL 7.3): its representation with the manager's
    ``overrides``, and no ``seq`` (it is not in the visible stream)."""
    payload = {**public, **(overrides or {})}
    payload.pop("seq", None)
    return payload


def message_frame(payload: dict[str, Any]) -> str:
    return orjson.dumps({"message": payload}).decode()


def state_frame(state: dict[str, Any]) -> str:
    return orjson.dumps({"state": state}).decode()


def state_event(state: dict[str, Any]) -> Event:
    """A ``state`` frame for every socket, superseding an earlier one not sent yet, with its
    count of participants (:attr:`Event.participants`)."""
    return Event(
        EVERYONE, state_frame(state), supersedes=True, participants=len(state["participants"])
    )


def error_frame(code: str, detail: str, local_id: str | None = None, **data: Any) -> str:
    """``{"error": {"code", "detail", "local_id", **data}}``: ``detail`` is always a text a
    person can read; what a machine reads (``errors``: field -> texts, ``retry_after``:
    seconds) is under its own keys."""
    error = {"code": code, "detail": detail, "local_id": local_id, **data}
    return orjson.dumps({"error": error}).decode()


def refusal_frame(exc: TertuliaError, local_id: str | None = None) -> str:
    """The ``error`` frame of a refusal raised as ``exc``."""
    return error_frame(exc.code, exc.detail, local_id, **exc.data())


@dataclass
class Outgoing:
    """Frames and deliveries collected during one transaction, in order."""

    conversation_id: str
    events: list[Event] = field(default_factory=list)
    deliveries: list[NewDelivery] = field(default_factory=list)
    recorded: list[Delivery] = field(default_factory=list)  # the deliveries, once written
    read_back: set[str] = field(default_factory=set)  # bots whose older deliveries run first
    state_changed: bool = False  # presence changed: a coalesced ``state`` frame is due
    stored: int = 0  # messages inserted

    @property
    def state_published(self) -> bool:
        """A ``state`` frame is among the events (it supersedes any earlier one)."""
        return any(event.supersedes for event in self.events)

    def publish_message(
        self,
        message: Message,
        public: dict[str, Any],
        bots: Sequence[Participant],
        *,
        has_manager: bool,
        accepts: Accepts,
    ) -> None:
        """Route a stored or newly approved message to sockets and to the conversation's
        ``bots`` (its bot participants, the manager included; PROTOCOL 7.1)."""
        audience = message_audience(message, has_manager=has_manager)
        if has_manager and not message.is_system:
            # The manager's copy says whether people can see it yet (an extension).
            if message.visible:
                self.events.append(Event(audience - {MANAGER}, message_frame(public), message.seq))
            flagged = {**public, "approved": message.visible}
            self.events.append(Event(frozenset({MANAGER}), message_frame(flagged), message.seq))
        elif audience:
            self.events.append(Event(audience, message_frame(public), message.seq))
        for bot in bot_recipients(message, bots, has_manager=has_manager):
            payload = {**public, "approved": message.visible} if bot.is_manager else public
            self.deliver(bot, "message", payload, accepts)

    def send_copy(
        self,
        bot: Participant,
        payload: dict[str, Any],
        accepts: Accepts,
        number: int | None = None,
    ) -> None:
        """A redirected copy (:func:`redirected`): to the bot's own sockets, with its
        ``number`` when it was recorded for them (``copy_seq``), and to its class."""
        sent = payload if number is None else {**payload, "copy_seq": number}
        self.events.append(
            Event(frozenset({participant_tag(bot.id)}), message_frame(sent), copy=number)
        )
        self.deliver(bot, "message", payload, accepts)

    def echo_to(self, participant_id: str, public: dict[str, Any]) -> None:
        """Re-send a stored message to one participant's sockets (a duplicate ``local_id``)."""
        self.events.append(
            Event(frozenset({participant_tag(participant_id)}), message_frame(public))
        )

    def publish_state(
        self,
        participants: Sequence[Participant],
        accepts: Accepts,
        *,
        state: dict[str, Any] | None = None,
    ) -> None:
        """Participants or presence changed: ``update_status`` to every bot, and a ``state``
        frame to every socket — ``state`` now (participants changed: clients need it before
        any message naming a newcomer), or, without it, coalesced by the chat with other
        presence changes (see ``Chat._flush``)."""
        if state is not None:
            self.events.append(state_event(state))
        else:
            self.state_changed = True
        status: dict[str, Any] | None = None
        for bot in participants:
            if bot.is_bot:
                if status is None:
                    status = {"participants": [p.public() for p in participants]}
                self.deliver(bot, "status", status, accepts)

    def deliver(
        self, bot: Participant, kind: str, payload: dict[str, Any], accepts: Accepts
    ) -> None:
        if accepts(bot, kind, payload):
            self.deliveries.append(NewDelivery(self.conversation_id, bot.id, kind, payload))

    def start_at(self, bot_id: str, after: int, copies_after: int | None) -> None:
        """The delivery of a triggered bot's own *participant-joined* (its cue to trigger
        the bot) says where the bot's first socket starts, as a call-back's does
        (:mod:`tertulia.recall`): ``after`` and ``copies_after`` in its metadata, which
        the trigger passes on. The stored message and its frames are left as they are."""
        point: dict[str, Any] = {"after": after}
        if copies_after is not None:
            point["copies_after"] = copies_after
        for i, delivery in enumerate(self.deliveries):
            payload = delivery.payload
            metadata = payload.get("additional_metadata") or {}
            if (
                delivery.bot_participant_id == bot_id
                and payload.get("event") == SystemEvent.PARTICIPANT_JOINED.value
                and metadata.get("participant_id") == bot_id
            ):
                cue = {**payload, "additional_metadata": {**metadata, **point}}
                self.deliveries[i] = replace(delivery, payload=cue)
