"""A connection the server gave up on goes, even when its peer reads nothing: uvicorn's
close waits for the write buffer to drain, which such a peer never allows, so
web/wsprotocol.py aborts it a while later (its file descriptor and buffers are freed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from support.blab import Frame, Person, Socket
from support.rest import not_reading, room_of_two
from support.server import LiveServer, live_server
from support.waiting import until
from tertulia.settings import Settings
from tertulia.web import ws, wsprotocol
from tertulia.web.wsprotocol import WebSocketProtocol

PersonFactory = Callable[[LiveServer], Person]
SettingsFactory = Callable[..., Settings]
BIG = [f"{j} " + "x" * 990 for j in range(100)]  # options: a 100 KB frame, to fill buffers


@pytest.fixture
def protocols(monkeypatch: pytest.MonkeyPatch) -> list[WebSocketProtocol]:
    """The server's WebSocket connections, as they are made; aborts come quickly."""
    monkeypatch.setattr(wsprotocol, "ABORT_AFTER", 0.5)
    monkeypatch.setattr(ws, "CLOSE_TIMEOUT", 0.5)
    made: list[WebSocketProtocol] = []
    connection_made = WebSocketProtocol.connection_made

    def record(self: WebSocketProtocol, transport: Any) -> None:
        made.append(self)
        connection_made(self, transport)

    monkeypatch.setattr(WebSocketProtocol, "connection_made", record)
    return made


@asynccontextmanager
async def _not_reading(
    server: LiveServer, person: Person, protocols: list[WebSocketProtocol]
) -> AsyncIterator[WebSocketProtocol]:
    """A socket of ``person`` that reads nothing (:func:`support.rest.not_reading`); yields
    the server's side of it."""
    async with not_reading(server, person) as lazy:
        port = lazy.transport.get_extra_info("sockname")[1]
        yield next(p for p in protocols if p.client and p.client[1] == port)


async def _fill(watcher: Socket, done: Callable[[], bool]) -> None:
    """Send big messages until ``done()``."""
    for i in range(200):
        local_id = await watcher.say(f"{i}", options=BIG)
        await watcher.message(local_id=local_id)
        if done():
            return
    raise AssertionError("never done")


async def test_a_slow_reader_dropped_for_overflow_is_disconnected(
    make_settings: SettingsFactory,
    people: PersonFactory,
    protocols: list[WebSocketProtocol],
) -> None:
    """A socket dropped for not reading cannot even take its close frame; its connection is
    aborted shortly after (it stayed open as long as the peer did)."""
    settings = make_settings(ws_send_queue=10, ws_max_message=256 * 1024)
    async with live_server(settings) as server:
        alice, watcher = await room_of_two(server, people)
        async with _not_reading(server, alice, protocols) as connection:

            def left(frame: Frame) -> bool:
                message = frame.get("message", {})
                return bool(
                    message.get("event") == "participant-left"
                    and message["additional_metadata"]["participant_id"] == alice.participant_id
                )

            await _fill(watcher, lambda: any(left(f) for f in watcher.frames))
            await until(lambda: connection.disconnected)


async def test_a_peer_that_misses_its_keepalive_and_reads_nothing_is_disconnected(
    make_settings: SettingsFactory,
    people: PersonFactory,
    protocols: list[WebSocketProtocol],
) -> None:
    """A socket whose pings go unanswered while its buffers are full (no overflow: the room
    is quiet) is aborted after uvicorn's keepalive gives up; the app, waiting for frames,
    would never have returned."""
    async with live_server(make_settings(ws_max_message=256 * 1024)) as server:
        alice, watcher = await room_of_two(server, people)
        async with _not_reading(server, alice, protocols) as connection:
            await _fill(watcher, lambda: not connection.writable.is_set())
            connection.keepalive_timeout()  # as uvicorn's pong timer does
            await until(lambda: connection.disconnected)
