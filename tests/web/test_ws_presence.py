"""Presence: joined on a participant's first socket, left after its last closes (with a
grace period), conversation-ended when a required bot leaves (PROTOCOL 4.4; A.2 #18)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from support.blab import Frame, Person, Socket
from support.bots import bot_person, bots_with
from support.server import LiveServer, live_server
from tertulia import chats
from tertulia.settings import Settings

PersonFactory = Callable[[LiveServer], Person]
SettingsFactory = Callable[..., Settings]


def _event(event: str, participant_id: str | None) -> Callable[[Frame], bool]:
    def match(frame: Frame) -> bool:
        message = frame.get("message", {})
        return bool(
            message.get("event") == event
            and message["additional_metadata"] == {"participant_id": participant_id}
        )

    return match


def _events(frames: list[Frame]) -> list[tuple[str, Any]]:
    return [
        (f["message"]["event"], f["message"]["additional_metadata"].get("participant_id"))
        for f in frames
        if f.get("message", {}).get("type") == "S"
    ]


async def _bob(server: LiveServer, alice: Person, people: PersonFactory) -> tuple[Person, Socket]:
    bob = people(server)
    assert alice.conversation_id is not None
    assert (await bob.join(alice.conversation_id, nickname="bob")).status_code == 200
    socket = await bob.connect()
    await socket.wait_for(_event("participant-joined", bob.participant_id))
    return bob, socket


async def test_close_publishes_left_then_state(
    server: LiveServer, alice: Person, people: PersonFactory
) -> None:
    """When a human's only socket closes, the others get participant-left, then a state."""
    _, watcher = await _bob(server, alice, people)
    socket = await alice.connect()
    await watcher.wait_for(_event("participant-joined", alice.participant_id))
    await socket.close()
    left = await watcher.wait_for(_event("participant-left", alice.participant_id))
    state = await watcher.state()
    assert alice.participant_id in {p["id"] for p in state["participants"]}
    assert left["message"]["type"] == "S"
    frames = await watcher.sync()
    assert ("participant-left", alice.participant_id) not in _events(frames)


async def test_second_socket_is_not_a_new_arrival(
    server: LiveServer, alice: Person, people: PersonFactory
) -> None:
    """A second tab adds no joined, gets a state and a message frame at once; closing one
    of two tabs adds no left, closing the last one does."""
    _, watcher = await _bob(server, alice, people)
    first = await alice.connect()
    await watcher.wait_for(_event("participant-joined", alice.participant_id))
    await watcher.sync()

    second = await alice.connect()
    await second.state()
    latest = await second.wait_for(lambda f: "message" in f)
    assert latest["message"]["id"]
    assert not _events(await watcher.sync())

    await second.close()
    assert not _events(await watcher.sync())
    await first.sync()

    await first.close()
    await watcher.wait_for(_event("participant-left", alice.participant_id))


