"""The example managers in a conversation that lacks some of the bots they route to.

People choose the bots of a conversation at creation; the manager's settings name bots
that may not be among them. A redirect to a bot that is not there is refused, so a manager
that sends one answers nothing at all, and its delivery fails.
"""

from __future__ import annotations

from typing import Any

from support.managers import Room, gather, manager_bots
from support.server import live_server


async def ask(room: Room, text: str) -> list[str]:
    """alice says ``text``; the texts of the first answer she gets (quoting it)."""
    local_id = await room.sockets["alice"].say(text)
    sent = await room.sockets["alice"].message(local_id=local_id)
    return [m["text"] for m in await gather(room.sockets["alice"], 1, quoted_message_id=sent["id"])]


async def test_calc_or_echo_without_the_calculator_echoes_arithmetic(
    make_settings: Any, people: Any
) -> None:
    bots = manager_bots(
        "CalcOrEchoManagerBot", calculator_bot_name="Calculator", echo_bot_name="ECHO"
    )
    async with live_server(make_settings(manager="Manager", bots=bots)) as server:
        room = await Room.open(server, people, ["ECHO"], socket_manager=False)
        assert await ask(room, "1+2") == ["1+2"]
        assert await ask(room, "hello") == ["HELLO"]


async def test_preselect_offers_only_the_bots_of_the_conversation(
    make_settings: Any, people: Any
) -> None:
    bots = manager_bots("PreSelectManagerBot", bots=["ECHO", "Calculator"], greeting="Pick:")
    async with live_server(make_settings(manager="Manager", bots=bots)) as server:
        room = await Room.open(server, people, ["ECHO"], socket_manager=False)
        await server.registry.runner.idle()
        history = (await room.alice.history()).json()["results"]
        assert [m["options"] for m in history if m.get("text") == "Pick:"] == [["ECHO"]]
        assert await ask(room, "Calculator") == ["Pick:"]  # not there: offered again
        assert (await ask(room, "ECHO"))[0].startswith("You are now talking to ECHO")
        assert await ask(room, "hello") == ["HELLO"]
