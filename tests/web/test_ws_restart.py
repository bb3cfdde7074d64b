"""A server's restart is not its participants leaving (PROTOCOL 4.4, A.2 #22).

The sockets a stopping server closes itself used to go down the path of a participant
leaving: every one got *participant-left*, every conversation with a required bot got
*conversation-ended*, and that bot's sessions ended with it, so the external bot (whose SDK
reconnects after the restart) was refused for good: a routine deploy ended them all.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from support.blab import Person
from support.bots import bot_person, bots_with
from support.server import LiveServer, live_server
from support.waiting import until
from tertulia.settings import Settings
from tertulia.storage import conversations as conv_repo

PersonFactory = Callable[[LiveServer], Person]
SettingsFactory = Callable[..., Settings]


async def test_a_restart_neither_says_anyone_left_nor_ends_a_conversation(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    settings = make_settings(bots=bots_with("Keeper", "SilentBot", required=True))
    async with live_server(settings) as server:
        alice = people(server)
        created = await alice.create(nickname="alice", bots=["ECHO", "Keeper"])
        assert created.status_code == 201, created.text
        keeper_id = next(p["id"] for p in created.json()["participants"] if p["name"] == "Keeper")
        assert alice.conversation_id is not None
        keeper = await bot_person(server, alice.conversation_id, keeper_id)
        human = await alice.connect()
        await human.state()
        bot_socket = await keeper.connect()
        await bot_socket.state()
        # The server stops with both sockets open (presence_grace is 0 in the tests: a
        # leaving participant's 'left' would be stored at once).
    session = keeper.session
    assert session is not None

    async with live_server(settings) as again:
        alice.http.base_url = again.base_url + "/api/chat"
        alice.ws_url = again.ws_url
        history = (await alice.history()).json()["results"]
        events = [m.get("event") for m in history if m["type"] == "S"]
        assert "participant-left" not in events
        assert "conversation-ended" not in events
        async with again.registry.db.read() as conn:
            stored = await conv_repo.get_conversation(conn, alice.conversation_id)
        assert stored is not None
        assert not stored.ended

        # The bot comes back with the session it had (as the SDK does after a drop).
        returning = people(again)
        returning.http.cookies.set("sessionid", session)
        returning.conversation_id = alice.conversation_id
        returning.participant_id = keeper_id
        socket = await returning.connect()
        state = await socket.state()
        assert keeper_id in state["online"]


def _presence(history: list[dict[str, Any]], participant_id: str | None) -> list[str]:
    """The participant's *participant-joined* and *participant-left*, in order."""
    return [
        m["event"]
        for m in history
        if m.get("event") in ("participant-joined", "participant-left")
        and m["additional_metadata"].get("participant_id") == participant_id
    ]


async def _has_presence(person: Person, events: list[str]) -> bool:
    history = (await person.history()).json()["results"]
    return _presence(history, person.participant_id) == events


async def test_a_person_back_after_a_restart_is_not_announced_again(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """The transcript said alice was here when the server stopped; her socket coming back
    says nothing new (it used to store a second *participant-joined*, one per restart) and
    gets the latest message, as any reconnection does, to load what it missed. Her leaving
    afterwards, and coming back after that, are announced as always."""
    settings = make_settings()
    async with live_server(settings) as server:
        alice = people(server)
        assert (await alice.create(nickname="alice", bots=["ECHO"])).status_code == 201
        first = await alice.connect()
        await first.state()
        await first.say("before")
        await first.message(text="before", sender_id=alice.participant_id)
        await first.message(text="BEFORE")  # ECHO's answer

    async with live_server(settings) as again:
        alice.http.base_url = again.base_url + "/api/chat"
        alice.ws_url = again.ws_url
        back = await alice.connect()
        latest = await back.wait_for(lambda f: "message" in f)
        assert latest["message"].get("text") == "BEFORE"  # not a second participant-joined
        history = (await alice.history()).json()["results"]
        assert _presence(history, alice.participant_id) == ["participant-joined"]

        await back.close()  # presence_grace is 0 in the tests: 'left' at once
        await until(partial(_has_presence, alice, ["participant-joined", "participant-left"]))
        returning = await alice.connect()
        await returning.state()
        again_joined = ["participant-joined", "participant-left", "participant-joined"]
        await until(partial(_has_presence, alice, again_joined))


async def test_a_person_who_never_comes_back_after_a_restart_is_announced_as_having_left(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A restart stores nothing for the sockets it closes (nobody left). Someone who does
    not come back within ``presence_lease`` (plus the grace) did leave, and is announced
    so once, as if their last socket had closed (before, the transcript said they were
    here for ever)."""
    settings = make_settings(presence_lease=1)
    async with live_server(settings) as server:
        alice = people(server)
        assert (await alice.create(nickname="alice", bots=["ECHO"])).status_code == 201
        bob = people(server)
        assert alice.conversation_id is not None
        assert (await bob.join(alice.conversation_id, nickname="bob")).status_code == 200
        for person in (alice, bob):
            await (await person.connect()).state()

    async with live_server(settings) as again:
        for person in (alice, bob):
            person.http.base_url = again.base_url + "/api/chat"
            person.ws_url = again.ws_url
        # bob comes back at once, alice never does
        back = await bob.connect()
        await back.state()
        await until(partial(_has_presence, alice, ["participant-joined", "participant-left"]))
        # Several more sweeps: alice is not announced twice, bob (here) not at all.
        swept = again.app.state.absences.sweeps
        await until(lambda: again.app.state.absences.sweeps >= swept + 3)
        assert await _has_presence(alice, ["participant-joined", "participant-left"])
        assert await _has_presence(bob, ["participant-joined"])
