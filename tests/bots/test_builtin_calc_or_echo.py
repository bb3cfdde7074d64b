"""The calc-or-echo manager (PROTOCOL 7.5)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tertulia.bots.base import ChatMessage, ConversationInfo
from tertulia.bots.builtin import CalcOrEchoManagerBot

LOCAL_ID = re.compile(r"[0-9a-f]{32}")

MessageFactory = Callable[..., ChatMessage]


def manager(info: ConversationInfo) -> CalcOrEchoManagerBot:
    return CalcOrEchoManagerBot(info, "Calculator", "ECHO")


def command_of(message: dict[str, Any]) -> Any:
    return json.loads(message["command"])


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("1+2", "Calculator"),
        ("(1 + 2) * 3.5", "Calculator"),
        ("1/0", "Calculator"),
        ("2**10", "Calculator"),
        ("hello", "ECHO"),
        ("2^3", "ECHO"),
        ("x+1", "ECHO"),
        ("", "ECHO"),
        (None, "ECHO"),
    ],
)
def test_human_text_is_routed(
    text: str | None,
    target: str,
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    make_message: MessageFactory,
) -> None:
    """Arithmetic-looking texts go to the calculator, other texts to the echo bot."""
    message = make_message(text=text, approved=True)
    manager(info).receive_message(message)
    assert len(sent) == 1
    assert sent[0]["type"] == "T"
    assert sent[0]["text"] == ""
    assert sent[0]["quoted_message_id"] == message.id
    assert LOCAL_ID.fullmatch(sent[0]["local_id"])
    assert command_of(sent[0]) == {"action": "redirect", "bots": [target], "overrides": {}}


def test_human_file_goes_to_echo(
    info: ConversationInfo, sent: list[dict[str, Any]], make_message: MessageFactory
) -> None:
    """A human message that is not text goes to the echo bot, whatever its caption."""
    manager(info).receive_message(make_message(type="i", text="1+2", approved=True))
    assert command_of(sent[0])["bots"] == ["ECHO"]


def test_keyword_arguments(
    info: ConversationInfo, sent: list[dict[str, Any]], make_message: MessageFactory
) -> None:
    """The bot names may be given by keyword."""
    bot = CalcOrEchoManagerBot(info, echo_bot_name="ECHO", calculator_bot_name="Calculator")
    bot.receive_message(make_message(text="7*6"))
    assert command_of(sent[0])["bots"] == ["Calculator"]


def test_calculator_question_mark_is_sent_to_echo(
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    make_message: MessageFactory,
    ids: dict[str, str],
) -> None:
    """The calculator's "?" is not approved; the human message it quotes goes to echo."""
    human = make_message(text="1/0")
    failure = make_message(
        sent_by_human=False,
        sender_id=ids["Calculator"],
        text="?",
        quoted_message_id=human.id,
        approved=False,
    )
    manager(info).receive_message(failure)
    assert len(sent) == 1
    assert sent[0]["quoted_message_id"] == human.id
    assert command_of(sent[0]) == {"action": "redirect", "bots": ["ECHO"], "overrides": {}}


def test_calculator_question_mark_quoting_nothing_is_dropped(
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    make_message: MessageFactory,
    ids: dict[str, str],
) -> None:
    """A calculator "?" that quotes no message is neither approved nor redirected."""
    failure = make_message(
        sent_by_human=False, sender_id=ids["Calculator"], text="?", approved=False
    )
    manager(info).receive_message(failure)
    assert sent == []


@pytest.mark.parametrize(("sender", "text"), [("Calculator", "3"), ("ECHO", "?"), ("ECHO", "HI")])
def test_other_bot_answers_are_approved(
    sender: str,
    text: str,
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    make_message: MessageFactory,
    ids: dict[str, str],
) -> None:
    """Any unapproved bot answer but the calculator's "?" is approved."""
    answer = make_message(sent_by_human=False, sender_id=ids[sender], text=text, approved=False)
    manager(info).receive_message(answer)
    assert len(sent) == 1
    assert sent[0]["quoted_message_id"] == answer.id
    assert command_of(sent[0]) == {"action": "approve"}


def test_unknown_sender_answer_is_approved(
    info: ConversationInfo, sent: list[dict[str, Any]], make_message: MessageFactory
) -> None:
    """A "?" from a sender not among the participants is an ordinary answer."""
    answer = make_message(sent_by_human=False, sender_id="someone", text="?", approved=False)
    manager(info).receive_message(answer)
    assert command_of(sent[0]) == {"action": "approve"}


def test_ignored_messages(
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    make_message: MessageFactory,
    system_message: Callable[[str, str | None], ChatMessage],
    ids: dict[str, str],
) -> None:
    """Approved bot answers, its own messages and system messages are ignored."""
    bot = manager(info)
    bot.receive_message(make_message(sent_by_human=False, sender_id=ids["ECHO"], approved=True))
    bot.receive_message(
        make_message(sent_by_human=False, sender_id=ids["Calculator"], text="?", approved=True)
    )
    bot.receive_message(make_message(sent_by_human=False, sender_id=ids["manager"], approved=False))
    bot.receive_message(system_message("participant-joined", ids["manager"]))
    assert sent == []
