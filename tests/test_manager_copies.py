"""Redirected copies to a bot that answers over its own socket: none lost while it is away.

A copy is recorded and numbered (``copy_seq``); the bot's socket that resumes with
``?copies_after=N`` first gets the copies numbered above N, once each and in order, then
the live ones. Without the parameter, its own state frame says where its copies stand.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from support.blab import Person, Socket
from support.managers import Room, bot_client, manager_bots
from support.server import LiveServer, live_server
from tertulia.cli import delete
from tertulia.storage.database import open_database
from tertulia.storage.tables import copies


def _bots() -> dict[str, Any]:
    return {**manager_bots(), "Outside": {"module": "support.managers", "class": "SocketBot"}}


async def _redirect(manager: Socket, message_id: str, **overrides: Any) -> None:
    command = {"action": "redirect", "bots": ["Outside"], "overrides": overrides}
    await manager.send(
        {
            "type": "T",
            "text": "",
            "quoted_message_id": message_id,
            "command": orjson.dumps(command).decode(),
        }
    )


async def _said(room: Room, text: str) -> dict[str, Any]:
    alice = room.sockets["alice"]
    return await alice.message(local_id=await alice.say(text))


async def _bot(server: LiveServer, people: Any, room: Room, name: str = "Outside") -> Person:
    """A client holding the session of the room's bot ``name``."""
    return await bot_client(server, people(server), room.conversation_id, name)


def _copies(socket: Socket) -> list[dict[str, Any]]:
    return [m for m in socket.messages() if "copy_seq" in m]


async def test_copies_redirected_while_a_socket_bot_is_away_reach_it_when_it_resumes(
    make_settings: Any, people: Any
) -> None:
    async with live_server(make_settings(manager="Manager", bots=_bots())) as server:
        room = await Room.open(server, people, ["Outside"])
        manager = room.sockets["manager"]
        outside = await _bot(server, people, room)
        socket = await outside.connect()
        assert (await socket.state())["copy_seq"] == 0, "no copy for it yet"

        one = await _said(room, "one")
        await _redirect(manager, one["id"])
        first = await socket.message(id=one["id"])
        assert first["text"] == "one"
        assert "seq" not in first
        await socket.close()

        two, three = await _said(room, "two"), await _said(room, "three")
        await _redirect(manager, two["id"])
        await _redirect(manager, three["id"], text="3")
        # the manager's own command messages are stored in order: once the second is
        # back, both copies are recorded (the same transaction)
        await manager.message(quoted_message_id=three["id"], sender_id=room.manager.participant_id)

        resumed = await outside.connect(copies_after=first["copy_seq"])
        four = await _said(room, "four")
        await _redirect(manager, four["id"])
        await resumed.message(id=four["id"])

        got = _copies(resumed)
        assert [(m["id"], m["text"]) for m in got] == [
            (two["id"], "two"),
            (three["id"], "3"),
            (four["id"], "four"),
        ], "the missed copies first, in order, then the live one; each once"
        numbers = [m["copy_seq"] for m in got]
        assert numbers == sorted(numbers)
        assert numbers[0] > first["copy_seq"]


async def test_a_socket_without_a_number_is_told_where_its_copies_stand(
    make_settings: Any, people: Any
) -> None:
    """A bot that does not know its copies' numbers (it just started) connects without
    ``copies_after``: its state frame gives the newest, and resuming after it loses none."""
    async with live_server(make_settings(manager="Manager", bots=_bots())) as server:
        room = await Room.open(server, people, ["Outside"])
        manager = room.sockets["manager"]
        outside = await _bot(server, people, room)
        before = await _said(room, "before")
        await _redirect(manager, before["id"])  # nobody there: kept
        await manager.message(quoted_message_id=before["id"], sender_id=room.manager.participant_id)

        socket = await outside.connect()
        where = (await socket.state())["copy_seq"]
        assert where > 0
        await socket.close()
        after = await _said(room, "after")
        await _redirect(manager, after["id"])
        await manager.message(quoted_message_id=after["id"], sender_id=room.manager.participant_id)

        resumed = await outside.connect(copies_after=where)
        await resumed.message(id=after["id"])
        assert [m["id"] for m in _copies(resumed)] == [after["id"]]


