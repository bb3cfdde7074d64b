"""Requests still running when a stopping server's graceful time is up (SIGTERM, then
uvicorn's ``timeout_graceful_shutdown``): they are cancelled, and the client must be told
to try again (503 with ``Retry-After``), not that it failed for good (500); what they had
half-stored is removed."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from support.environment import PersonFactory, SettingsFactory
from support.files import stored_files
from support.process import server_process, write_config
from support.server import live_server
from support.waiting import until

pytestmark = pytest.mark.slow


def _parts(received: bytes) -> tuple[bytes, bytes, bytes]:
    """The status code, the headers (lower case) and the body of a raw HTTP answer."""
    status_line, _, rest = received.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    return status_line.split()[1], headers.lower(), body


def _answer(sock: socket.socket) -> bytes:
    received = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


async def test_an_upload_cut_by_a_restart_is_retryable_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    """A file upload still arriving when the graceful time is up answers 503 with
    ``Retry-After`` and a JSON body (before: 500 and a ``CancelledError`` traceback), and
    leaves neither its spool file nor a message."""
    media = tmp_path / "media"
    database = tmp_path / "db.sqlite"
    config = write_config(
        tmp_path / "tertulia.toml",
        {
            "database_url": f"sqlite+aiosqlite:///{database}",
            "media_root": str(media),
            "presence_grace": 0,
            "log_format": "json",
        },
    )
    async with server_process(config, tmp_path, name="stopping") as server:
        person = server.person()
        try:
            assert (await person.create(nickname="dora")).status_code == 201
            session = person.session
        finally:
            await person.close()
        head = (
            f"POST /api/chat/conversations/{person.conversation_id}/messages/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nCookie: sessionid={session}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
        ).encode()
        start = (
            b'--b\r\nContent-Disposition: form-data; name="type"\r\n\r\nA\r\n'
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + b"\x01" * 500
        )
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(head + start)
            await until(lambda: bool(stored_files(media)))  # the server is spooling the file
            # (uvicorn ends by the signal it stopped for: docs/operations.md)
            assert await server.stop(signal.SIGTERM, timeout=30) == -signal.SIGTERM
            received = await asyncio.to_thread(_answer, sock)
    status, headers, body = _parts(received)
    log = server.log.read_text()
    assert status == b"503", (received, log[-3000:])
    assert b"retry-after:" in headers
    assert b"connection: close" in headers
    assert orjson.loads(body)["code"] == "unavailable"
    assert "CancelledError" not in log
    assert "request cancelled by the server's stop" in log
    assert not stored_files(media)
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            kinds = conn.execute(sa.text("SELECT type FROM messages")).scalars().all()
    finally:
        engine.dispose()
    assert "A" not in kinds


async def test_any_request_cut_by_a_stop_is_told_to_try_again(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """Not uploads only: a JSON message whose body is still arriving when the graceful time
    is up (any request not yet answered) gets 503 with ``Retry-After``, and stores nothing."""
    settings = make_settings()
    async with live_server(settings) as server:
        person = people(server)
        assert (await person.create(nickname="ella")).status_code == 201
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            (
                f"POST /api/chat/conversations/{person.conversation_id}/messages/ HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{server.port}\r\nCookie: sessionid={person.session}\r\n"
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                '{"type": "T", "text": "half'
            ).encode()
        )
        await writer.drain()
        # (Read by the server first: a stop closes a connection whose request has not begun,
        # and one with bytes unread is reset. Seen once in a full run, under load.)
        await until(lambda: server.requests == 1)
        # The block ends: the server stops with the request waiting for the rest of its body.
    try:
        received = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status, headers, body = _parts(received)
    assert status == b"503", received
    assert b"retry-after: 5" in headers
    assert b"connection: close" in headers
    assert orjson.loads(body) == {
        "detail": "The server is restarting; send the request again.",
        "code": "unavailable",
        "retry_after": 5,
    }
    async with live_server(settings) as again:
        person.http.base_url = again.base_url + "/api/chat"
        texts = [m.get("text") for m in (await person.history()).json()["results"]]
    assert not any(text and text.startswith("half") for text in texts)
