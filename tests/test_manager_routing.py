"""Who receives what (PROTOCOL 7.1), with and without a manager: A.3 case 21 and the rest."""

from __future__ import annotations

from typing import Any

import pytest

from support.managers import INBOXES, Room, bot_client, gather, manager_bots, message_deliveries
from support.server import live_server

pytestmark = pytest.mark.parametrize("transport", ["ws", "rest"])


async def say(room: Room, transport: str, text: str) -> dict[str, Any]:
    """alice sends ``text`` over her socket or REST; returns the stored message."""
    socket = room.sockets["alice"]
    if transport == "ws":
        local_id = await socket.say(text)
        return await socket.message(local_id=local_id)
    response = await room.alice.post(type="T", text=text, local_id=None)
    assert response.status_code == 201, response.text
    message: dict[str, Any] = response.json()
    await socket.message(id=message["id"])
    return message


async def test_with_a_manager_people_and_the_manager_get_human_messages(
    make_settings: Any, people: Any, transport: str
) -> None:
    """A.3 #21: a human message reaches the people and the manager; no other bot."""
    settings = make_settings(manager="Manager", bots=manager_bots())
    async with live_server(settings) as server:
        room = await Room.open(server, people, ["ECHO", "Recorder"])
        echo = await bot_client(server, people(server), room.conversation_id, "ECHO")
        echo_socket = await echo.connect()
        await echo_socket.state()
        sent = await say(room, transport, "hello")
        assert sent["sent_by_human"] is True
        assert isinstance(sent["seq"], int)

        seen_by_bob = await room.sockets["bob"].message(id=sent["id"])
        assert seen_by_bob == sent
        seen_by_manager = await room.sockets["manager"].message(id=sent["id"])
        assert seen_by_manager == {**sent, "approved": True}

        for name in ("ECHO", "Recorder"):
            payloads = await message_deliveries(server, room.ids[name])
            assert all(p["type"] == "S" for p in payloads), name
        recorded = await message_deliveries(server, room.ids["Recorder"])
        assert recorded, "a bot that takes everything still gets the system messages"
        # Nothing else came: ECHO never heard it, so nobody sees an answer.
        later = await room.sockets["alice"].sync()
        assert not [f for f in later if "message" in f and f["message"]["type"] != "S"]
        # ECHO's own socket got no message but system ones (seen up to bob's leaving).
        await room.sockets["bob"].close()
        await echo_socket.message(event="participant-left")
        assert {m["type"] for m in echo_socket.messages()} == {"S"}


async def test_a_bots_message_reaches_the_manager_only_until_approved(
    make_settings: Any, people: Any, transport: str
) -> None:
    """With a manager, a bot's answer goes to the manager unapproved, then to everyone."""
    settings = make_settings(manager="Manager", bots=manager_bots())
    async with live_server(settings) as server:
        room = await Room.open(server, people, ["Recorder"])
        manager_socket = room.sockets["manager"]
        human = await say(room, transport, "echo: psst")
        await manager_socket.message(id=human["id"])
        await manager_socket.send(
            {
                "type": "T",
                "text": "",
                "quoted_message_id": human["id"],
                "command": '{"action": "redirect", "bots": ["Recorder"]}',
            }
        )
        answer = await manager_socket.message(text="psst", approved=False)
        assert "seq" not in answer
        assert answer["sender_id"] == room.ids["Recorder"]
        for name in ("alice", "bob"):
            frames = await room.sockets[name].sync()
            assert answer["id"] not in [f["message"]["id"] for f in frames if "message" in f]

        await manager_socket.send(
            {
                "type": "T",
                "text": "",
                "quoted_message_id": answer["id"],
                "command": '{"action": "approve"}',
            }
        )
        shown = await room.sockets["alice"].message(id=answer["id"])
        assert shown["seq"] > human["seq"], "the seq is taken when it is approved"
        assert (await room.sockets["bob"].message(id=answer["id"])) == shown
        again = await manager_socket.message(id=answer["id"], approved=True)
        assert again == {**shown, "approved": True}
        history = (await room.alice.history()).json()["results"]
        assert [m["id"] for m in history].count(answer["id"]) == 1


async def test_without_a_manager_every_bot_sees_every_visible_message(
    make_settings: Any, people: Any, transport: str
) -> None:
    """No manager: every bot gets every visible message, its own and other bots' too."""
    bots = manager_bots()
    del bots["Manager"]
    bots["Other"] = bots["Recorder"]
    async with live_server(make_settings(bots=bots)) as server:
        room = await Room.open(server, people, ["ECHO", "Recorder", "Other"], socket_manager=False)
        human = await say(room, transport, "echo: hi")
        answers = await gather(room.sockets["alice"], 3, quoted_message_id=human["id"])
        assert sorted(a["text"] for a in answers) == ["ECHO: HI", "hi", "hi"]
        everything = {human["id"], *(a["id"] for a in answers)}
        for name in ("Recorder", "Other"):
            inbox = INBOXES[room.ids[name]]
            await inbox.wait(lambda i: everything <= {m.id for m in i.messages})
            assert sorted(m.id for m in inbox.messages if m.id in everything) == sorted(everything)
        # ECHO takes only people's messages (its accepts_delivery), and got this one once.
        echo = [p["id"] for p in await message_deliveries(server, room.ids["ECHO"])]
        assert echo.count(human["id"]) == 1


async def test_without_a_manager_bot_sockets_see_everything(
    make_settings: Any, people: Any, transport: str
) -> None:
    """No manager: a bot's socket gets people's messages and its own, like a person's."""
    bots = manager_bots()
    del bots["Manager"]
    async with live_server(make_settings(bots=bots)) as server:
        room = await Room.open(server, people, ["Recorder"], socket_manager=False)
        bot = await bot_client(server, people(server), room.conversation_id, "Recorder")
        bot_socket = await bot.connect()
        await bot_socket.state()
        human = await say(room, transport, "echo: hi there")
        assert (await bot_socket.message(id=human["id"]))["text"] == "echo: hi there"
        inbox = INBOXES[room.ids["Recorder"]]
        await inbox.wait(lambda i: any(m.id == human["id"] for m in i.messages))
        answer = await bot_socket.message(quoted_message_id=human["id"], text="hi there")
        assert "approved" not in answer
        await inbox.wait(lambda i: any(m.id == answer["id"] for m in i.messages))
