"""The example managers end to end (PROTOCOL 7.5): A.3 cases 27-29."""

from __future__ import annotations

from typing import Any

import pytest

from support.managers import Room, gather, manager_bots, message_deliveries
from support.server import live_server

GREETING = "Choose a bot:"
AFTER = "Now talking to {bot}; {exit} to leave."


@pytest.fixture(params=["ws", "rest"])
def transport(request: pytest.FixtureRequest) -> str:
    """How alice sends: over her socket, or by REST."""
    return str(request.param)


async def say(room: Room, transport: str, text: str) -> dict[str, Any]:
    """alice sends ``text``; returns it once her socket has it."""
    socket = room.sockets["alice"]
    if transport == "ws":
        local_id = await socket.say(text)
        return await socket.message(local_id=local_id)
    response = await room.alice.post(type="T", text=text)
    assert response.status_code == 201, response.text
    sent: dict[str, Any] = response.json()
    await socket.message(id=sent["id"])
    return sent


async def answers(room: Room, transport: str, text: str, count: int = 1) -> list[str]:
    """alice says ``text``; the texts of the ``count`` answers people get, sorted."""
    sent = await say(room, transport, text)
    got = await gather(room.sockets["alice"], count, quoted_message_id=sent["id"])
    return sorted(m["text"] for m in got)


async def visible_texts(room: Room) -> list[str]:
    history = (await room.alice.history()).json()["results"]
    return [m.get("text") for m in history if m["type"] == "T"]


async def test_calc_or_echo_manager(make_settings: Any, people: Any, transport: str) -> None:
    """A.3 #27: hello -> HELLO, 1+2 -> 3, 1/0 -> 1/0 from ECHO; the calculator's ? is hidden."""
    bots = manager_bots(
        "CalcOrEchoManagerBot", calculator_bot_name="Calculator", echo_bot_name="ECHO"
    )
    async with live_server(make_settings(manager="Manager", bots=bots)) as server:
        room = await Room.open(server, people, ["ECHO", "Calculator"], socket_manager=False)
        assert await answers(room, transport, "hello") == ["HELLO"]
        assert await answers(room, transport, "1+2") == ["3"]
        sent = await say(room, transport, "1/0")
        echoed = await room.sockets["alice"].message(quoted_message_id=sent["id"])
        assert echoed["text"] == "1/0"
        assert echoed["sender_id"] == room.ids["ECHO"]
        await room.sockets["alice"].sync()
        assert "?" not in [m.get("text") for m in room.sockets["alice"].messages()]
        await server.registry.runner.idle()
        texts = await visible_texts(room)
        assert "?" not in texts
        assert texts.count("1/0") == 2  # alice's and ECHO's


async def test_preselect_manager(make_settings: Any, people: Any, transport: str) -> None:
    """A.3 #28: greeting, choice, the chosen bot's answers (also after a restart), exit."""
    bots = manager_bots(
        "PreSelectManagerBot",
        bots=["ECHO", "Calculator"],
        greeting=GREETING,
        after_choice=AFTER,
        exit_word="bye",
    )
    settings = make_settings(manager="Manager", bots=bots)
    after_echo = "Now talking to ECHO; bye to leave."
    async with live_server(settings) as server:
        room = await Room.open(server, people, ["ECHO", "Calculator"], socket_manager=False)
        await server.registry.runner.idle()
        history = (await room.alice.history()).json()["results"]
        greetings = [m for m in history if m.get("text") == GREETING]
        assert len(greetings) == 1
        assert greetings[0]["options"] == ["ECHO", "Calculator"]
        assert greetings[0]["sender_id"] == room.ids["Manager"]

        assert await answers(room, transport, "nonsense") == [GREETING]
        assert await answers(room, transport, "ECHO") == [after_echo]
        assert await answers(room, transport, "hello") == ["HELLO"]
    # The choice is kept in the manager's stored state: a new server still knows it.
    async with live_server(settings) as server:
        room.server = server
        for person in (room.alice, room.bob):
            person.http.base_url = server.base_url + "/api/chat"
            person.ws_url = server.ws_url
        room.sockets["alice"] = await room.alice.connect()
        assert await answers(room, transport, "again") == ["AGAIN"]
        sent = await say(room, transport, " BYE ")
        greeting = await room.sockets["alice"].message(quoted_message_id=sent["id"])
        assert greeting["text"] == GREETING
        assert greeting["options"] == ["ECHO", "Calculator"]
        assert await answers(room, transport, "Calculator") == [
            "Now talking to Calculator; bye to leave."
        ]
        assert await answers(room, transport, "6*7") == ["42"]


async def test_transparent_manager(make_settings: Any, people: Any, transport: str) -> None:
    """A.3 #29: every human message gets an answer from every bot."""
    bots = manager_bots("TransparentManagerBot")
    async with live_server(make_settings(manager="Manager", bots=bots)) as server:
        room = await Room.open(server, people, ["ECHO", "Calculator"], socket_manager=False)
        sent = await say(room, transport, "hello")
        got = await gather(room.sockets["alice"], 2, quoted_message_id=sent["id"])
        assert sorted(m["text"] for m in got) == ["?", "HELLO"]
        # The manager got each answer twice: unapproved, then approved.
        await server.registry.runner.idle()
        delivered = await message_deliveries(server, room.ids["Manager"])
        for answer in got:
            flags = [p["approved"] for p in delivered if p["id"] == answer["id"]]
            assert flags == [False, True]
        assert await answers(room, transport, "2*3", 2) == ["2*3", "6"]
        await room.sockets["bob"].sync()
        texts = [str(m.get("text")) for m in room.sockets["bob"].messages()]
        assert sorted(texts[-6:-1]) == ["2*3", "2*3", "6", "?", "HELLO"]
