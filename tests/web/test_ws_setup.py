"""A socket's first frames and its presence, where they race with the conversation going on:
seq order with no duplicate, every participant named only after a state frame listed them
(PROTOCOL 4.2), presence that follows the sockets even when setting one up fails, and
people shown online during the grace period that hides a reload (PROTOCOL 4.4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from support.blab import Frame, Person, Socket
from support.rest import room_of_two
from support.server import LiveServer, live_server
from support.waiting import until
from tertulia.chats import Chat
from tertulia.settings import Settings

PersonFactory = Callable[[LiveServer], Person]
SettingsFactory = Callable[..., Settings]


def _seqs(socket: Socket) -> list[int]:
    return [m["seq"] for m in socket.messages() if "seq" in m]


async def _present(server: LiveServer, person: Person) -> bool:
    assert person.conversation_id is not None
    return person.participant_id in await server.registry.broker.present(person.conversation_id)


async def _absent(server: LiveServer, person: Person) -> bool:
    return not await _present(server, person)


@pytest.mark.parametrize("committed", ["before the read", "after the read"])
async def test_a_second_sockets_latest_message_keeps_seq_order_with_live_ones(
    server: LiveServer,
    people: PersonFactory,
    monkeypatch: pytest.MonkeyPatch,
    committed: str,
) -> None:
    """A second socket of someone already present gets the latest visible message first
    (the web client loads its history then); a message committed while that one is read
    must come once, after it. No bot: ECHO's answer to it, stored before the read, would
    be the latest message, and bob's an earlier one, rightly not sent (it is history)."""
    alice = people(server)
    assert (await alice.create(nickname="alice", name="room", bots=[])).status_code == 201
    first = await alice.connect()
    await first.message(event="participant-joined")
    bob = people(server)
    assert alice.conversation_id is not None
    assert (await bob.join(alice.conversation_id, nickname="bob")).status_code == 200
    chat = await Chat.get_chat(alice.conversation_id)
    assert chat is not None
    assert bob.participant_id is not None
    sender = await chat.participant(bob.participant_id)
    assert sender is not None
    read = Chat.latest_visible

    async def racing(self: Chat) -> Any:
        monkeypatch.setattr(Chat, "latest_visible", read)
        if committed == "before the read":
            await self.submit(sender, {"type": "T", "text": "during", "local_id": "d1"})
            return await read(self)
        found = await read(self)
        await self.submit(sender, {"type": "T", "text": "during", "local_id": "d1"})
        return found

    monkeypatch.setattr(Chat, "latest_visible", racing)
    second = await alice.connect()
    await second.message(local_id="d1")
    await second.sync()
    seqs = _seqs(second)
    assert seqs == sorted(set(seqs)), seqs


async def test_a_resumed_socket_hears_of_newcomers_before_the_replay_names_them(
    server: LiveServer, alice: Person, people: PersonFactory
) -> None:
    socket = await alice.connect()
    await socket.message(event="participant-joined")
    await socket.sync()
    last = max(_seqs(socket))
    await socket.close()  # presence_grace=0 in tests: alice leaves at once
    carol = people(server)
    assert alice.conversation_id is not None
    assert (await carol.join(alice.conversation_id, nickname="carol")).status_code == 200
    said = await (await carol.connect()).say("hi from carol")

    resumed = await alice.connect(after=last)
    await resumed.message(local_id=said)
    assert _named_before_known(resumed) == []


def _named_before_known(socket: Socket) -> list[Frame]:
    """The messages of ``socket`` naming someone no earlier state frame listed."""
    known: set[str] = set()
    unknown = []
    for frame in socket.frames:
        if "state" in frame:
            known |= {p["id"] for p in frame["state"]["participants"]}
        elif "message" in frame:
            message: Frame = frame["message"]
            named = {message.get("sender_id")}
            named.add((message.get("additional_metadata") or {}).get("participant_id"))
            if not named - {None} <= known:
                unknown.append(message)
    return unknown


async def test_a_first_socket_hears_of_newcomers_before_their_messages(
    server: LiveServer, alice: Person, people: PersonFactory
) -> None:
    """Carol joins after bob's join response listed the participants, and talks as soon as
    bob's first socket opens: bob's socket lists her in a state frame before her message
    (the page crashes on a sender it does not know). Its first frame is its own state, not
    the broadcast one its arrival brings a moment later. (Found by QA.)"""
    await (await alice.connect()).message(event="participant-joined")
    bob, carol = people(server), people(server)
    assert alice.conversation_id is not None
    assert (await bob.join(alice.conversation_id, nickname="bob")).status_code == 200
    assert (await carol.join(alice.conversation_id, nickname="carol")).status_code == 200

    socket = await bob.connect()
    said = await (await carol.connect()).say("hi from carol")
    await socket.message(local_id=said)
    assert _named_before_known(socket) == []
    assert "state" in socket.frames[0]
    assert carol.participant_id in {p["id"] for p in socket.frames[0]["state"]["participants"]}


async def test_a_socket_whose_setup_fails_leaves_no_one_online(
    server: LiveServer, alice: Person, people: PersonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storing the participant-joined of a new socket fails (say, the database): the socket
    is closed with 1011 and its participant is not left online with no socket; the next
    socket joins as usual."""
    bob = people(server)
    assert alice.conversation_id is not None
    assert (await bob.join(alice.conversation_id, nickname="bob")).status_code == 200
    watcher = await bob.connect()
    await watcher.message(event="participant-joined")
    store = Chat._store
    failures = 0

    async def fails_once(self: Chat, *args: Any, **kwargs: Any) -> Any:
        nonlocal failures
        if not failures:
            failures += 1
            raise OSError("disk I/O error")
        return await store(self, *args, **kwargs)

    monkeypatch.setattr(Chat, "_store", fails_once)
    broken = await alice.connect()
    await broken.connection.wait_closed()
    assert broken.connection.close_code == 1011
    assert not await _present(server, alice)
    await alice.connect()
    await watcher.wait_for(
        lambda f: (
            f.get("message", {}).get("event") == "participant-joined"
            and f["message"]["additional_metadata"]["participant_id"] == alice.participant_id
        )
    )


async def test_someone_reloading_stays_online_for_the_others(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """In the grace period after a participant's last socket closed (a page reload, say)
    they have not left: a state frame sent meanwhile still shows them online."""
    async with live_server(make_settings(presence_grace=60)) as server:
        alice, watcher = await room_of_two(server, people)
        assert alice.conversation_id is not None
        tab = await alice.connect()
        await tab.message(event="participant-joined")
        await tab.close()
        await until(lambda: _absent(server, alice))
        carol = people(server)  # her arrival sends everyone a state
        assert (await carol.join(alice.conversation_id, nickname="carol")).status_code == 200
        frame = await watcher.wait_for(
            lambda f: (
                "state" in f
                and carol.participant_id in {p["id"] for p in f["state"]["participants"]}
            )
        )
        assert alice.participant_id in frame["state"]["online"]
