"""A request's head is bounded in size and in time (web/httpprotocol.py): headers without
end grew the server's memory without end, and heads never finished held connections (and
file descriptors) for ever (security QA). Neighbours go on meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from support.blab import TIMEOUT
from support.server import LiveServer
from tertulia.web import httpprotocol

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # (no storage)
Opened = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@asynccontextmanager
async def connection(server: LiveServer) -> AsyncIterator[Opened]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Everything the server writes until it closes: status, headers, body."""
    async with asyncio.timeout(TIMEOUT):
        data = await reader.read(-1)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


async def neighbour_is_served(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        assert (await client.get("/api/chat/bots/")).status_code == 200


HEAD = "GET /api/chat/bots/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.mark.parametrize(
    "flood",
    [
        pytest.param(lambda: "X-A: " + "a" * 8_000, id="a header without end"),
        pytest.param(lambda: "X-B: b\r\n" * 2_000, id="thousands of headers"),
    ],
)
async def test_headers_over_the_bound_are_refused_431(
    server: LiveServer, flood: Callable[[], str]
) -> None:
    """Headers sent past 64 KiB (one line without end, or thousands of small ones) get 431
    with a JSON body and the connection is closed, before the server holds more."""
    async with connection(server) as (reader, writer):
        writer.write(HEAD.encode())
        sent = 0
        while sent < 4 * httpprotocol.MAX_HEAD and not reader.at_eof():
            chunk = flood().encode()
            writer.write(chunk)
            sent += len(chunk)
            try:
                await writer.drain()
            except ConnectionError:
                break  # (closed by the server meanwhile: its answer is read below)
        status, headers, body = await answer(reader)
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert json.loads(body) == {
        "detail": "The request's headers are too large.",
        "code": "too_large",
    }
    await neighbour_is_served(server)


async def test_a_head_never_finished_is_answered_408_in_time(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client sending its headers a little at a time, never the blank line that ends
    them, gets 408 once :data:`HEAD_TIMEOUT` has passed since their first byte; one that
    connects and sends nothing is closed then too."""
    monkeypatch.setattr(httpprotocol, "HEAD_TIMEOUT", 0.5)
    async with connection(server) as (silent, _), connection(server) as (reader, writer):
        writer.write(HEAD.encode())

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):  # (until the server ends it)
                while True:
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()
                    await asyncio.sleep(0.1)  # (the slow client's pace, not a wait)

        dripping = asyncio.create_task(trickle())
        status, _, body = await answer(reader)
        dripping.cancel()
        assert status == 408
        assert json.loads(body)["code"] == "timeout"
        async with asyncio.timeout(TIMEOUT):
            assert await silent.read(-1) == b""  # (closed without an answer)
    await neighbour_is_served(server)


async def test_large_heads_within_the_bound_and_large_bodies_are_served(
    server: LiveServer,
) -> None:
    """A 40 KiB head (long cookies) is still served, and a body of any size is no part
    of the head: a 1 MiB JSON body gets the application's own answer (413), not 431."""
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        cookies = "; ".join(f"c{n}={'x' * 4_000}" for n in range(10))
        assert (await client.get("/api/chat/bots/", headers={"cookie": cookies})).status_code == 200
        big = await client.post(
            "/api/chat/conversations/",
            content=b'{"nickname": "' + b"a" * (1 << 20) + b'"}',
            headers={"content-type": "application/json"},
        )
    assert big.status_code == 413
    assert big.json()["code"] == "too_large"
