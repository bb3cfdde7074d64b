"""Which ``Host`` a request or handshake may name (web/hosts.py, setting ``allowed_hosts``):
DNS rebinding, where a page re-points its own name at the server, is refused."""

from __future__ import annotations

import orjson
import pytest
from starlette.types import Message, Scope
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from support.blab import TIMEOUT
from support.bots import watch_logs
from support.rest import PersonFactory, SettingsFactory, call
from support.server import LiveServer, live_server
from tertulia.errors import ConfigurationError
from tertulia.settings import load_settings
from tertulia.web.hosts import HostCheck

REFUSED = {"detail": "Host not allowed.", "code": "host"}


def _as(server: LiveServer, host: str) -> dict[str, str]:
    """The headers of a page served under ``host`` (on the server's port) that sends them."""
    name = f"{host}:{server.port}"
    return {"Host": name, "Origin": f"http://{name}"}


async def test_a_rebinding_host_is_refused_on_rest_by_default(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """On a server listening on 127.0.0.1, a page of attacker.example re-pointed at it (its
    Host and a matching Origin) can neither list, read, join nor post: 400 in JSON."""
    async with live_server(make_settings()) as server:
        alice = people(server)
        await alice.create(nickname="alice", bots=["ECHO"])
        conversation = f"/api/chat/conversations/{alice.conversation_id}"
        headers = _as(server, "attacker.example")
        headers["Cookie"] = f"sessionid={alice.session}"
        with watch_logs() as logs:
            for method, path, body in [
                ("GET", "/api/chat/conversations/", None),
                ("GET", f"{conversation}/messages/", None),
                ("POST", "/api/chat/conversations/", {"nickname": "eve", "name": "x"}),
                ("POST", f"{conversation}/join/", {"nickname": "eve"}),
                ("POST", f"{conversation}/messages/", {"type": "text", "text": "hi"}),
                ("GET", "/", None),
            ]:
                response = await call(server, method, path, headers=headers, json=body)
                assert response.status_code == 400, (method, path)
                assert response.headers["content-type"] == "application/json"
                assert response.json() == REFUSED
        warned = [e for e in logs.entries if e["event"].startswith("Host not allowed")]
        assert len(warned) == 1  # (one every few seconds)
        assert warned[0]["host"] == f"attacker.example:{server.port}"
        history = await alice.http.get(f"/conversations/{alice.conversation_id}/messages/")
        assert "hi" not in history.text


async def test_a_rebinding_host_is_refused_on_the_websocket_handshake(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """The handshake of a participant's cookie under a rebinding Host: HTTP 400 in JSON;
    the same cookie under localhost connects."""
    async with live_server(make_settings()) as server:
        alice = people(server)
        await alice.create(nickname="alice")
        url = f"ws://attacker.example:{server.port}/ws/chat/{alice.conversation_id}/"
        cookie = {"Cookie": f"sessionid={alice.session}"}
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                url,
                host="127.0.0.1",
                origin=_as(server, "attacker.example")["Origin"],  # type: ignore[arg-type]
                additional_headers=cookie,
                open_timeout=TIMEOUT,
            ):
                pass  # pragma: no cover
        assert refused.value.response.status_code == 400
        assert orjson.loads(refused.value.response.body) == REFUSED
        async with connect(
            url.replace("attacker.example", "localhost"),
            host="127.0.0.1",
            origin=_as(server, "localhost")["Origin"],  # type: ignore[arg-type]
            additional_headers=cookie,
            open_timeout=TIMEOUT,
        ) as socket:
            assert socket.response is not None
            assert socket.response.status_code == 101


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"])
async def test_the_quick_start_names_pass_by_default(
    make_settings: SettingsFactory, host: str
) -> None:
    """The README's http://127.0.0.1:8000/ and http://localhost:8000/ (and [::1]), any
    port, with their own Origin: served."""
    async with live_server(make_settings()) as server:
        for headers in (_as(server, host), {"Host": host}):
            assert (await call(server, "GET", "/", headers=headers)).status_code == 200
            created = await call(
                server,
                "POST",
                "/api/chat/conversations/",
                headers=headers,
                json={"nickname": "alice", "name": "x"},
            )
            assert created.status_code == 201


async def test_allowed_hosts_are_served_and_others_refused(
    make_settings: SettingsFactory,
) -> None:
    """Set, ``allowed_hosts`` is the whole list (loopback names too), patterns as Starlette
    takes them; ``/health`` answers whatever the Host (a probe names an address)."""
    settings = make_settings(allowed_hosts=["Chat.Example.com", "*.example.org"])
    async with live_server(settings) as server:
        for host, status in [
            ("chat.example.com", 200),
            ("chat.example.com:443", 200),
            ("a.b.example.org", 200),
            ("example.org", 400),
            ("chat.example.com.evil.example", 400),
            ("127.0.0.1", 400),
        ]:
            response = await call(server, "GET", "/api/chat/bots/", headers={"Host": host})
            assert response.status_code == status, host
        health = await call(server, "GET", "/health", headers={"Host": "10.0.0.7:8000"})
        assert health.status_code == 200


async def _served(check: HostCheck, scope: Scope) -> int:
    """The status ``check`` answers ``scope`` with (200: passed on to the app)."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}  # pragma: no cover

    async def send(message: Message) -> None:
        sent.append(message)

    await check(scope, receive, send)
    return int(sent[0]["status"]) if sent else 200


async def _app(scope: Scope, receive: object, send: object) -> None:
    """An app that answers nothing (passed)."""


def _scope(server: tuple[str, int] | None, host: str) -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "path": "/api/chat/bots/",
        "headers": [(b"host", host.encode())],
        "server": server,
    }


@pytest.mark.parametrize(
    ("server", "host", "status"),
    [
        (("127.0.0.1", 8000), "attacker.example:8000", 400),
        (("127.0.0.2", 8000), "attacker.example", 400),
        (("::1", 8000), "attacker.example", 400),
        (("::ffff:127.0.0.1", 8000), "attacker.example", 400),
        (("::1", 8000), "[::1]:8000", 200),
        (("192.0.2.10", 8000), "attacker.example", 200),
        (("2001:db8::1", 8000), "chat.example.com", 200),
        (("/run/tertulia.sock", None), "chat.example.com", 200),  # type: ignore[list-item]
        (None, "chat.example.com", 200),
    ],
)
async def test_unset_the_address_a_connection_came_to_decides(
    server: tuple[str, int] | None, host: str, status: int
) -> None:
    """Unset, a connection to a loopback address may name only loopback names; one to
    another address (reached over a network, a Unix socket) any."""
    assert await _served(HostCheck(_app, None), _scope(server, host)) == status


@pytest.mark.parametrize(
    "hosts",
    [[], ["https://chat.example.com"], ["chat.example.com:443"], ["::1"], ["a.*.example.com"]],
)
def test_what_is_not_a_host_name_or_pattern_is_refused_in_the_settings(
    hosts: list[str],
) -> None:
    """A scheme, a port, a bare IPv6 address, a wildcard inside, or no name at all is a
    configuration error, not a server that refuses everything."""
    with pytest.raises(ConfigurationError, match="allowed_hosts"):
        load_settings(None, allowed_hosts=hosts)


async def test_a_request_naming_two_hosts_is_refused(make_settings: SettingsFactory) -> None:
    """(REST QA F6: the check read the first ``Host`` only, so an allowed one before
    attacker.example passed; RFC 9112 3.2: a request with more than one is answered 400.)
    Whatever their order, 400 ``host``; with one allowed Host, served."""
    import asyncio

    async with live_server(make_settings()) as server:
        allowed = f"127.0.0.1:{server.port}"

        async def status(*hosts: str) -> tuple[int, bytes]:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                lines = "".join(f"Host: {host}\r\n" for host in hosts)
                request = f"GET /api/chat/bots/ HTTP/1.1\r\n{lines}Connection: close\r\n\r\n"
                writer.write(request.encode())
                async with asyncio.timeout(TIMEOUT):
                    data = await reader.read(-1)
            finally:
                writer.close()
            head, _, body = data.partition(b"\r\n\r\n")
            return int(head.split()[1]), body

        assert (await status(allowed))[0] == 200
        for hosts in [(allowed, "attacker.example"), ("attacker.example", allowed)]:
            code, body = await status(*hosts)
            assert code == 400
            assert orjson.loads(body) == REFUSED
        assert (await status(allowed, allowed))[0] == 400
