"""Manager flows at their edges: repeated targets, copies no bot can answer, redirects to
the manager itself, approvals racing across processes, a socket manager resuming."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from support.blab import Socket
from support.managers import Room, manager_bots, message_deliveries, stored_message
from support.server import live_server
from tertulia.domain.ids import new_local_id
from tertulia.domain.model import Approval
from tertulia.domain.times import utcnow
from tertulia.storage import messages as msg_repo


@pytest.fixture
async def room(make_settings: Any, people: Any) -> AsyncIterator[Room]:
    """alice and bob with ECHO and Calculator, and a socket-driven manager."""
    settings = make_settings(manager="Manager", bots=manager_bots(), rate_limits={"message": ""})
    async with live_server(settings) as server:
        yield await Room.open(server, people, ["ECHO", "Calculator"])


def command_frame(command: Any, **fields: Any) -> dict[str, Any]:
    return {
        "type": "T",
        "text": "",
        "local_id": new_local_id(),
        "command": command if isinstance(command, str) else json.dumps(command),
        **fields,
    }


async def human_message(room: Room, text: str) -> dict[str, Any]:
    """alice says ``text``; returns it once the manager has it."""
    local_id = await room.sockets["alice"].say(text)
    sent = await room.sockets["alice"].message(local_id=local_id)
    await room.sockets["manager"].message(id=sent["id"])
    return sent


async def accepted(socket: Socket, frame: dict[str, Any]) -> dict[str, Any]:
    """The manager sends ``frame`` and it is stored (its copy comes back)."""
    await socket.send(frame)
    return await socket.message(local_id=frame["local_id"])


async def refused(socket: Socket, frame: dict[str, Any]) -> dict[str, Any]:
    """The manager sends ``frame`` and gets an error frame for it."""
    await socket.send(frame)
    found = await socket.wait_for(
        lambda f: (
            ("error" in f and f["error"]["local_id"] == frame["local_id"])
            or ("message" in f and f["message"].get("local_id") == frame["local_id"])
        )
    )
    assert "error" in found, f"accepted: {found}"
    error: dict[str, Any] = found["error"]
    return error


async def answers_to(room: Room, message_id: str) -> list[dict[str, Any]]:
    """ECHO's answers quoting ``message_id`` that the manager received (all of them are in
    once the runner is idle and the manager's socket has synced)."""
    await room.server.registry.runner.idle()
    await room.sockets["manager"].sync()
    return [
        m
        for m in room.sockets["manager"].messages()
        if m.get("quoted_message_id") == message_id and m["sender_id"] == room.ids["ECHO"]
    ]


# -- 1. a redirect naming the same bot twice -------------------------------------------


@pytest.mark.parametrize("twice", ["by name", "by name and id"])
async def test_a_redirect_naming_a_bot_twice_is_answered_once(room: Room, twice: str) -> None:
    """``bots: ["ECHO", "ECHO"]`` (or its name and its id) must not make ECHO answer twice:
    each answer is a message the manager would approve, so people would see it twice."""
    human = await human_message(room, "hello")
    bots = ["ECHO", "ECHO"] if twice == "by name" else ["ECHO", room.ids["ECHO"]]
    command = {"action": "redirect", "bots": bots}
    await accepted(room.sockets["manager"], command_frame(command, quoted_message_id=human["id"]))

    copies = [
        p for p in await message_deliveries(room.server, room.ids["ECHO"]) if p["id"] == human["id"]
    ]
    assert len(copies) == 1
    assert [a["text"] for a in await answers_to(room, human["id"])] == ["HELLO"]


# -- 2. overrides that make a copy no bot can answer -----------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"text": "x" * 4001},  # longer than any message people could send (MAX_TEXT)
        {"text": "a\u0000b"},  # a NUL character, which no message may hold
        {"options": ["o"] * 101},  # more options than a message may have
        {"options": ["a\u0000b"]},
    ],
    ids=["text too long", "NUL in text", "too many options", "NUL in an option"],
)
async def test_overrides_no_message_could_hold_are_refused(
    room: Room, overrides: dict[str, Any]
) -> None:
    """A copy whose text no message may have makes the bot's answer (which repeats it)
    invalid: the answer was refused, the delivery failed, and the person never got one.
    Such a redirect is refused instead, with nothing delivered."""
    human = await human_message(room, "hello")
    command = {"action": "redirect", "bots": ["ECHO"], "overrides": overrides}
    for frame in (
        command_frame(command, quoted_message_id=human["id"]),
        {**command_frame("", quoted_message_id=human["id"]), "command": command},
    ):
        error = await refused(room.sockets["manager"], frame)
        assert error["code"] in ("invalid", "bad_command")
        assert "command" in error["detail"]
    assert not [
        p for p in await message_deliveries(room.server, room.ids["ECHO"]) if p["id"] == human["id"]
    ]


async def test_a_command_object_has_the_size_limit_of_a_command_string(room: Room) -> None:
    """A command string over 1000 characters is refused; the same command as an object
    must not be accepted (stored and delivered) at any size the body allows."""
    human = await human_message(room, "hello")
    command = {"action": "redirect", "bots": ["ECHO"], "overrides": {"note": "n" * 20_000}}
    as_string = command_frame(json.dumps(command), quoted_message_id=human["id"])
    assert (await refused(room.sockets["manager"], as_string))["code"] == "invalid"
    as_object = {**command_frame("", quoted_message_id=human["id"]), "command": command}
    error = await refused(room.sockets["manager"], as_object)
    assert error["code"] in ("invalid", "bad_command")
    assert "command" in error["detail"]


# -- 3. a redirect to the manager itself -----------------------------------------------


