"""The WebSocket handshake: the session cookie and the Origin allow-list (PROTOCOL 4.1, A.2 #14)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from support.blab import TIMEOUT, Person
from support.server import LiveServer, live_server
from tertulia.settings import Settings

PersonFactory = Callable[[LiveServer], Person]
SettingsFactory = Callable[..., Settings]


async def _status_of_refusal(url: str, headers: dict[str, str] | None = None) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=headers or {}, open_timeout=TIMEOUT):
            pass
    return refused.value.response.status_code


async def _count(person: Person) -> int:
    response = await person.history()
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


def _url(server: LiveServer, conversation_id: str) -> str:
    return f"{server.ws_url}/ws/chat/{conversation_id}/"


async def test_no_cookie_is_refused(server: LiveServer, alice: Person) -> None:
    """A handshake without a session cookie gets HTTP 403 and stores nothing."""
    assert alice.conversation_id is not None
    before = await _count(alice)
    assert await _status_of_refusal(_url(server, alice.conversation_id)) == 403
    assert await _count(alice) == before


async def test_unknown_session_is_refused(server: LiveServer, alice: Person) -> None:
    """A cookie naming no session gets HTTP 403 and stores nothing."""
    assert alice.conversation_id is not None
    before = await _count(alice)
    headers = {"Cookie": f"sessionid={uuid.uuid4().hex}"}
    assert await _status_of_refusal(_url(server, alice.conversation_id), headers) == 403
    assert await _count(alice) == before


async def test_session_of_another_conversation_is_refused(
    server: LiveServer, alice: Person, people: PersonFactory
) -> None:
    """A valid session that is not a participant of the conversation gets HTTP 403."""
    assert alice.conversation_id is not None
    bob = people(server)
    assert (await bob.create(nickname="bob", bots=["ECHO"])).status_code == 201
    before = await _count(alice)
    headers = {"Cookie": f"sessionid={bob.session}"}
    assert await _status_of_refusal(_url(server, alice.conversation_id), headers) == 403
    assert await _count(alice) == before


@pytest.mark.parametrize("target", ["unknown", "not-a-uuid"])
async def test_unknown_conversation_is_refused(
    server: LiveServer, alice: Person, target: str
) -> None:
    """A conversation that does not exist (or an id that cannot be one) gets HTTP 403."""
    conversation_id = str(uuid.uuid4()) if target == "unknown" else target
    headers = {"Cookie": f"sessionid={alice.session}"}
    assert await _status_of_refusal(_url(server, conversation_id), headers) == 403


async def test_foreign_origin_is_refused(server: LiveServer, alice: Person) -> None:
    """A browser page from a foreign origin cannot open a socket with the user's cookie."""
    assert alice.conversation_id is not None
    before = await _count(alice)
    headers = {"Cookie": f"sessionid={alice.session}", "Origin": "https://evil.example"}
    assert await _status_of_refusal(_url(server, alice.conversation_id), headers) == 403
    assert await _count(alice) == before


async def test_own_origin_and_no_origin_are_accepted(server: LiveServer, alice: Person) -> None:
    """The server's own origin (what websocket-client sends) and no Origin both connect."""
    for headers in ({}, {"Origin": server.base_url}, {"Origin": server.base_url.upper()}):
        socket = await alice.connect(headers=headers)
        assert "state" in await socket.wait_for(lambda f: "state" in f)
        await socket.close()


async def test_configured_origin_is_accepted(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A configured front-end origin connects (trailing slash and case do not matter)."""
    settings = make_settings(allowed_origins=["https://App.example/"])
    async with live_server(settings) as server:
        person = people(server)
        assert (await person.create(nickname="carol", bots=["ECHO"])).status_code == 201
        socket = await person.connect(headers={"Origin": "https://app.example"})
        await socket.wait_for(lambda f: "state" in f)
        await socket.close()
        assert person.conversation_id is not None
        headers = {"Cookie": f"sessionid={person.session}", "Origin": "https://other.example"}
        assert await _status_of_refusal(_url(server, person.conversation_id), headers) == 403
