"""Manager commands (PROTOCOL 7.2-7.4) sent over the manager's socket or REST: A.3 #22-26."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from support.blab import Person
from support.bots import watch_logs
from support.managers import (
    Room,
    bot_client,
    delivery_rows,
    manager_bots,
    message_deliveries,
    stored_count,
    stored_message,
)
from support.server import live_server
from tertulia.domain.ids import new_id, new_local_id
from tertulia.storage.tables import messages


@pytest.fixture(params=["ws", "rest"])
def transport(request: pytest.FixtureRequest) -> str:
    """How the manager sends: over its socket, or by REST with its session."""
    return str(request.param)


@pytest.fixture
async def room(make_settings: Any, people: Any) -> AsyncIterator[Room]:
    """alice and bob with ECHO and Calculator, and a socket-driven manager (held to its own
    ``manager`` rate limit; people's ``message`` limit is off)."""
    settings = make_settings(manager="Manager", bots=manager_bots(), rate_limits={"message": ""})
    async with live_server(settings) as server:
        yield await Room.open(server, people, ["ECHO", "Calculator"])


def frame(text: str = "", command: Any = None, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "T", "text": text, "local_id": new_local_id(), **fields}
    if command is not None:
        out["command"] = command if isinstance(command, str | int | list) else json.dumps(command)
    return out


async def send(room: Room, transport: str, message: dict[str, Any]) -> dict[str, Any]:
    """The manager sends ``message``; returns it as stored (the manager's copy on a socket)."""
    socket = room.sockets["manager"]
    if transport == "ws":
        await socket.send(message)
        return await socket.message(local_id=message["local_id"])
    response = await room.manager.post(**message)
    assert response.status_code == 201, response.text
    stored: dict[str, Any] = response.json()
    await socket.message(id=stored["id"])
    return stored


async def refused(room: Room, transport: str, message: dict[str, Any]) -> dict[str, Any]:
    """The manager sends ``message`` and it is refused; returns the error."""
    if transport == "ws":
        socket = room.sockets["manager"]
        await socket.send(message)
        error = await socket.error()
        assert error["local_id"] == message["local_id"]
        assert isinstance(error["detail"], str)
        # (the REST body's shape: the field errors, and the code)
        return {**error.get("errors", {}), "code": error["code"]}
    response = await room.manager.post(**message)
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    return body


async def human_message(room: Room, text: str) -> dict[str, Any]:
    """alice says ``text``; returns it once the manager has it."""
    local_id = await room.sockets["alice"].say(text)
    sent = await room.sockets["alice"].message(local_id=local_id)
    await room.sockets["manager"].message(id=sent["id"])
    return sent


async def unseen(room: Room, *ids: str) -> None:
    """Neither alice nor bob has received any of ``ids`` (checked after a sync)."""
    for name in ("alice", "bob"):
        await room.sockets[name].sync()
        received = {m["id"] for m in room.sockets[name].messages()}
        assert not received & set(ids), name


async def redirect_to_calculator(room: Room, transport: str) -> tuple[dict[str, Any], ...]:
    """A.3 #22's steps: returns (human message, manager's command, calculator's answer)."""
    human = await human_message(room, "what is seven times six?")
    command = {"action": "redirect", "bots": ["Calculator"], "overrides": {"text": "7*6"}}
    mine = await send(room, transport, frame(command=command, quoted_message_id=human["id"]))
    answer = await room.sockets["manager"].message(quoted_message_id=human["id"], text="42")
    return human, mine, answer


async def test_redirect_with_overrides_reaches_the_target_only(room: Room, transport: str) -> None:
    """A.3 #22: the target gets the copy (same id, overrides); only the manager its answer."""
    calculator = await bot_client(
        room.server,
        Person(room.server.base_url, room.server.ws_url),
        room.conversation_id,
        "Calculator",
    )
    calculator_socket = await calculator.connect()
    try:
        await calculator_socket.state()
        human, mine, answer = await redirect_to_calculator(room, transport)
        copy = await calculator_socket.message(id=human["id"])
        assert copy["text"] == "7*6"
        assert "seq" not in copy
        assert copy["sender_id"] == room.ids["alice"]
    finally:
        await calculator.close()

    assert answer["approved"] is False
    assert answer["sender_id"] == room.ids["Calculator"]
    assert "seq" not in answer
    delivered = [
        p
        for p in await message_deliveries(room.server, room.ids["Calculator"])
        if p["id"] == human["id"]
    ]
    assert [p["text"] for p in delivered] == ["7*6"]
    assert not [
        p for p in await message_deliveries(room.server, room.ids["ECHO"]) if p["type"] != "S"
    ]
    await unseen(room, answer["id"], mine["id"])

    row = await stored_message(room.server, mine["id"])
    assert json.loads(row.command) == {
        "action": "redirect",
        "bots": ["Calculator"],
        "overrides": {"text": "7*6"},
    }
    assert row.sent_by_manager is True
    assert row.real_sender_id is None
    assert row.approval == 0


async def test_approve_shows_the_answer_and_sends_it_to_the_manager_again(
    room: Room, transport: str
) -> None:
    """A.3 #23: after approve, people receive the answer; the manager receives it again."""
    human, _, answer = await redirect_to_calculator(room, transport)
    approval = await send(
        room, transport, frame(command={"action": "approve"}, quoted_message_id=answer["id"])
    )
    shown = await room.sockets["alice"].message(id=answer["id"])
    assert shown["text"] == "42"
    assert shown["quoted_message_id"] == human["id"]
    assert shown["seq"] > human["seq"]
    assert await room.sockets["bob"].message(id=answer["id"]) == shown
    # The manager got it again before its own command message came back.
    copies = [m for m in room.sockets["manager"].messages() if m["id"] == answer["id"]]
    assert copies == [{**answer}, {**shown, "approved": True}]
    await unseen(room, approval["id"])
    history = [m["id"] for m in (await room.bob.history()).json()["results"]]
    assert history.count(answer["id"]) == 1
    assert approval["id"] not in history
    assert (await stored_message(room.server, answer["id"])).approval == 2


async def test_self_redirect_by_participant_id_with_overrides(room: Room, transport: str) -> None:
    """A.3 #24: ECHO answers the manager's own message; people see neither."""
    command = {
        "self_redirect": True,
        "bots": [room.ids["ECHO"]],
        "overrides": {"sent_by_human": True},
    }
    prompt = await send(room, transport, frame("prompt", command))
    answer = await room.sockets["manager"].message(quoted_message_id=prompt["id"])
    assert answer["text"] == "PROMPT"
    assert answer["sender_id"] == room.ids["ECHO"]
    assert answer["approved"] is False
    delivered = [
        p
        for p in await message_deliveries(room.server, room.ids["ECHO"])
        if p["id"] == prompt["id"]
    ]
    assert len(delivered) == 1
    assert delivered[0]["sent_by_human"] is True
    await unseen(room, prompt["id"], answer["id"])


async def test_on_behalf_of_with_self_approve(room: Room, transport: str) -> None:
    """A.3 #25: people see the principal as sender; the real sender is stored."""
    for principal in ("ECHO", "alice"):
        command = {"on_behalf_of": room.ids[principal], "self_approve": True}
        sent = await send(room, transport, frame(f"final answer as {principal}", command))
        shown = await room.sockets["bob"].message(id=sent["id"])
        assert shown["text"] == f"final answer as {principal}"
        assert shown["sender_id"] == room.ids[principal]
        assert shown["sent_by_human"] is (principal == "alice")
        assert isinstance(shown["seq"], int)
        row = await stored_message(room.server, sent["id"])
        assert row.sender_id == room.ids[principal]
        assert row.real_sender_id == room.ids["Manager"]
        assert row.sent_by_manager is True
        assert json.loads(row.command) == command


async def test_a_command_object_is_accepted(room: Room, transport: str) -> None:
    """``command`` may be a JSON object instead of a string holding one (7.2 [FIX])."""
    message = frame("hi all", quoted_message_id=None)
    message["command"] = {"self_approve": True}
    sent = await send(room, transport, message)
    assert (await room.sockets["alice"].message(id=sent["id"]))["text"] == "hi all"


APPROVE = {"action": "approve"}
REDIRECT = {"action": "redirect", "bots": ["Calculator"]}
BAD_COMMANDS: list[tuple[str, Any, str | None]] = [
    # (case, command, its quoted_message_id: "answer", "human", "unknown", "other", raw, None)
    ("on_behalf_of unknown", {**APPROVE, "on_behalf_of": "UNKNOWN"}, "answer"),
    ("on_behalf_of not an id", {**APPROVE, "on_behalf_of": "nobody"}, "answer"),
    ("on_behalf_of a number", {**APPROVE, "on_behalf_of": 7}, "answer"),
    ("target bot missing", {**REDIRECT, "bots": ["Calculator", "Nope"]}, "human"),
    ("a human as target", {**REDIRECT, "bots": ["alice"]}, "human"),
    ("bots a string", {**REDIRECT, "bots": "Calculator"}, "human"),
    ("overrides a list", {**REDIRECT, "overrides": []}, "human"),
    ("an override of the wrong type", {**REDIRECT, "overrides": {"sent_by_human": "y"}}, "human"),
    ("an unknown type code as override", {**REDIRECT, "overrides": {"type": "Z"}}, "human"),
    ("an override of id not an id", {**REDIRECT, "overrides": {"id": "not-a-uuid"}}, "human"),
    ("an override of id naming no message", {**REDIRECT, "overrides": {"id": "UNKNOWN"}}, "human"),
    ("a null sender_id override", {**REDIRECT, "overrides": {"sender_id": None}}, "human"),
    ("a sender_id naming nobody", {**REDIRECT, "overrides": {"sender_id": "UNKNOWN"}}, "human"),
    ("a system type override", {**REDIRECT, "overrides": {"type": "S"}}, "human"),
    # (manager QA 2: a copy quoting another conversation's message, or a 100-char local_id)
    ("a quote override not an id", {**REDIRECT, "overrides": {"quoted_message_id": "q"}}, "human"),
    (
        "a quote override naming nothing",
        {**REDIRECT, "overrides": {"quoted_message_id": "UNKNOWN"}},
        "human",
    ),
    (
        "a quote override elsewhere",
        {**REDIRECT, "overrides": {"quoted_message_id": "OTHER"}},
        "human",
    ),
    ("a local_id override too long", {**REDIRECT, "overrides": {"local_id": "L" * 33}}, "human"),
    ("self_approve a string", {**APPROVE, "self_approve": "yes"}, "answer"),
    ("unknown action", {"action": "delete"}, "answer"),
    ("malformed JSON", '{"action": "approve"', "answer"),
    ("JSON not an object", '["approve"]', "answer"),
    ("a number", 5, "answer"),
    ("a list", ["approve"], "answer"),
    ("approve of an unknown message", APPROVE, "unknown"),
    ("approve of a message of another conversation", APPROVE, "other"),
    ("redirect of nothing", REDIRECT, None),
    ("redirect naming no bot", {"action": "redirect"}, "human"),
    ("redirect with bots misspelt", {"action": "redirect", "bot": ["Calculator"]}, "human"),
    ("self_redirect naming no bot", {"self_redirect": True}, None),
    ("approve of nothing", APPROVE, None),
    ("quoted id not an id", APPROVE, "zzz"),
]


async def test_an_invalid_command_changes_nothing(room: Room, transport: str) -> None:
    """A.3 #26: invalid commands are refused, change nothing, and the socket stays open."""
    human, _, answer = await redirect_to_calculator(room, transport)
    carol = Person(room.server.base_url, room.server.ws_url)
    try:
        assert (await carol.create(nickname="carol")).status_code == 201
        elsewhere = (await carol.post(type="T", text="elsewhere")).json()
    finally:
        await carol.close()
    targets = {"answer": answer["id"], "human": human["id"], "other": elsewhere["id"]}
    for case, command, target in BAD_COMMANDS:
        if isinstance(command, dict) and command.get("on_behalf_of") == "UNKNOWN":
            command = {**command, "on_behalf_of": new_id()}
        given = command.get("overrides") if isinstance(command, dict) else None
        if isinstance(given, dict):
            named = {"UNKNOWN": new_id(), "OTHER": elsewhere["id"]}
            overrides = {k: named.get(v, v) if isinstance(v, str) else v for k, v in given.items()}
            command = {**command, "overrides": overrides}
        quoted = new_id() if target == "unknown" else targets.get(target or "", target)
        before = await stored_count(room.server, room.conversation_id)
        calculator_before = await message_deliveries(room.server, room.ids["Calculator"])

        error = await refused(room, transport, frame("x", command, quoted_message_id=quoted))
        assert error["code"] in ("bad_command", "invalid"), case
        assert set(error) & {"command", "quoted_message_id"}, case

        assert await stored_count(room.server, room.conversation_id) == before, case
        calculator_after = await message_deliveries(room.server, room.ids["Calculator"])
        assert calculator_after == calculator_before, case
        assert (await stored_message(room.server, answer["id"])).approval == 0, case
        await room.sockets["manager"].sync()  # the manager's socket still works
    await unseen(room, answer["id"])


async def test_a_non_managers_command_is_ignored(room: Room, transport: str) -> None:
    """A.3 #26: a command from a person is dropped; the message is stored as a plain one."""
    human, _, answer = await redirect_to_calculator(room, transport)
    # (a person may quote only what people see: not the answer waiting for approval)
    command = {"action": "redirect", "bots": ["Calculator"], "self_approve": True}
    message = frame("redirect it", command, quoted_message_id=human["id"])
    calculator_before = await message_deliveries(room.server, room.ids["Calculator"])
    if transport == "ws":
        await room.sockets["alice"].send(message)
        sent = await room.sockets["alice"].message(local_id=message["local_id"])
    else:
        response = await room.alice.post(**message)
        assert response.status_code == 201, response.text
        sent = response.json()
    assert (await stored_message(room.server, answer["id"])).approval == 0
    assert await message_deliveries(room.server, room.ids["Calculator"]) == calculator_before
    row = await stored_message(room.server, sent["id"])
    assert row.command is None
    assert row.sent_by_manager is False
    await unseen(room, answer["id"])


async def test_an_internal_managers_invalid_command_is_logged_and_recorded(
    make_settings: Any, people: Any
) -> None:
    """An internal manager's bad command stores nothing; its delivery fails with the reason."""
    bots = manager_bots("MisguidedManager")
    bots["Manager"]["retries"] = 0
    async with live_server(make_settings(manager="Manager", bots=bots)) as server:
        room = await Room.open(server, people, ["ECHO"], socket_manager=False)
        local_id = await room.sockets["alice"].say("hello")
        sent = await room.sockets["alice"].message(local_id=local_id)
        await server.registry.runner.idle()
        rows = [
            r
            for r in await delivery_rows(server, room.ids["Manager"])
            if r.kind == "message" and r.payload["id"] == sent["id"]
        ]
        assert [(r.status, r.attempts) for r in rows] == [("failed", 1)]
        assert "no bot 'Nobody'" in rows[0].last_error
        async with server.registry.db.read() as conn:
            from_manager = await conn.execute(
                select(messages.c.pk).where(messages.c.sender_id == room.ids["Manager"])
            )
            assert from_manager.all() == []
        await room.sockets["alice"].sync()


async def test_a_bots_command_when_it_is_not_the_manager_is_dropped_and_said(
    make_settings: Any, people: Any
) -> None:
    """A bot's command, the bot not being the manager (a manager's class configured without
    ``manager = ...``, say), is dropped as PROTOCOL 7.2 says, and the log says so: it used
    to be dropped in silence, and the bot author saw the bot's commands do nothing (bot
    authors' QA). A person's is dropped without a word (test above)."""
    settings = make_settings(manager="Manager", bots=manager_bots(), rate_limits={"message": ""})
    with watch_logs() as logs:
        async with live_server(settings) as server:
            room = await Room.open(server, people, ["ECHO", "Calculator"])
            calculator = await bot_client(
                server, Person(server.base_url, server.ws_url), room.conversation_id, "Calculator"
            )
            command = {"action": "approve"}
            try:
                response = await calculator.post(**frame("an answer", command))
            finally:
                await calculator.close()
            assert response.status_code == 201, response.text
            row = await stored_message(server, response.json()["id"])
            assert row.command is None
            human = await human_message(room, "a person's command")
            person = frame("mine", command, quoted_message_id=human["id"])
            assert (await room.alice.post(**person)).status_code == 201
    dropped = [e for e in logs.entries if e.get("event", "").startswith("command dropped")]
    assert [(e["participant_id"], e["conversation_id"]) for e in dropped] == [
        (room.ids["Calculator"], room.conversation_id)
    ]
    assert dropped[0]["log_level"] == "warning"
