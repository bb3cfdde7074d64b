"""A server's restart is not its participants leaving (PROTOCOL 4.4, A.2 #22).

The sockets a stopping server closes itself used to go down the path of a participant
leaving: every one got *participant-left*, every conversation with a required bot got
*conversation-ended*, and that bot's sessions ended with it, so the external bot (whose SDK
reconnects after the restart) was refused for good: a routine deploy ended them all.
"""

from __future__ import annotations

from collections.abc import Callable

from support.blab import Person
from support.bots import bot_person, bots_with
from support.server import LiveServer, live_server
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
        assert created.status_code == 201
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
