"""The rules of calling back an absent external bot (tertulia/recall.py), and its trigger
class standing down when the bot is back already."""

from __future__ import annotations

from typing import Any

import pytest

from tertulia.bots.base import BotServices, ChatMessage, ConversationInfo
from tertulia.bots.external import WebSocketExternalBot
from tertulia.domain.model import Participant, ParticipantType
from tertulia.recall import Recall, resume_point


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def bot(participant_id: str) -> Participant:
    return Participant(
        id=participant_id,
        conversation_id="c",
        name=participant_id,
        type=ParticipantType.BOT,
        bot_name="Ext",
    )


def test_a_bot_is_due_once_per_period() -> None:
    clock = Clock()
    recall = Recall(10.0, clock)
    a, b, c = bot("a"), bot("b"), bot("c")
    recall.triggered([c])  # (at the conversation's creation)
    assert recall.due([a, c]) == [a], "never triggered here: at once; c may be on its way"
    assert recall.due([a, b]) == [b], "a was just triggered"
    clock.now += 9.9
    assert recall.due([a, b, c]) == []
    clock.now += 0.1
    assert recall.due([a, b, c]) == [a, b, c]


def test_a_bot_that_came_is_due_again_as_soon_as_it_is_gone() -> None:
    """The period covers a trigger on its way; a bot that has come answered it."""
    clock = Clock()
    recall = Recall(10.0, clock)
    c = bot("c")
    recall.triggered([c])
    clock.now += 1
    recall.answered("c")
    assert recall.due([c]) == [c]
    assert recall.due([c]) == [], "triggered again: now on its way"


def test_zero_turns_it_off() -> None:
    assert not Recall(0).enabled
    assert Recall(0.5).enabled


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"after": 7}, 7),
        ({"after": 0}, 0),
        ({}, None),
        ({"after": -1}, None),
        ({"after": True}, None),
        ({"after": "7"}, None),
    ],
)
def test_resume_points_are_whole_numbers(metadata: dict[str, Any], expected: int | None) -> None:
    assert resume_point(metadata, "after") == expected


async def test_the_trigger_stands_down_when_the_bot_is_connected() -> None:
    """A recall that crosses the bot's return: nothing is POSTed, no session is made."""
    asked: list[str] = []

    async def new_session() -> str:
        asked.append("session")
        return "key"

    async def connected() -> bool:
        return True

    services = BotServices(http=None, new_session=new_session, connected=connected)
    info = ConversationInfo("c", "b", lambda message: None, services=services)
    trigger = WebSocketExternalBot(info, "http://127.0.0.1:1/")
    joined = ChatMessage.from_dict(
        {
            "type": "S",
            "time": "2026-12-05T12:00:00Z",
            "id": "m",
            "sent_by_human": False,
            "event": "participant-joined",
            "additional_metadata": {"participant_id": "b", "after": 3},
        }
    )
    await trigger.receive_message(joined)
    assert asked == []
