"""Multipart uploads: a client that stops sending in the middle of a file, without
closing its connection (a phone losing its network, a NAT dropping the flow), must not pin a
spool file and a request on the server for ever."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
import pytest

from support.blab import Person
from support.bots import watch_logs
from support.drip import drip
from support.files import stored_files
from support.server import LiveServer, live_server
from support.waiting import until
from tertulia.settings import Settings
from tertulia.web import bodies

# the conftest's fixture types (not imported: ``conftest`` is ambiguous across dirs)
PersonFactory = Callable[[LiveServer], Person]
SettingsFactory = Callable[..., Settings]


@pytest.fixture
async def quick(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LiveServer]:
    """A server that gives up on an upload after 0.3 s without a byte."""
    monkeypatch.setattr(bodies, "IDLE_SECONDS", 0.3)
    async with live_server(make_settings()) as running:
        yield running


def _files(server: LiveServer) -> list[Path]:
    return stored_files(Path(server.settings.media_root))


async def test_a_stalled_upload_is_given_up_and_leaves_no_file(
    quick: LiveServer, people: PersonFactory
) -> None:
    """Half a file, then silence on an open connection: once ``IDLE_SECONDS`` pass with
    nothing received the server answers 400 with ``Connection: close`` and deletes the
    spool file. (Before: the request waited for ever and its spool file stayed.)"""
    person = people(quick)
    assert (await person.create(nickname="dora")).status_code == 201
    start = (
        b'--b\r\nContent-Disposition: form-data; name="type"\r\n\r\nA\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + b"\x01" * 500
    )
    head = (
        f"POST /api/chat/conversations/{person.conversation_id}/messages/ HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{quick.port}\r\nCookie: sessionid={person.session}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", quick.port), timeout=10) as sock:
        sock.sendall(head + start)
        await until(lambda: bool(_files(quick)))  # the spool file exists: the server reads
        await until(lambda: not _files(quick), timeout=5)

        def answer() -> bytes:
            received = b""
            with contextlib.suppress(OSError):
                while chunk := sock.recv(65536):
                    received += chunk
            return received

        received = await asyncio.to_thread(answer)
    status_line, _, rest = received.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert status_line.split()[1] == b"400"
    assert b"connection: close" in headers.lower()
    assert orjson.loads(body)["detail"].startswith("The upload stalled")


async def test_an_upload_dripping_in_is_cut_off_and_leaves_no_file(
    make_settings: SettingsFactory, people: PersonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose bytes come a few at a time, never idle long enough to count as stalled,
    but slower than the pace asked for (here 100 bytes a second after 0.5 s): 400 with
    ``Connection: close`` once it falls behind, and its spool file deleted. Before, it held
    its request and its spool file for as long as the client kept dripping. (The answer is
    lost when a byte comes as the server closes: support/drip.py. The log tells the cut.)"""
    monkeypatch.setattr(bodies, "GRACE_SECONDS", 0.5)
    monkeypatch.setattr(bodies, "MIN_RATE", 100)
    async with live_server(make_settings()) as server:
        person = people(server)
        assert (await person.create(nickname="dora")).status_code == 201
        start = (
            b'--b\r\nContent-Disposition: form-data; name="type"\r\n\r\nA\r\n'
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n"
        )
        head = (
            f"POST /api/chat/conversations/{person.conversation_id}/messages/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nCookie: sessionid={person.session}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
        ).encode()
        too_slow = "The upload was too slow: its body came slower than 100 bytes a second."
        with watch_logs() as logs:
            received = await drip(server.port, head + start, itertools.repeat(b"\x01"), every=0.05)
            refused = await logs.wait_for(lambda e: e["event"] == "upload refused")
        assert (refused["status"], refused["detail"]) == (400, too_slow)
        assert not _files(server)
        if received is not None:
            status_line, _, rest = received.partition(b"\r\n")
            headers, _, body = rest.partition(b"\r\n\r\n")
            assert status_line.split()[1] == b"400"
            assert b"connection: close" in headers.lower()
            assert orjson.loads(body)["detail"] == too_slow
