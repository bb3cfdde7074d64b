"""The built-in bots together, under a minimal in-memory manager router (PROTOCOL A.3)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tertulia.bots.base import Bot, ChatMessage, ConversationInfo
from tertulia.bots.builtin import (
    CalcOrEchoManagerBot,
    CalculatorBot,
    PreSelectManagerBot,
    TransparentManagerBot,
    UpperCaseEchoBot,
)
from tertulia.domain.ids import new_id

BotFactory = Callable[[ConversationInfo], Bot]


class MiniChat:
    """Just enough of PROTOCOL 7.1-7.2 to run bots: approve, redirect, self_approve.

    Runs everything synchronously and in order; ``shown`` lists what people see.
    """

    def __init__(self, manager: BotFactory, bots: dict[str, BotFactory]) -> None:
        self.factories = {"Manager": manager, **bots}
        self.ids = {name: new_id() for name in ["Ana", *self.factories]}
        self.participants = [
            {"id": pid, "name": name, "type": "H" if name == "Ana" else "B"}
            for name, pid in self.ids.items()
        ]
        self.states: dict[str, dict[str, Any]] = {name: {} for name in self.factories}
        self.messages: dict[str, dict[str, Any]] = {}
        self.approved: set[str] = set()
        self.shown: list[str] = []

    def start(self) -> None:
        for name in self.factories:
            event = {"type": "S", "event": "participant-joined"}
            self._store(None, {**event, "additional_metadata": {"participant_id": self.ids[name]}})

    def say(self, text: str) -> None:
        self._post("Ana", {"type": "T", "text": text})

    def _post(self, sender: str, data: dict[str, Any]) -> dict[str, Any]:
        command = json.loads(data.get("command") or "{}") if sender == "Manager" else {}
        target = self.messages.get(data.get("quoted_message_id") or "")
        if target is not None and command.get("action") == "approve":
            self.approved.add(target["id"])
            self._publish(target)
        elif target is not None and command.get("action") == "redirect":
            for bot in command["bots"]:
                self._deliver(self._name(bot), {**target, **command["overrides"]}, None)
        message = {
            "type": data["type"],
            "text": data.get("text") or "",
            "sender_id": self.ids[sender],
            "sent_by_human": sender == "Ana",
            "quoted_message_id": data.get("quoted_message_id"),
            "options": data.get("options") or [],
            "local_id": data.get("local_id"),
        }
        return self._store(sender == "Ana" or command.get("self_approve") is True, message)

    def _store(self, approved: bool | None, data: dict[str, Any]) -> dict[str, Any]:
        message = {"id": new_id(), "time": datetime.now(UTC), "sent_by_human": False, **data}
        self.messages[message["id"]] = message
        if approved is not False:
            self.approved.add(message["id"])
        self._publish(message)
        return message

    def _publish(self, message: dict[str, Any]) -> None:
        approved = message["id"] in self.approved
        if message["type"] == "S":
            for name in self.factories:
                self._deliver(name, message, None)
            return
        if approved:
            self.shown.append(f"{self._name(message['sender_id'])}: {message['text']}")
        self._deliver("Manager", message, approved)

    def _deliver(self, name: str, data: dict[str, Any], approved: bool | None) -> None:
        info = ConversationInfo(
            conversation_id="c",
            bot_participant_id=self.ids[name],
            send_function=lambda message: self._post(name, message),
            participants=list(self.participants),
            state=self.states[name],
        )
        message = ChatMessage.from_dict({**data, "approved": approved})
        _run_to_end(self.factories[name](info).receive_message(message))

    def _name(self, name_or_id: str) -> str:
        return next(n for n, pid in self.ids.items() if name_or_id in {n, pid})


def _run_to_end(result: Any) -> None:
    """Finish an async bot's call at once (these bots never wait: no delay, no server)."""
    if inspect.iscoroutine(result):
        try:
            result.send(None)
        except StopIteration:
            return
        result.close()
        raise AssertionError("the bot waited for something")


ANSWERING_BOTS: dict[str, BotFactory] = {"ECHO": UpperCaseEchoBot, "Calculator": CalculatorBot}


def test_calc_or_echo_conversation() -> None:
    """Texts reach ECHO, arithmetic the calculator, and a failed sum ECHO (A.3 #27)."""
    chat = MiniChat(lambda info: CalcOrEchoManagerBot(info, "Calculator", "ECHO"), ANSWERING_BOTS)
    chat.start()
    for text in ["hello", "1+2", "1/0"]:
        chat.say(text)
    assert chat.shown == [
        "Ana: hello",
        "ECHO: HELLO",
        "Ana: 1+2",
        "Calculator: 3",
        "Ana: 1/0",
        "ECHO: 1/0",
    ]


def test_preselect_conversation() -> None:
    """Greeting, choice, talk to the chosen bot, exit, choose again (A.3 #28)."""
    chat = MiniChat(
        lambda info: PreSelectManagerBot(info, bots=["ECHO", "Calculator"]), ANSWERING_BOTS
    )
    chat.start()
    for text in ["hi", "ECHO", "hello", "exit", "Calculator", "7*6"]:
        chat.say(text)
    greeting = "Manager: Choose a bot:"
    assert chat.shown == [
        greeting,
        "Ana: hi",
        greeting,
        "Ana: ECHO",
        'Manager: You are now talking to ECHO. Send "exit" to choose another.',
        "Ana: hello",
        "ECHO: HELLO",
        "Ana: exit",
        greeting,
        "Ana: Calculator",
        'Manager: You are now talking to Calculator. Send "exit" to choose another.',
        "Ana: 7*6",
        "Calculator: 42",
    ]


def test_transparent_conversation() -> None:
    """Every bot answers every human message, and people see every answer (A.3 #29)."""
    chat = MiniChat(TransparentManagerBot, ANSWERING_BOTS)
    chat.start()
    chat.say("1+2")
    assert chat.shown == ["Ana: 1+2", "ECHO: 1+2", "Calculator: 3"]
