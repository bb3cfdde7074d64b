"""A throttled WebSocket handshake: HTTP 429 with Retry-After, told apart from a refusal (403),
counted per client, so that one client's refused handshakes do not lock out another."""

from __future__ import annotations

import logging
import uuid

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from support.blab import TIMEOUT
from support.environment import PersonFactory, SettingsFactory
from support.server import LiveServer, live_server
from tertulia.web import ratelimit


async def _refusal(url: str, headers: dict[str, str] | None = None) -> Response:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=headers or {}, open_timeout=TIMEOUT):
            pass
    return refused.value.response


def _url(server: LiveServer, conversation_id: str) -> str:
    return f"{server.ws_url}/ws/chat/{conversation_id}/"


async def test_a_throttled_handshake_gets_429_with_retry_after(
    make_settings: SettingsFactory, people: PersonFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Over the ``handshake`` limit: HTTP 429, a Retry-After within the window, a JSON body;
    the socket already open is still served. Nothing is logged as an error (before: uvicorn's
    "ASGI callable returned without completing handshake" for every one)."""
    caplog.set_level(logging.ERROR, logger="uvicorn.error")
    async with live_server(make_settings(rate_limits={"handshake": "1/minute"})) as server:
        alice = people(server)
        await alice.create(bots=["ECHO"])
        socket = await alice.connect()
        await socket.state()
        with pytest.raises(InvalidStatus) as throttled:
            await alice.connect()
        response = throttled.value.response
        assert response.status_code == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert orjson.loads(response.body)["code"] == "throttled"
        await socket.say("still served")
        await socket.message(text="STILL SERVED")
    assert not [r for r in caplog.records if "completing handshake" in r.getMessage()]


async def test_refused_handshakes_do_not_lock_out_another_client_on_the_address(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A stale tab (a session that is not in the conversation) retrying past the limit is
    throttled on its own: a healthy client behind the same address still connects."""
    async with live_server(make_settings(rate_limits={"handshake": "3/minute"})) as server:
        alice = people(server)
        await alice.create(bots=["ECHO"])
        assert alice.conversation_id is not None
        stale = {"Cookie": f"sessionid={uuid.uuid4().hex}"}
        statuses = [
            (await _refusal(_url(server, alice.conversation_id), stale)).status_code
            for _ in range(5)
        ]
        assert statuses == [403, 403, 403, 429, 429]
        socket = await alice.connect()
        await socket.state()


async def test_one_address_may_open_many_clients_sockets(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A bot host in many conversations (one address, a session each) is not throttled by
    the count of its other conversations' handshakes."""
    async with live_server(make_settings(rate_limits={"handshake": "2/minute"})) as server:
        for _ in range(4):
            person = people(server)
            await person.create(bots=["ECHO"])
            await (await person.connect()).state()


def test_a_client_is_its_conversation_in_any_spelling_and_made_up_paths_are_one() -> None:
    """The handshake limit's client key: another spelling of the conversation id is the
    same client (it got a fresh budget), and paths that name no conversation are one key
    (before: the raw path, so every made-up path stored a key of its own: 20,000 of 6 KB
    took a server from 111 to 242 MB)."""
    conversation = str(uuid.uuid4())

    def key(path: str) -> str:
        scope = {"type": "websocket", "path": path, "headers": [], "client": ("10.0.0.1", 5)}
        return ratelimit._handshake_client(scope)

    spellings = {
        key(f"/ws/chat/{conversation}/"),
        key(f"/ws/chat/{conversation.upper()}/"),
        key(f"/ws/chat/{conversation.replace('-', '')}"),
    }
    assert len(spellings) == 1
    made_up = {key(f"/ws/chat/{'x' * 6000}{n}/") for n in range(3)}
    assert len(made_up) == 1
    assert max(len(k) for k in spellings | made_up) < 100
