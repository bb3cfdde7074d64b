"""The pre-select manager (PROTOCOL 7.5, fixed)."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support.server import live_server
from tertulia.bots.base import ChatMessage, ConversationInfo
from tertulia.bots.builtin import PreSelectManagerBot
from tertulia.bots.builtin.preselect import CHOICE_KEY, DEFAULT_GREETING

LOCAL_ID = re.compile(r"[0-9a-f]{32}")
BOTS = ["ECHO", "Calculator"]
AFTER_ECHO = 'You are now talking to ECHO. Send "exit" to choose another.'

MessageFactory = Callable[..., ChatMessage]
SystemFactory = Callable[[str, str | None], ChatMessage]


def manager(info: ConversationInfo, **kwargs: Any) -> PreSelectManagerBot:
    return PreSelectManagerBot(info, bots=BOTS, **kwargs)


def assert_says(message: dict[str, Any], text: str, quoted: str | None, options: list[str]) -> None:
    assert message["type"] == "T"
    assert message["text"] == text
    assert message["quoted_message_id"] == quoted
    assert message["options"] == options
    assert LOCAL_ID.fullmatch(message["local_id"])
    assert json.loads(message["command"]) == {"self_approve": True}


def test_greets_when_it_joins(
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    system_message: SystemFactory,
    ids: dict[str, str],
) -> None:
    """Its own participant-joined makes it send the self-approved greeting with the bots."""
    manager(info).receive_message(system_message("participant-joined", ids["manager"]))
    assert len(sent) == 1
    assert_says(sent[0], DEFAULT_GREETING, None, BOTS)


def test_other_system_messages_are_ignored(
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    system_message: SystemFactory,
    ids: dict[str, str],
) -> None:
    """Others joining, its own leaving and other events send nothing."""
    bot = manager(info)
    bot.receive_message(system_message("participant-joined", ids["human"]))
    bot.receive_message(system_message("participant-joined", None))
    bot.receive_message(system_message("participant-left", ids["manager"]))
    bot.receive_message(system_message("conversation-created", None))
    assert sent == []


@pytest.mark.parametrize("text", ["ECHO", "  ECHO \n"])
def test_choosing_a_bot(
    text: str, info: ConversationInfo, sent: list[dict[str, Any]], make_message: MessageFactory
) -> None:
    """A bot's name chooses it: stored in state and answered with after_choice."""
    message = make_message(text=text)
    manager(info).receive_message(message)
    assert info.state == {CHOICE_KEY: "ECHO"}
    assert len(sent) == 1
    assert_says(sent[0], AFTER_ECHO, message.id, [])


@pytest.mark.parametrize(
    "fields", [{"text": "hello"}, {"text": "echo"}, {"text": "exit"}, {"type": "i", "text": "ECHO"}]
)
def test_anything_else_before_choosing_greets_again(
    fields: dict[str, Any],
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    make_message: MessageFactory,
) -> None:
    """Before a choice, any other human message is answered with the greeting."""
    message = make_message(**fields)
    manager(info).receive_message(message)
    assert info.state == {}
    assert len(sent) == 1
    assert_says(sent[0], DEFAULT_GREETING, message.id, BOTS)


@pytest.mark.parametrize("fields", [{"text": "hello"}, {"text": "Calculator"}, {"type": "i"}])
def test_after_choosing_messages_go_to_the_bot(
    fields: dict[str, Any],
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    make_message: MessageFactory,
) -> None:
    """Once chosen, every human message but the exit word is redirected to the chosen bot."""
    info.state[CHOICE_KEY] = "ECHO"
    message = make_message(**fields)
    manager(info).receive_message(message)
    assert info.state == {CHOICE_KEY: "ECHO"}
    assert len(sent) == 1
    assert sent[0]["text"] == ""
    assert sent[0]["quoted_message_id"] == message.id
    assert LOCAL_ID.fullmatch(sent[0]["local_id"])
    assert json.loads(sent[0]["command"]) == {
        "action": "redirect",
        "bots": ["ECHO"],
        "overrides": {},
    }


