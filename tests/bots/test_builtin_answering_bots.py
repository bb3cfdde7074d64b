"""The echo and calculator bots (PROTOCOL 6.4)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tertulia.bots.base import ChatMessage, ConversationInfo
from tertulia.bots.builtin import CalculatorBot, UpperCaseEchoBot
from tertulia.bots.builtin.answering import AnsweringBot
from tertulia.domain.inputs import MAX_TEXT

LOCAL_ID = re.compile(r"[0-9a-f]{32}")

MessageFactory = Callable[..., ChatMessage]


class RecordingPauseEcho(UpperCaseEchoBot):
    """An echo bot that records its pauses instead of sleeping."""

    pauses: list[float] = []

    async def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


async def test_echo_answers_upper_case(
    info: ConversationInfo, sent: list[dict[str, Any]], make_message: MessageFactory
) -> None:
    """A human text is answered with its upper-case text, quoting it, with a fresh local id."""
    message = make_message(text="Hello, mundo ß")
    await UpperCaseEchoBot(info).receive_message(message)
    assert len(sent) == 1
    reply = sent[0]
    assert reply["type"] == "T"
    assert reply["text"] == "HELLO, MUNDO SS"
    assert reply["quoted_message_id"] == message.id
    assert LOCAL_ID.fullmatch(reply["local_id"])


@pytest.mark.parametrize("text", ["ß" * 2001, "ﬃ" * 1500, " " + "a" * 3999 + "ß"])
async def test_echo_answers_within_the_servers_limit(
    text: str, info: ConversationInfo, sent: list[dict[str, Any]], make_message: MessageFactory
) -> None:
    """(REST QA F10: "ß" * 2001 upper-cased is 4,002 characters, which the server refused,
    so ECHO failed and never answered a text it had accepted.) The answer is cut to the
    server's limit, once trimmed as the server trims it."""
    await UpperCaseEchoBot(info).receive_message(make_message(text=text))
    answer = sent[0]["text"]
    assert len(answer.strip()) == MAX_TEXT
    assert text.upper().strip().startswith(answer.strip())


async def test_echo_local_ids_are_fresh(
    info: ConversationInfo, sent: list[dict[str, Any]], make_message: MessageFactory
) -> None:
    """Each reply gets a new local id."""
    message = make_message()
    await UpperCaseEchoBot(info).receive_message(message)
    await UpperCaseEchoBot(info).receive_message(message)
    assert sent[0]["local_id"] != sent[1]["local_id"]


@pytest.mark.parametrize("kind", ["V", "a", "v", "i", "A"])
async def test_echo_answers_question_mark_to_files(
    kind: str, info: ConversationInfo, sent: list[dict[str, Any]], make_message: MessageFactory
) -> None:
    """A human message that is not text is answered with "?"."""
    message = make_message(type=kind, text="caption")
    await UpperCaseEchoBot(info).receive_message(message)
    assert [(m["text"], m["quoted_message_id"]) for m in sent] == [("?", message.id)]


async def test_echo_text_none_is_empty(
    info: ConversationInfo, sent: list[dict[str, Any]], make_message: MessageFactory
) -> None:
    """A text message without text is echoed as an empty text."""
    await UpperCaseEchoBot(info).receive_message(make_message(text=None))
    assert sent[0]["text"] == ""


@pytest.mark.parametrize("bot_class", [UpperCaseEchoBot, CalculatorBot])
async def test_bots_ignore_what_humans_did_not_send(
    bot_class: type[AnsweringBot],
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    make_message: MessageFactory,
    system_message: Callable[[str, str | None], ChatMessage],
    ids: dict[str, str],
) -> None:
    """System messages, bots' messages and their own messages get no answer."""
    bot = bot_class(info)
    await bot.receive_message(system_message("participant-joined", ids["human"]))
    await bot.receive_message(make_message(sent_by_human=False, sender_id=ids["ECHO"], text="1+2"))
    await bot.receive_message(make_message(sent_by_human=False, sender_id=ids["manager"], text="1"))
    assert sent == []


async def test_echo_pauses_for_its_delay(
    info: ConversationInfo, sent: list[dict[str, Any]], make_message: MessageFactory
) -> None:
    """A positive delay pauses once before answering; zero or negative does not pause."""
    RecordingPauseEcho.pauses = []
    await RecordingPauseEcho(info, delay=1.5).receive_message(make_message())
    await RecordingPauseEcho(info).receive_message(make_message())
    await RecordingPauseEcho(info, -1).receive_message(make_message())
    assert RecordingPauseEcho.pauses == [1.5]
    assert len(sent) == 3


async def test_pause_sleeps() -> None:
    """The default pause is asyncio.sleep (checked with zero seconds)."""
    bot = UpperCaseEchoBot(ConversationInfo("c", "b", lambda message: None))
    await bot.pause(0.0)
    assert bot.delay == 0.0


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("1+2", "3"),
        ("7*6", "42"),
        ("1/4", "0.25"),
        ("2**10", "1024"),
        ("-3", "-3"),
        ("1/0", "?"),
        ("1@2", "?"),
        ("__import__('os')", "?"),
        ("9**9**9**9", "?"),
        ("10**5000", "?"),
        ("hello", "?"),
        (None, "?"),
    ],
)
async def test_calculator_answers(
    text: str | None,
    answer: str,
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    make_message: MessageFactory,
) -> None:
    """A human text is answered with its value, or "?" when it is not accepted arithmetic."""
    message = make_message(text=text)
    await CalculatorBot(info, 0.0).receive_message(message)
    assert len(sent) == 1
    assert sent[0]["type"] == "T"
    assert sent[0]["text"] == answer
    assert sent[0]["quoted_message_id"] == message.id
    assert LOCAL_ID.fullmatch(sent[0]["local_id"])


async def test_calculator_answers_question_mark_to_files(
    info: ConversationInfo, sent: list[dict[str, Any]], make_message: MessageFactory
) -> None:
    """A human message that is not text is answered with "?" even if its caption is arithmetic."""
    await CalculatorBot(info).receive_message(make_message(type="i", text="1+2"))
    assert sent[0]["text"] == "?"
