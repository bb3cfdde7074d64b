"""The cap on one participant's open sockets (``ws_max_sockets_per_participant``)."""

from __future__ import annotations

from websockets.exceptions import ConnectionClosed

from support.blab import Person, Socket
from support.environment import PersonFactory, SettingsFactory
from support.server import live_server
from support.waiting import until
from tertulia.web.socketcap import CLOSE_TOO_MANY, CLOSE_TOO_MANY_REASON


async def _open(person: Person) -> Socket:
    socket = await person.connect()
    await socket.state()
    return socket


async def _refused(person: Person) -> ConnectionClosed:
    """Open one more socket of ``person``: it is closed before its first frame."""
    socket = await person.connect()
    try:
        frame = await socket.recv()
    except ConnectionClosed as closed:
        return closed
    raise AssertionError(f"the socket over the cap got {frame}")


async def test_a_socket_over_the_cap_is_closed_with_its_code_and_reason(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A participant's third socket, with a cap of two, is closed with 4429 and a reason;
    the two others still get each frame once, and closing one makes room again."""
    async with live_server(make_settings(ws_max_sockets_per_participant=2)) as server:
        alice = people(server)
        await alice.create(nickname="alice", bots=["ECHO"])
        first, second = await _open(alice), await _open(alice)

        closed = await _refused(alice)
        assert closed.rcvd is not None
        assert closed.rcvd.code == CLOSE_TOO_MANY
        assert closed.rcvd.reason == CLOSE_TOO_MANY_REASON

        local_id = await first.say("hello")
        for socket in (first, second):
            await socket.message(local_id=local_id)
            await socket.message(text="HELLO")

        await first.close()
        assert alice.participant_id is not None
        counts = server.app.state.services.sockets
        await until(lambda: counts.open(alice.participant_id) == 1)  # (the server saw it)
        third = await _open(alice)
        await third.say("again")
        await third.message(text="AGAIN")


async def test_the_cap_is_per_participant(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """Another participant of the same conversation is not counted with the first."""
    async with live_server(make_settings(ws_max_sockets_per_participant=1)) as server:
        alice, bob = people(server), people(server)
        await alice.create(nickname="alice", bots=["ECHO"])
        assert alice.conversation_id is not None
        assert (await bob.join(alice.conversation_id, nickname="bob")).status_code == 200
        await _open(alice)
        assert (await _refused(alice)).rcvd is not None
        bobs = await _open(bob)
        await bobs.say("hi")
        await bobs.message(text="HI")