async def test_a_redirect_to_the_manager_itself_is_refused(room: Room) -> None:
    human = await human_message(room, "hello")
    for target in ("Manager", room.ids["Manager"]):
        command = {"action": "redirect", "bots": [target]}
        error = await refused(
            room.sockets["manager"], command_frame(command, quoted_message_id=human["id"])
        )
        assert error["code"] == "bad_command"


# -- 4. two processes approving the same message ---------------------------------------


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)  # several writers
async def test_approving_a_message_twice_from_stale_reads_keeps_one_seq(room: Room) -> None:
    """With several processes (PostgreSQL), each reads the target in its own transaction,
    without a lock, before approving it. Both saw it unnumbered; it must keep the number
    the first gave it (before: numbered twice, the first number left as a gap, and the
    message sent to people twice under two numbers)."""
    human = await human_message(room, "hello")
    command = {"action": "redirect", "bots": ["ECHO"]}
    await accepted(room.sockets["manager"], command_frame(command, quoted_message_id=human["id"]))
    answer = await room.sockets["manager"].message(quoted_message_id=human["id"], approved=False)

    db = room.server.registry.db
    async with db.read() as conn:
        first_read = await msg_repo.get_message(conn, room.conversation_id, answer["id"])
    async with db.read() as conn:
        second_read = await msg_repo.get_message(conn, room.conversation_id, answer["id"])
    assert first_read is not None
    assert second_read is not None
    async with db.write() as conn:
        first = await msg_repo.approve_message(
            conn, first_read, approval=Approval.BY_MANAGER, at=utcnow()
        )
    async with db.write() as conn:
        second = await msg_repo.approve_message(
            conn, second_read, approval=Approval.BY_MANAGER, at=utcnow()
        )
    assert second.seq == first.seq
    assert (await stored_message(room.server, answer["id"])).seq == first.seq


# -- 5. a socket manager resuming ------------------------------------------------------


async def test_a_socket_manager_resuming_gets_the_answers_it_missed(room: Room) -> None:
    """The manager's socket drops after a redirect; ECHO answers meanwhile. Reconnecting
    with ``?after=N`` (its last seq) it must get that unapproved answer, or nobody ever
    approves it and the person never sees it."""
    human = await human_message(room, "hello")
    await room.sockets["manager"].close()
    command = {"action": "redirect", "bots": ["ECHO"]}
    response = await room.manager.post(**command_frame(command, quoted_message_id=human["id"]))
    assert response.status_code == 201, response.text
    await room.server.registry.runner.idle()
    answers = [
        m
        for m in (await room.manager.history()).json()["results"]
        if m.get("quoted_message_id") == human["id"]
    ]
    assert answers == []  # not visible, as it should be

    resumed = await room.manager.connect(after=human["seq"])
    await resumed.sync()
    got = [m for m in resumed.messages() if m.get("quoted_message_id") == human["id"]]
    assert [(m["text"], m["approved"]) for m in got] == [("HELLO", False)]
    # A plain connection (BLAB's library has no ?after=) gets nothing of the kind: a
    # BLAB manager would take it for a new message and act on it again.
    plain = await room.manager.connect()
    await plain.sync()
    assert not [m for m in plain.messages() if m.get("quoted_message_id") == human["id"]]


# -- 6. a person quoting a message people do not see yet --------------------------------


async def test_a_person_cannot_quote_an_answer_waiting_for_approval(room: Room) -> None:
    """Before: a person's quote of a bot's unapproved answer was stored (201) where an
    unknown id is refused (400), so a guessed id told that a hidden message exists, and the
    quote named a message nobody else could show. It is refused as unknown until approved."""
    human = await human_message(room, "hello")
    command = {"action": "redirect", "bots": ["ECHO"]}
    await accepted(room.sockets["manager"], command_frame(command, quoted_message_id=human["id"]))
    hidden = await room.sockets["manager"].message(quoted_message_id=human["id"], approved=False)

    over_rest = await room.alice.post(type="T", text="what?", quoted_message_id=hidden["id"])
    assert over_rest.status_code == 400, over_rest.text
    assert over_rest.json()["quoted_message_id"] == ["The quoted message does not exist."]
    quote = {"type": "T", "text": "what?", "local_id": new_local_id()}
    error = await refused(room.sockets["bob"], {**quote, "quoted_message_id": hidden["id"]})
    assert "quoted_message_id" in json.dumps(error)

    await accepted(
        room.sockets["manager"],
        command_frame({"action": "approve"}, quoted_message_id=hidden["id"]),
    )
    await room.sockets["alice"].message(id=hidden["id"])
    quoting = await room.alice.post(type="T", text="that!", quoted_message_id=hidden["id"])
    assert quoting.status_code == 201, quoting.text


async def test_the_managers_approved_flag_is_on_every_message_of_its_but_events(
    room: Room,
) -> None:
    """(Protocol audit: docs/api.md said every message delivered to the manager carries
    ``approved``; a repeated ``local_id``'s copy had none, and a replay put it on system
    events too, which live frames never carry.) A person's or a bot's message carries it
    however it reaches the manager; a system event never does."""
    manager = room.sockets["manager"]
    frame = command_frame({"self_approve": True}, text="hi all")
    first = await accepted(manager, frame)
    assert first["approved"] is True
    await manager.send(frame)  # (the same local_id again: its stored copy comes back)
    again = await manager.message(local_id=frame["local_id"])
    assert again["id"] == first["id"]
    assert again["approved"] is True

    replayed = await room.manager.connect(after=0)
    await replayed.sync()
    messages = replayed.messages()
    assert [m for m in messages if m["type"] == "S" and "approved" in m] == []
    assert all("approved" in m for m in messages if m["type"] != "S")
