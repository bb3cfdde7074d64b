"""The first thing a user does: create, connect, chat with ECHO."""

from __future__ import annotations

from support.blab import Person


async def test_echo_answers_over_the_socket(alice: Person) -> None:
    """A text sent over the socket comes back to its sender, then ECHO answers it."""
    socket = await alice.connect()
    local_id = await socket.say("hello")
    mine = await socket.message(local_id=local_id)
    assert mine["sent_by_human"] is True
    answer = await socket.message(quoted_message_id=mine["id"])
    assert answer["text"] == "HELLO"