@pytest.mark.parametrize("text", ["exit", " EXIT ", "Exit"])
def test_exit_word_clears_the_choice(
    text: str, info: ConversationInfo, sent: list[dict[str, Any]], make_message: MessageFactory
) -> None:
    """The exit word (trimmed, any case) clears the choice and greets again."""
    info.state[CHOICE_KEY] = "ECHO"
    message = make_message(text=text)
    manager(info).receive_message(message)
    assert CHOICE_KEY not in info.state
    assert_says(sent[0], DEFAULT_GREETING, message.id, BOTS)


@pytest.mark.parametrize("stored", ["Gone", 3, None])
def test_stale_choice_counts_as_none(
    stored: object,
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    make_message: MessageFactory,
) -> None:
    """A stored choice that is not one of the offered bots is treated as no choice."""
    info.state[CHOICE_KEY] = stored
    message = make_message(text="hello")
    manager(info).receive_message(message)
    assert_says(sent[0], DEFAULT_GREETING, message.id, BOTS)


def test_custom_texts(
    info: ConversationInfo, sent: list[dict[str, Any]], make_message: MessageFactory
) -> None:
    """greeting, after_choice (with {bot} and {exit}, other braces kept) and exit_word apply."""
    bot_kwargs = {"greeting": "Pick:", "after_choice": "{bot} ready {x} ({exit})", "exit_word": "q"}
    manager(info, **bot_kwargs).receive_message(make_message(text="hi"))
    manager(info, **bot_kwargs).receive_message(make_message(text="Calculator"))
    manager(info, **bot_kwargs).receive_message(make_message(text="Q"))
    assert [m["text"] for m in sent] == ["Pick:", "Calculator ready {x} (q)", "Pick:"]


def test_choice_survives_new_instances(
    info: ConversationInfo, sent: list[dict[str, Any]], make_message: MessageFactory
) -> None:
    """The choice lives in conversation state, so the next event's fresh instance sees it."""
    manager(info).receive_message(make_message(text="Calculator"))
    manager(info).receive_message(make_message(text="1+2"))
    assert json.loads(sent[1]["command"])["bots"] == ["Calculator"]


def test_unapproved_bot_answer_is_approved(
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    make_message: MessageFactory,
    ids: dict[str, str],
) -> None:
    """A bot's answer people cannot see yet is approved."""
    answer = make_message(sent_by_human=False, sender_id=ids["ECHO"], text="HI", approved=False)
    manager(info).receive_message(answer)
    assert len(sent) == 1
    assert sent[0]["quoted_message_id"] == answer.id
    assert json.loads(sent[0]["command"]) == {"action": "approve"}


def test_ignored_messages(
    info: ConversationInfo,
    sent: list[dict[str, Any]],
    make_message: MessageFactory,
    ids: dict[str, str],
) -> None:
    """Approved answers and its own messages (human-looking or not) are ignored."""
    bot = manager(info)
    bot.receive_message(make_message(sent_by_human=False, sender_id=ids["ECHO"], approved=True))
    bot.receive_message(make_message(sent_by_human=False, sender_id=ids["manager"], approved=False))
    bot.receive_message(make_message(sent_by_human=True, sender_id=ids["manager"], text="ECHO"))
    assert sent == []
    assert info.state == {}


async def test_the_docs_example_lets_a_person_choose(make_settings: Any, people: Any) -> None:
    """docs/bots.md's PreSelectManagerBot, configured as shown: the greeting offers both bots,
    a choice is answered, what follows goes to the bot chosen, and the exit word undoes it."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "bots.md").read_text()
    (example,) = [
        b
        for b in re.findall(r"```toml\n(.*?)```", docs, flags=re.DOTALL)
        if "PreSelectManagerBot" in b
    ]
    async with live_server(make_settings(**tomllib.loads(example))) as server:
        alice = people(server)
        assert (await alice.create(nickname="alice", bots=BOTS)).status_code == 201
        socket = await alice.connect(after=0)
        await socket.message(text=DEFAULT_GREETING, options=BOTS)
        chose = await socket.message(local_id=await socket.say("Calculator"))
        after = 'You are now talking to Calculator. Send "menu" to choose another.'
        await socket.message(text=after, quoted_message_id=chose["id"])
        asked = await socket.message(local_id=await socket.say("1+2"))
        assert (await socket.message(quoted_message_id=asked["id"]))["text"] == "3"
        left = await socket.message(local_id=await socket.say("MENU"))
        await socket.message(text=DEFAULT_GREETING, quoted_message_id=left["id"], options=BOTS)
