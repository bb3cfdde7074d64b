"""Listing, retrieving and joining conversations, rooms on and off (PROTOCOL 2.2, 3.5, 3.7, 3.8).

Conformance cases A.1 7-8.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from support.blab import Person
from support.rest import NOWHERE, PersonFactory, SettingsFactory, call, get, set_cookie
from support.server import LiveServer, live_server
from tertulia.domain.model import Conversation
from tertulia.domain.times import utcnow
from tertulia.storage import conversations as conv_repo

FORBIDDEN = {
    "detail": "You do not have permission to perform this action.",
    "code": "not_participant",
}


@pytest.fixture
async def closed(make_settings: SettingsFactory) -> AsyncIterator[LiveServer]:
    """A server with rooms off (BLAB's production default)."""
    async with live_server(make_settings(rooms=False)) as running:
        yield running


async def test_rooms_off_list_is_forbidden(closed: LiveServer, people: PersonFactory) -> None:
    """Case 7: with rooms off, listing conversations is 403 even for a participant."""
    alice = people(closed)
    await alice.create(nickname="alice")
    for response in (
        await get(closed, "/api/chat/conversations/"),
        await alice.http.get("/conversations/"),
    ):
        assert response.status_code == 403
        assert response.json() == FORBIDDEN


async def test_rooms_off_retrieve_only_by_participants(
    closed: LiveServer, people: PersonFactory
) -> None:
    """Case 7: retrieve is 200 for the creator, 403 for another session, 404 for bad ids."""
    alice = people(closed)
    created = (await alice.create(nickname="alice", bots=["ECHO"])).json()
    mine = await alice.http.get(f"/conversations/{alice.conversation_id}/")
    assert mine.status_code == 200
    assert mine.json() == created

    other = people(closed)
    await other.create(nickname="other")
    for client in (other, people(closed)):
        response = await client.http.get(f"/conversations/{alice.conversation_id}/")
        assert response.status_code == 403
        assert response.json() == FORBIDDEN
    for bad in (NOWHERE, "not-a-uuid"):
        response = await alice.http.get(f"/conversations/{bad}/")
        assert response.status_code == 404, bad
        assert response.json()["detail"] == "Not found.", bad


async def test_rooms_off_join_reenters_only(closed: LiveServer, people: PersonFactory) -> None:
    """Case 8: with rooms off, the creator re-enters with 200; a fresh session gets 403."""
    alice = people(closed)
    created = (await alice.create(nickname="alice", bots=["ECHO"])).json()
    again = await alice.join(alice.conversation_id, nickname="")
    assert again.status_code == 200
    assert again.json() == created
    assert set_cookie(again) is not None

    stranger = people(closed)
    refused = await stranger.join(alice.conversation_id, nickname="eve")
    assert refused.status_code == 403
    assert refused.json() == FORBIDDEN
    assert stranger.session is None
    after = (await alice.http.get(f"/conversations/{alice.conversation_id}/")).json()
    assert after["participants"] == created["participants"]


async def test_join_reentry_returns_the_same_participant(alice: Person) -> None:
    """Case 8: join by the creator's session is 200 with the same participant, nothing new."""
    before = (await alice.http.get(f"/conversations/{alice.conversation_id}/")).json()
    socket = await alice.connect()
    await socket.state()  # the socket's own
    await socket.state()  # the broadcast of alice's arrival, 50 ms later
    count = (await alice.history()).json()["count"]
    response = await alice.join(alice.conversation_id, nickname="someone else")
    assert response.status_code == 200
    body = response.json()
    assert body["my_participant_id"] == before["my_participant_id"]
    assert body["participants"] == before["participants"]
    assert set_cookie(response) is not None
    assert (await alice.history()).json()["count"] == count
    assert not [f for f in await socket.sync() if "state" in f]


async def test_rooms_on_join_creates_a_participant(
    alice: Person, server: LiveServer, people: PersonFactory
) -> None:
    """Case 8: a fresh session joins as a new human, gets a cookie, and sockets get a state."""
    socket = await alice.connect()
    await socket.state()
    before = (await alice.history()).json()["count"]

    bob = people(server)
    response = await bob.join(alice.conversation_id, nickname="bob")
    assert response.status_code == 200
    body = response.json()
    assert set_cookie(response) is not None
    assert bob.session is not None
    assert [(p["name"], p["type"]) for p in body["participants"]] == [
        ("alice", "H"),
        ("ECHO", "B"),
        ("bob", "H"),
    ]
    assert body["my_participant_id"] == body["participants"][2]["id"]
    assert body["id"] == alice.conversation_id

    # (After the state of alice's own arrival, which may come after her socket's own.)
    frame = await socket.wait_for(lambda f: "state" in f and len(f["state"]["participants"]) == 3)
    assert frame["state"]["participants"] == body["participants"]
    assert (await alice.history()).json()["count"] == before  # join stores no message

    again = await bob.join(alice.conversation_id)
    assert again.json()["my_participant_id"] == body["my_participant_id"]
    assert len(again.json()["participants"]) == 3


async def test_join_nickname_rules(
    alice: Person, server: LiveServer, people: PersonFactory
) -> None:
    """Join takes the nickname, else the session's, else ``ANON_<id>``; non-strings are 400."""
    carol = people(server)
    await carol.create(nickname="carol")
    joined = (await carol.join(alice.conversation_id, nickname="")).json()
    assert joined["participants"][-1]["name"] == "carol"

    anon = people(server)
    refused = await anon.join(alice.conversation_id, nickname=5)
    assert refused.status_code == 400
    assert refused.json() == ["nickname must be a string"]
    body = (await anon.join(alice.conversation_id)).json()
    me = body["participants"][-1]
    assert me == {"id": body["my_participant_id"], "name": f"ANON_{me['id']}", "type": "H"}

    long = people(server)
    assert (await long.join(alice.conversation_id, nickname="x" * 51)).status_code == 400
    assert (await long.join(alice.conversation_id, nickname="x" * 50)).status_code == 200


async def test_join_unknown_conversation_is_404(server: LiveServer) -> None:
    """Join of an unknown or malformed conversation id is 404."""
    for bad in (NOWHERE, "not-a-uuid"):
        response = await call(server, "POST", f"/api/chat/conversations/{bad}/join/", json={})
        assert response.status_code == 404, bad
        assert response.json()["detail"] == "Not found."


async def test_join_accepts_form_bodies(alice: Person, server: LiveServer) -> None:
    """Join takes form-urlencoded and multipart bodies like create."""
    form = await call(
        server,
        "POST",
        f"/api/chat/conversations/{alice.conversation_id}/join/",
        data={"nickname": "f"},
    )
    assert form.status_code == 200
    assert form.json()["participants"][-1]["name"] == "f"


async def test_rooms_on_anyone_may_retrieve(alice: Person, server: LiveServer) -> None:
    """With rooms on, any session retrieves a conversation; ``my_participant_id`` is null."""
    response = await get(server, f"/api/chat/conversations/{alice.conversation_id}/")
    assert response.status_code == 200
    body = response.json()
    assert body["my_participant_id"] is None
    assert [p["name"] for p in body["participants"]] == ["alice", "ECHO"]


async def test_retrieve_accepts_other_spellings_of_the_id(alice: Person) -> None:
    """An uppercase id finds the conversation, and the answer prints the canonical id."""
    assert alice.conversation_id is not None
    response = await alice.http.get(f"/conversations/{alice.conversation_id.upper()}/")
    assert response.status_code == 200
    assert response.json()["id"] == alice.conversation_id
    assert response.json()["my_participant_id"] == alice.participant_id


async def test_rooms_list_shows_counts_and_my_participant(
    server: LiveServer, people: PersonFactory
) -> None:
    """Rooms on: every conversation, by name, with ``participant_count`` and my id or null."""
    alice = people(server)
    await alice.create(nickname="alice", name="beta", bots=["ECHO", "Calculator"])
    bob = people(server)
    alpha = (await bob.create(nickname="bob", name="alpha")).json()["my_participant_id"]
    beta = (await bob.join(alice.conversation_id)).json()["my_participant_id"]

    response = await alice.http.get("/conversations/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert body["next"] is None
    assert body["previous"] is None
    assert [list(r) for r in body["results"]] == [
        ["id", "name", "created_at", "participant_count", "my_participant_id"]
    ] * 2
    assert [(r["name"], r["participant_count"]) for r in body["results"]] == [
        ("alpha", 1),
        ("beta", 4),
    ]
    assert [r["my_participant_id"] for r in body["results"]] == [None, alice.participant_id]

    as_bob = (await bob.http.get("/conversations/")).json()["results"]
    assert [r["my_participant_id"] for r in as_bob] == [alpha, beta]

    anonymous = (await get(server, "/api/chat/conversations/")).json()["results"]
    assert [r["my_participant_id"] for r in anonymous] == [None, None]


async def test_rooms_list_counts_the_manager(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """``participant_count`` counts humans, bots and the manager."""
    settings = make_settings(
        bots={
            "ECHO": {"module": "tertulia.bots.builtin", "class": "UpperCaseEchoBot"},
            "Manager": {"module": "tertulia.bots.builtin", "class": "TransparentManagerBot"},
        },
        manager="Manager",
    )
    async with live_server(settings) as server:
        alice = people(server)
        await alice.create(bots=["ECHO"])
        listed = (await alice.http.get("/conversations/")).json()
    assert listed["results"][0]["participant_count"] == 3


async def test_rooms_list_is_paginated(server: LiveServer) -> None:
    """More than 100 conversations: pages of 100 with absolute next/previous, ``page=last``."""
    async with server.registry.db.write() as conn:
        for i in range(230):
            await conv_repo.insert_conversation(
                conn,
                Conversation(
                    id=f"00000000-0000-4000-8000-{i:012d}", name=f"r{i:03d}", created_at=utcnow()
                ),
            )
    base = f"{server.base_url}/api/chat/conversations/"
    first = (await get(server, "/api/chat/conversations/")).json()
    assert first["count"] == 230
    assert len(first["results"]) == 100
    assert first["results"][0]["name"] == "r000"
    assert first["previous"] is None
    assert first["next"] == f"{base}?page=2"

    second = (await get(server, "/api/chat/conversations/?page=2")).json()
    assert second["results"][0]["name"] == "r100"
    assert second["previous"] == base
    assert second["next"] == f"{base}?page=3"

    last = (await get(server, "/api/chat/conversations/?page=last")).json()
    assert [r["name"] for r in last["results"]] == [f"r{i}" for i in range(200, 230)]
    assert last["next"] is None
    assert last["previous"] == f"{base}?page=2"

    for bad in ("4", "0", "-1", "x", "1.5", "²", "99999999999999999999999"):
        response = await get(server, f"/api/chat/conversations/?page={bad}")
        assert response.status_code == 404, bad
        assert response.json()["detail"] == "Invalid page.", bad


async def test_empty_rooms_list(server: LiveServer) -> None:
    """With no conversations the list is an empty page, and ``page=1`` / ``last`` work."""
    for query in ("", "?page=1", "?page=last"):
        response = await get(server, f"/api/chat/conversations/{query}")
        assert response.status_code == 200, query
        assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}
    assert (await get(server, "/api/chat/conversations/?page=2")).status_code == 404


async def test_rooms_list_order_is_the_same_on_every_database(
    server: LiveServer, people: PersonFactory
) -> None:
    """Unnamed conversations come first, then names by code point, then by creation."""
    for name in ("b", None, "B", "", "a", "é", "b"):
        await people(server).create(name=name)
    listed = (await get(server, "/api/chat/conversations/")).json()["results"]
    assert [r["name"] for r in listed] == [None, "", "B", "a", "b", "b", "é"]
    assert listed[4]["created_at"] <= listed[5]["created_at"]


async def test_concurrent_joins_of_one_session_make_one_participant(
    alice: Person, server: LiveServer, people: PersonFactory
) -> None:
    """The same session joining twice at once gets one participant, both answers 200."""
    bob = people(server)
    await bob.create(nickname="bob")
    path = f"/conversations/{alice.conversation_id}/join/"
    responses = await asyncio.gather(*(bob.http.post(path, json={}) for _ in range(4)))
    assert [r.status_code for r in responses] == [200] * 4
    assert len({r.json()["my_participant_id"] for r in responses}) == 1
    shown = (await alice.http.get(f"/conversations/{alice.conversation_id}/")).json()
    assert [p["name"] for p in shown["participants"]] == ["alice", "ECHO", "bob"]


async def test_join_refused_when_the_conversation_is_full(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A room at ``max_participants`` refuses newcomers with 400 but lets members re-enter."""
    async with live_server(make_settings(max_participants=2)) as server:
        alice = people(server)
        await alice.create(nickname="alice", bots=["ECHO"])
        refused = await people(server).join(alice.conversation_id, nickname="bob")
        assert refused.status_code == 400
        assert (await alice.join(alice.conversation_id)).status_code == 200


async def test_a_create_with_more_bots_than_the_conversation_holds_is_refused(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """(REST QA F1: a create with ten bots under a limit of three was a conversation of
    eleven.) ``max_participants`` counts the creator, the bots and the manager; a create
    past it is refused with 400 and stores nothing; one that fills it is made."""
    echo = {"module": "tertulia.bots.builtin", "class": "UpperCaseEchoBot"}
    manager = {
        "module": "tertulia.bots.builtin",
        "class": "CalcOrEchoManagerBot",
        "kwargs": {"calculator_bot_name": "B0", "echo_bot_name": "B1"},
    }
    bots = {"B0": echo, "B1": echo, "Manager": manager}
    settings = make_settings(max_participants=3, manager="Manager", bots=bots)
    async with live_server(settings) as server:
        alice = people(server)
        refused = await alice.create(nickname="alice", bots=["B0", "B1"])
        assert refused.status_code == 400
        assert refused.json() == [
            "Too many bots: 2; a conversation starts with at most 1 (max_participants)"
        ]
        mine = await alice.http.get("/conversations/", params={"mine": "true"})
        assert mine.json()["count"] == 0, "nothing stored"
        created = await alice.create(nickname="alice", bots=["B0"])
        assert created.status_code == 201
        assert [p["name"] for p in created.json()["participants"]] == ["alice", "B0", "Manager"]
