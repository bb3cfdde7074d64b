"""``GET conversations/?mine=true`` (an extension): the conversations of the caller's
session, newest first, with rooms on or off, so that a person in several can find them
again (with rooms off, the plain list stays 403, as BLAB's)."""

from __future__ import annotations

import pytest

from support.rest import PersonFactory, SettingsFactory, get
from support.server import live_server


@pytest.mark.parametrize("rooms", [False, True], ids=["rooms-off", "rooms-on"])
async def test_a_session_lists_its_own_conversations(
    make_settings: SettingsFactory, people: PersonFactory, rooms: bool
) -> None:
    """Newest first, each with the caller's participant and the number of participants;
    another session's are not there; without a session, an empty page."""
    async with live_server(make_settings(rooms=rooms)) as server:
        alice, bob = people(server), people(server)
        made = []
        for name in ("first", "second"):
            response = await alice.create(nickname="alice", name=name, bots=["ECHO"])
            assert response.status_code == 201
            made.append(response.json())
        assert (await bob.create(nickname="bob", name="bob's")).status_code == 201

        response = await alice.http.get("/conversations/", params={"mine": "true"})
        assert response.status_code == 200
        page = response.json()
        assert page["count"] == 2
        assert [c["name"] for c in page["results"]] == ["second", "first"]
        first = page["results"][1]
        assert first["id"] == made[0]["id"]
        assert first["my_participant_id"] == made[0]["my_participant_id"]
        assert first["participant_count"] == 2  # alice and ECHO
        assert [
            c["name"] for c in (await bob.http.get("/conversations/?mine=true")).json()["results"]
        ] == ["bob's"]

        nobody = await get(server, "/api/chat/conversations/?mine=true")
        assert nobody.status_code == 200
        assert nobody.json() == {"count": 0, "next": None, "previous": None, "results": []}

        plain = await alice.http.get("/conversations/")
        assert plain.status_code == (200 if rooms else 403)


async def test_mine_must_be_a_boolean(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    async with live_server(make_settings(rooms=False)) as server:
        response = await get(server, "/api/chat/conversations/?mine=perhaps")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


@pytest.mark.parametrize("page", ["abc", "0", "99"])
async def test_a_page_that_is_not_there_is_404_with_or_without_a_session(
    make_settings: SettingsFactory, people: PersonFactory, page: str
) -> None:
    """(REST QA F4: without a session, any ``page`` was the empty first page, 200; with
    one, 404.) The page is checked either way; ``last`` and 1 are the empty first page."""
    async with live_server(make_settings(rooms=False)) as server:
        alice = people(server)
        assert (await alice.create(nickname="alice")).status_code == 201
        for who in (alice.http, None):
            if who is None:
                response = await get(server, f"/api/chat/conversations/?mine=true&page={page}")
            else:
                response = await who.get("/conversations/", params={"mine": "true", "page": page})
            assert response.status_code == 404, response.text
            assert response.json()["detail"] == "Invalid page."
        for fine in ("1", "last"):
            nobody = await get(server, f"/api/chat/conversations/?mine=true&page={fine}")
            assert nobody.status_code == 200
            assert nobody.json()["count"] == 0
