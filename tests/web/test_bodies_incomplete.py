"""JSON and form bodies that never arrive whole: a client that goes away in the middle, or
stops sending without closing its connection (a phone losing its network). Either is bad
input, answered 400 with ``Connection: close``; neither is a server failure (before: the
first went down the 500 path with two error tracebacks, the second held its request until
the server stopped). Multipart uploads have their own tests (test_uploads_stalled)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Callable

import orjson
import pytest

from support.blab import Person
from support.bots import watch_logs
from support.drip import drip
from support.server import LiveServer, live_server
from tertulia.settings import Settings
from tertulia.web import bodies

PersonFactory = Callable[[LiveServer], Person]
SettingsFactory = Callable[..., Settings]


@pytest.fixture
async def quick(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LiveServer]:
    """A server that gives up on a body after 0.3 s without a byte."""
    monkeypatch.setattr(bodies, "IDLE_SECONDS", 0.3)
    async with live_server(make_settings()) as running:
        yield running


def _requests(person: Person) -> dict[str, tuple[str, str, str, bytes]]:
    """Method, path, content type and the first part of a body, for each kind of body."""
    cid, pid = person.conversation_id, person.participant_id
    return {
        "message": ("POST", f"/api/chat/conversations/{cid}/messages/", "application/json",
                    b'{"type": "T", "text": "ab'),
        "create": ("POST", "/api/chat/conversations/", "application/json", b'{"nickname": "a'),
        "join": ("POST", f"/api/chat/conversations/{cid}/join/",
                 "application/x-www-form-urlencoded", b"nickname=ab"),
        "rename": ("PATCH", f"/api/chat/conversations/{cid}/participants/{pid}/",
                   "application/json", b'{"name": "ab'),
    }  # fmt: skip


def _head(server: LiveServer, person: Person, kind: str, length: int) -> bytes:
    """The head of a request of ``kind`` announcing a ``length``-byte body, and the first
    part of that body."""
    method, path, content_type, part = _requests(person)[kind]
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Cookie: sessionid={person.session}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode() + part


def _send_part(server: LiveServer, person: Person, kind: str) -> socket.socket:
    """A connection that has sent the head and part of a 200-byte body of ``kind``."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(_head(server, person, kind, 200))
    return sock


def _answer(sock: socket.socket) -> bytes:
    received = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize("kind", ["message", "create", "join", "rename"])
async def test_a_stalled_body_is_given_up_with_400(
    quick: LiveServer, people: PersonFactory, kind: str
) -> None:
    person = people(quick)
    assert (await person.create(nickname="dora")).status_code == 201
    with watch_logs() as logs, _send_part(quick, person, kind) as sock:
        received = await asyncio.to_thread(_answer, sock)
    status_line, _, rest = received.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert status_line.split()[1] == b"400"
    assert b"connection: close" in headers.lower()
    assert orjson.loads(body) == {
        "detail": "The request stalled: nothing arrived for 0.3 seconds.",
        "code": "invalid",
    }
    assert not logs.errors()


@pytest.mark.parametrize("kind", ["message", "create", "join", "rename"])
async def test_a_client_gone_mid_body_is_no_server_error(
    quick: LiveServer, people: PersonFactory, kind: str
) -> None:
    person = people(quick)
    assert (await person.create(nickname="dora")).status_code == 201
    with watch_logs() as logs:
        _send_part(quick, person, kind).close()
        cut = await logs.wait_for(lambda e: e["event"] == "request body cut short")
        assert cut["reason"] == "client gone"
        assert not logs.errors()
        # The server goes on, and the person's session with it.
        assert (await person.post(type="T", text="still here")).status_code == 201


@pytest.fixture
def demanding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bodies given 0.5 s, and a second more per 100 bytes (not 20 s and 500 bytes)."""
    monkeypatch.setattr(bodies, "GRACE_SECONDS", 0.5)
    monkeypatch.setattr(bodies, "MIN_RATE", 100)


@pytest.mark.parametrize("kind", ["message", "join"])
async def test_a_body_dripping_in_is_cut_off_with_400(
    demanding: None, make_settings: SettingsFactory, people: PersonFactory, kind: str
) -> None:
    """A byte every 50 ms (20 a second, under the 100 asked for) is never idle long enough
    to count as stalled: it is given up once it falls behind the pace (module docstring of
    web/bodies.py), well before its 1,000 bytes would have come (50 s). Before, it held
    its request for as long as the client liked. (The answer is lost when a byte comes as
    the server closes: the connection is reset, support/drip.py. The log tells the cut.)"""
    async with live_server(make_settings()) as server:
        person = people(server)
        assert (await person.create(nickname="dora")).status_code == 201
        with watch_logs() as logs:
            head = _head(server, person, kind, 1000)
            received = await drip(server.port, head, itertools.repeat(b"b"), every=0.05)
            cut = await logs.wait_for(lambda e: e["event"] == "request body cut short")
        assert cut["reason"] == "too slow"
        assert not logs.errors()
        if received is not None:
            status_line, _, rest = received.partition(b"\r\n")
            headers, _, body = rest.partition(b"\r\n\r\n")
            assert status_line.split()[1] == b"400"
            assert b"connection: close" in headers.lower()
            assert orjson.loads(body) == {
                "detail": "The request was too slow: its body came slower than 100 bytes a second.",
                "code": "invalid",
            }
        assert (await person.post(type="T", text="still here")).status_code == 201


async def test_a_body_at_a_steady_pace_is_taken_however_long(
    demanding: None, make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A body that keeps ahead of the pace is taken, though it lasts well past the grace
    time: 40 bytes every 50 ms (800 a second) for about 1.5 s."""
    async with live_server(make_settings()) as server:
        person = people(server)
        assert (await person.create(nickname="dora")).status_code == 201
        text = "a" * 1200
        body = orjson.dumps({"type": "T", "text": text})
        cid = person.conversation_id
        head = (
            f"POST /api/chat/conversations/{cid}/messages/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nCookie: sessionid={person.session}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        pieces = [body[i : i + 40] for i in range(0, len(body), 40)]
        received = await drip(server.port, head, pieces, every=0.05)
        assert received is not None
        assert received.split(b"\r\n", 1)[0].split()[1] == b"201", received
        history = (await person.history()).json()["results"]
        assert any(m.get("text") == text for m in history)