async def test_reconnect_within_grace_is_silent(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """Closing and reopening within presence_grace publishes neither left nor joined, and the
    new socket still gets a message frame to load its history from."""
    async with live_server(make_settings(presence_grace=60)) as server:
        alice = people(server)
        assert (await alice.create(nickname="alice", bots=["ECHO"])).status_code == 201
        _, watcher = await _bob(server, alice, people)
        socket = await alice.connect()
        await watcher.wait_for(_event("participant-joined", alice.participant_id))
        await watcher.sync()

        await socket.close()
        socket = await alice.connect()
        assert "message" in await socket.wait_for(lambda f: "message" in f)
        await socket.sync()
        assert not _events(await watcher.sync())


async def test_left_comes_after_the_grace_period(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A participant who stays away longer than presence_grace is announced as left."""
    grace = 0.3
    async with live_server(make_settings(presence_grace=grace)) as server:
        alice = people(server)
        assert (await alice.create(nickname="alice", bots=["ECHO"])).status_code == 201
        _, watcher = await _bob(server, alice, people)
        socket = await alice.connect()
        await watcher.wait_for(_event("participant-joined", alice.participant_id))
        await socket.close()
        started = time.monotonic()
        await watcher.wait_for(_event("participant-left", alice.participant_id))
        assert time.monotonic() - started >= grace * 0.8


async def test_left_pending_at_shutdown_is_stored(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A participant-left still in its grace period when the server stops is stored."""
    async with live_server(make_settings(presence_grace=60)) as server:
        alice = people(server)
        assert (await alice.create(nickname="alice", bots=["ECHO"])).status_code == 201
        socket = await alice.connect()
        await socket.sync()
        await socket.close()
        await socket.connection.wait_closed()
    async with live_server(make_settings(presence_grace=60)) as server:
        alice.http.base_url = server.base_url + "/api/chat"
        results = (await alice.history()).json()["results"]
        assert ("participant-left", alice.participant_id) in [
            (m.get("event"), m.get("additional_metadata", {}).get("participant_id"))
            for m in results
        ]


async def test_required_bot_leaving_ends_the_conversation(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """When a required bot's last socket closes: participant-left, then conversation-ended;
    closing one of its two sockets ends nothing; people can still write afterwards."""
    settings = make_settings(bots=bots_with("Keeper", "SilentBot", required=True))
    async with live_server(settings) as server:
        alice = people(server)
        created = await alice.create(nickname="alice", bots=["ECHO", "Keeper"])
        assert created.status_code == 201
        keeper_id = next(p["id"] for p in created.json()["participants"] if p["name"] == "Keeper")
        assert alice.conversation_id is not None
        human = await alice.connect()
        await human.wait_for(_event("participant-joined", alice.participant_id))

        keeper = await bot_person(server, alice.conversation_id, keeper_id)
        try:
            one = await keeper.connect()
            await one.state()
            two = await keeper.connect()
            await two.state()
            await two.close()
            assert not _events(await human.sync())

            await one.close()
            left = await human.wait_for(_event("participant-left", keeper_id))
            ended = await human.wait_for(_event("conversation-ended", keeper_id))
            assert left["message"]["seq"] < ended["message"]["seq"]
            local_id = await human.say("still here")
            mine = await human.message(local_id=local_id)
            answer = await human.message(quoted_message_id=mine["id"])
            assert answer["text"] == "STILL HERE"
        finally:
            await keeper.close()


async def test_presence_state_waits_out_arrivals_between_messages(
    server: LiveServer, alice: Person, people: PersonFactory, monkeypatch: Any
) -> None:
    """Arrivals in quick succession: everyone gets each participant-joined at once and one
    presence ``state`` after the wait, not one per arrival; each newcomer, whose broadcast
    waits that long, gets its own ``state`` at once."""
    # Four people count as a big room here: presence waits 2 s.
    monkeypatch.setattr(chats, "STATE_DELAY", 2.0)
    monkeypatch.setattr(chats, "STATE_DELAY_MAX", 2.0)
    monkeypatch.setattr(chats, "STATE_DELAY_PEOPLE", 1)
    assert alice.conversation_id is not None
    others = [people(server) for _ in range(3)]
    for n, person in enumerate(others):
        assert (await person.join(alice.conversation_id, nickname=f"p{n}")).status_code == 200
    watcher = await alice.connect()
    await watcher.state()
    await watcher.sync()
    began = len(watcher.frames)
    for person in others:
        socket = await person.connect()
        await socket.state(timeout=1.0)  # its own, long before the wait is over
        await watcher.wait_for(_event("participant-joined", person.participant_id))
    arrivals = watcher.frames[began:]
    # (ECHO, given each participant-joined, may take long enough on a busy machine to show
    # as working: the working indicator's frames carry ``working``, presence's do not)
    assert not [f for f in arrivals if "state" in f and "working" not in f["state"]]
    state = await watcher.state(timeout=5.0)
    online = {alice.participant_id, *(p.participant_id for p in others)}
    assert online <= set(state["online"])


async def test_new_participants_settle_a_pending_presence_state(
    server: LiveServer, alice: Person, people: PersonFactory, monkeypatch: Any
) -> None:
    """A join publishes its ``state`` at once, current presence included: the presence frame
    that was waiting is not sent after it."""
    monkeypatch.setattr(chats, "STATE_DELAY", 0.5)
    bob, _ = await _bob(server, alice, people)  # bob's arrival: a presence frame waits
    watcher = await alice.connect()
    await watcher.wait_for(_event("participant-joined", alice.participant_id))
    carol = people(server)
    assert alice.conversation_id is not None
    assert (await carol.join(alice.conversation_id, nickname="carol")).status_code == 200
    state = await watcher.wait_for(
        lambda f: (
            "state" in f and carol.participant_id in {p["id"] for p in f["state"]["participants"]}
        )
    )
    assert {alice.participant_id, bob.participant_id} <= set(state["state"]["online"])
    chat = await server.registry.get(alice.conversation_id)
    assert not chat.state_pending
