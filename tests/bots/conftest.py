"""Fakes for the built-in bots' tests: a conversation whose send_function records messages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tertulia.bots.base import ChatMessage, ConversationInfo
from tertulia.domain.ids import new_id

MessageFactory = Callable[..., ChatMessage]


@pytest.fixture
def ids() -> dict[str, str]:
    """Participant ids of the fake conversation, by role."""
    return {
        "human": new_id(),
        "manager": new_id(),
        "ECHO": new_id(),
        "Calculator": new_id(),
    }


@pytest.fixture
def sent() -> list[dict[str, Any]]:
    """The messages the bot under test sent, in order."""
    return []


@pytest.fixture
def info(ids: dict[str, str], sent: list[dict[str, Any]]) -> ConversationInfo:
    """A conversation of one human, the manager and the ECHO and Calculator bots.

    The bot under test is the participant ``ids["manager"]``; ``sent`` records its sends.
    """

    def send(message: dict[str, Any]) -> dict[str, Any]:
        sent.append(message)
        return {"id": new_id(), **message}

    return ConversationInfo(
        conversation_id=new_id(),
        bot_participant_id=ids["manager"],
        send_function=send,
        participants=[
            {"id": ids["human"], "name": "Ana", "type": "H"},
            {"id": ids["manager"], "name": "Manager", "type": "B"},
            {"id": ids["ECHO"], "name": "ECHO", "type": "B"},
            {"id": ids["Calculator"], "name": "Calculator", "type": "B"},
        ],
    )


@pytest.fixture
def make_message(ids: dict[str, str]) -> MessageFactory:
    """Builds a ChatMessage: a human's text by default; keyword arguments replace fields."""

    def make(**fields: Any) -> ChatMessage:
        data: dict[str, Any] = {
            "id": new_id(),
            "time": datetime.now(UTC),
            "type": "T",
            "sent_by_human": True,
            "sender_id": ids["human"],
            "text": "hello",
        }
        data.update(fields)
        return ChatMessage.from_dict(data)

    return make


@pytest.fixture
def system_message(make_message: MessageFactory) -> Callable[[str, str | None], ChatMessage]:
    """Builds a system message with ``event`` and ``participant_id`` in its metadata."""

    def make(event: str, participant_id: str | None) -> ChatMessage:
        metadata = {} if participant_id is None else {"participant_id": participant_id}
        return make_message(
            type="S",
            sent_by_human=False,
            sender_id=None,
            text=None,
            event=event,
            additional_metadata=metadata,
        )

    return make