@pytest.mark.parametrize("kind", ["person", "manager"])
async def test_only_bots_under_a_manager_are_told_about_copies(
    make_settings: Any, people: Any, kind: str
) -> None:
    async with live_server(make_settings(manager="Manager", bots=_bots())) as server:
        room = await Room.open(server, people, ["Outside"])
        someone = room.bob if kind == "person" else room.manager
        socket = await someone.connect(copies_after=0)
        assert "copy_seq" not in await socket.state()


async def test_a_bot_with_a_class_gets_its_copies_as_deliveries_not_recorded(
    make_settings: Any, people: Any
) -> None:
    """ECHO's class takes its copies (durable deliveries): nothing is recorded for sockets,
    and its answer comes as before."""
    async with live_server(make_settings(manager="Manager", bots=_bots())) as server:
        room = await Room.open(server, people, ["ECHO", "Outside"])
        manager = room.sockets["manager"]
        hello = await _said(room, "hello")
        command = {"action": "redirect", "bots": ["ECHO"]}
        await manager.send(
            {
                "type": "T",
                "text": "",
                "quoted_message_id": hello["id"],
                "command": orjson.dumps(command).decode(),
            }
        )
        answer = await manager.message(quoted_message_id=hello["id"], sender_id=room.ids["ECHO"])
        assert answer["text"] == "HELLO"
        echo = await _bot(server, people, room, "ECHO")
        socket = await echo.connect()
        assert (await socket.state())["copy_seq"] == 0


async def test_a_deleted_conversation_takes_its_copies_along(
    make_settings: Any, people: Any
) -> None:
    settings = make_settings(manager="Manager", bots=_bots())
    async with live_server(settings) as server:
        room = await Room.open(server, people, ["Outside"])
        manager = room.sockets["manager"]
        hello = await _said(room, "hello")
        await _redirect(manager, hello["id"])
        await manager.message(quoted_message_id=hello["id"], sender_id=room.manager.participant_id)
    assert await asyncio.to_thread(delete, settings, [room.conversation_id]) == 0
    db = await open_database(settings.database_url, schema=settings.database_schema)
    try:
        async with db.read() as conn:
            assert (await conn.execute(select(func.count()).select_from(copies))).scalar() == 0
    finally:
        await db.close()


async def test_the_core_api_redirect_checks_its_overrides_as_a_command_does(
    make_settings: Any, people: Any
) -> None:
    """``Chat.deliver_message_to_bot`` (DESIGN's core API) takes overrides by the rules of
    a manager's redirect: a quote of another conversation's message, or a ``local_id`` no
    client could send, is refused and nothing is delivered; valid ones reach the bot."""
    from tertulia.errors import CommandError
    from tertulia.storage import messages as msg_repo

    async with live_server(make_settings(manager="Manager", bots=_bots())) as server:
        room = await Room.open(server, people, ["Outside"])
        elsewhere = people(server)
        assert (await elsewhere.create(nickname="carol")).status_code == 201
        other = (await elsewhere.post(type="T", text="not yours")).json()
        asked = await _said(room, "hello")
        outside = await (await _bot(server, people, room)).connect()
        await outside.state()
        chat = await server.registry.get(room.conversation_id)
        assert chat is not None
        bot = await chat.participant(room.ids["Outside"])
        assert bot is not None
        async with server.registry.db.read() as conn:
            message = await msg_repo.get_message(conn, room.conversation_id, asked["id"])
        assert message is not None
        for refused in ({"quoted_message_id": other["id"]}, {"local_id": "L" * 33}):
            with pytest.raises(CommandError):
                await chat.deliver_message_to_bot(message, bot, refused)
        await chat.deliver_message_to_bot(message, bot, {"text": "HELLO"})
        copy = await outside.message(id=asked["id"])
        assert copy["text"] == "HELLO"
        assert _copies(outside) == [copy], "the refused ones sent nothing"
