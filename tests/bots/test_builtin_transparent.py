"""The transparent manager (PROTOCOL 7.5, fixed)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tertulia.bots.base import ChatMessage, ConversationInfo
from tertulia.bots.builtin import TransparentManagerBot

LOCAL_ID = re.compile(r"[0-9a-f]{32}")

MessageFactory = Callable[..., ChatMessage]


@pytest.mark.parametrize("kind", ["T", "i", "V"])
def test_human_message_goes_to_every_other_bot(
    kind: str,
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    make_message: MessageFactory,
    ids: dict[str, str],
) -> None:
    """A human message of any type is redirected to every other bot by participant id."""
    message = make_message(type=kind, approved=True)
    TransparentManagerBot(info).receive_message(message)
    assert len(sent) == 1
    command = sent[0]
    assert command["type"] == "T"
    assert command["text"] == ""
    assert command["quoted_message_id"] == message.id
    assert LOCAL_ID.fullmatch(command["local_id"])
    assert json.loads(command["command"]) == {
        "action": "redirect",
        "bots": [ids["ECHO"], ids["Calculator"]],
        "overrides": {},
    }


def test_no_other_bot_means_no_redirect(
    info: ConversationInfo, sent: list[dict[str, Any]], make_message: MessageFactory
) -> None:
    """With no bot but itself, a human message is left alone."""
    info.participants = [p for p in info.participants if p["name"] in {"Ana", "Manager"}]
    TransparentManagerBot(info).receive_message(make_message(approved=True))
    assert sent == []


def test_unapproved_bot_answer_is_approved(
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    make_message: MessageFactory,
    ids: dict[str, str],
) -> None:
    """A bot's answer that people cannot see yet is approved."""
    answer = make_message(sent_by_human=False, sender_id=ids["ECHO"], text="HI", approved=False)
    TransparentManagerBot(info).receive_message(answer)
    assert len(sent) == 1
    assert sent[0]["quoted_message_id"] == answer.id
    assert sent[0]["text"] == ""
    assert LOCAL_ID.fullmatch(sent[0]["local_id"])
    assert json.loads(sent[0]["command"]) == {"action": "approve"}


@pytest.mark.parametrize("approved", [True, None])
def test_approved_bot_answer_is_ignored(
    approved: bool | None,
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    make_message: MessageFactory,
    ids: dict[str, str],
) -> None:
    """The second delivery of an approved answer (or one of unknown status) changes nothing."""
    answer = make_message(sent_by_human=False, sender_id=ids["ECHO"], approved=approved)
    TransparentManagerBot(info).receive_message(answer)
    assert sent == []


def test_own_and_system_messages_are_ignored(
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    make_message: MessageFactory,
    system_message: Callable[[str, str | None], ChatMessage],
    ids: dict[str, str],
) -> None:
    """Its own command messages and system messages are ignored."""
    bot = TransparentManagerBot(info)
    bot.receive_message(make_message(sent_by_human=False, sender_id=ids["manager"], approved=False))
    bot.receive_message(system_message("participant-joined", ids["manager"]))
    bot.receive_message(system_message("conversation-created", None))
    assert sent == []
