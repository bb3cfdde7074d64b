"""An upgrade request websockets' parser refuses (a header or request line too long, too many
headers) is answered with its 4xx and closed: it was answered nothing and held open."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

from support.blab import TIMEOUT
from support.server import LiveServer


async def _upgrade(server: LiveServer, *, path: str = "/ws/chat/x/", extra: str = "") -> bytes:
    """Send an upgrade request; everything the server writes until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"{extra}\r\n"
        ).encode()
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            return await reader.read(-1)  # (until the server closes the connection)
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("label", "path", "extra", "status"),
    [
        ("a header line over 8 KiB", "/ws/chat/x/", f"Cookie: a={'x' * 8300}\r\n", b"431"),
        ("200 headers", "/ws/chat/x/", "".join(f"X-H{i}: v\r\n" for i in range(200)), b"431"),
        ("a request line over 8 KiB", "/ws/chat/x/?q=" + "a" * 9000, "", b"414"),
    ],
)
async def test_an_unparsable_upgrade_is_answered_and_closed(
    server: LiveServer, label: str, path: str, extra: str, status: bytes
) -> None:
    """The client gets the 4xx websockets prepared, then the connection closes."""
    answer = await _upgrade(server, path=path, extra=extra)
    assert answer.startswith(b"HTTP/1.1 " + status + b" "), (label, answer[:80])


async def test_a_parsable_refused_upgrade_is_still_403(server: LiveServer) -> None:
    """A request within the parser's limits is refused by the app as before (HTTP 403)."""
    answer = await _upgrade(server, extra=f"Cookie: a={'x' * 8000}\r\n")
    assert answer.startswith(b"HTTP/1.1 403 ")
