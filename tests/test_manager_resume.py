"""Resuming with ``?after=N`` under a manager: approvals made while a person was away."""

from __future__ import annotations

from typing import Any

from support.managers import Room, manager_bots
from support.server import live_server


async def test_an_answer_approved_while_away_arrives_once_in_order(
    make_settings: Any, people: Any
) -> None:
    """An answer approved while bob is away reaches him once, in order, with ``?after=N``."""
    async with live_server(make_settings(manager="Manager", bots=manager_bots())) as server:
        room = await Room.open(server, people, ["ECHO"])
        alice, bob, manager = (room.sockets[n] for n in ("alice", "bob", "manager"))
        local_id = await alice.say("hello")
        human = await alice.message(local_id=local_id)
        last_seen = (await bob.message(id=human["id"]))["seq"]
        await manager.message(id=human["id"])

        await bob.close()
        await alice.message(event="participant-left")
        await manager.send(
            {
                "type": "T",
                "text": "",
                "quoted_message_id": human["id"],
                "command": '{"action": "redirect", "bots": ["ECHO"]}',
            }
        )
        answer = await manager.message(quoted_message_id=human["id"], approved=False)
        await manager.send(
            {
                "type": "T",
                "text": "",
                "quoted_message_id": answer["id"],
                "command": '{"action": "approve"}',
            }
        )
        approved = await alice.message(id=answer["id"])
        local_id = await alice.say("and then?")
        after = await alice.message(local_id=local_id)

        resumed = await room.bob.connect(after=last_seen)
        await resumed.message(event="participant-joined")
        await resumed.sync()
        got = resumed.messages()
        assert [m["id"] for m in got].count(answer["id"]) == 1
        assert next(m for m in got if m["id"] == answer["id"]) == approved
        seqs = [m["seq"] for m in got]
        assert seqs == list(range(last_seen + 1, last_seen + 1 + len(seqs))), "no gap, no repeat"
        order = [m["id"] for m in got]
        assert order.index(answer["id"]) < order.index(after["id"])
        assert human["id"] not in order
