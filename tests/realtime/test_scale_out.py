"""Two server processes sharing PostgreSQL and Redis serve one conversation together."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.blab import Person
from support.environment import DatabaseTarget
from support.process import two_servers


@pytest.mark.slow
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)  # a shared server database
async def test_people_on_two_servers_see_each_other(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    """A person on each of two processes: messages, presence and bot answers cross over."""
    async with two_servers(database, tmp_path, presence_grace=0, rooms=True) as (one, two, _):
        alice = Person(one.base_url, one.ws_url)
        bob = Person(two.base_url, two.ws_url)
        try:
            created = await alice.create(nickname="alice", name="room", bots=["ECHO"])
            assert created.status_code == 201
            conversation_id = created.json()["id"]
            alice_socket = await alice.connect()
            assert (await bob.join(conversation_id, nickname="bob")).status_code == 200
            bob_socket = await bob.connect()
            joined = await alice_socket.message(event="participant-joined")
            while joined["additional_metadata"]["participant_id"] != bob.participant_id:
                joined = await alice_socket.message(event="participant-joined")

            await bob_socket.say("hello from two")
            heard = await alice_socket.message(text="hello from two")
            assert heard["sender_id"] == bob.participant_id
            answer = await alice_socket.message(text="HELLO FROM TWO")
            assert answer["quoted_message_id"] == heard["id"]
            await bob_socket.message(text="HELLO FROM TWO")

            await alice_socket.say("and back")
            assert (await bob_socket.message(text="and back"))["sender_id"] == alice.participant_id
        finally:
            await alice.close()
            await bob.close()
