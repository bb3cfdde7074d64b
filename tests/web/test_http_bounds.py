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


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(HEAD + "X-Big: " + "a" * 70_000 + "\r\n", id="one header"),
        pytest.param(HEAD + "X-B: b\r\n" * 9_000, id="many headers"),
        pytest.param(f"GET /api/chat/bots/?q={'a' * 70_000} HTTP/1.1\r\nHost: x\r\n", id="url"),
    ],
)
async def test_a_head_over_the_bound_in_one_write_is_refused_431(
    server: LiveServer, head: str
) -> None:
    """(Docs QA 1: a 70 KB or 100 KB head sent in one write was served, 200; only one that
    took several reads was counted; a 70 KB request line got uvicorn's plain-text 400.) The
    head is counted as it is parsed, whatever the reads it came in."""
    async with connection(server) as (reader, writer):
        writer.write((head + "\r\n").encode())
        status, headers, body = await answer(reader)
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["code"] == "too_large"
    await neighbour_is_served(server)


async def test_bytes_after_a_body_do_not_lose_its_answer(server: LiveServer) -> None:
    """(REST QA F2: one byte past a POST's Content-Length, in the same write, and the
    request was carried out, the conversation made, but its answer was lost: uvicorn wrote
    its 400 for the byte, and closed, while the request was being answered.) The request's
    own answer comes first; then the 400 for what followed it, and the end."""
    body = b'{"nickname": "alice", "bots": []}'
    request = (
        b"POST /api/chat/conversations/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"content-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    async with connection(server) as (reader, writer):
        writer.write(request + b"X")
        async with asyncio.timeout(TIMEOUT):
            data = await reader.read(-1)
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 201 "), data
    length = int(
        next(
            v
            for k, v in (line.split(b": ", 1) for line in first.split(b"\r\n")[1:])
            if k.lower() == b"content-length"
        )
    )
    created, after = json.loads(rest[:length]), rest[length:]
    assert created["participants"][0]["name"] == "alice"
    assert after.startswith(b"HTTP/1.1 400 "), after
    await neighbour_is_served(server)
