"""uvicorn's WebSocket protocol, made to let go of connections whose peer stopped reading.

uvicorn (``websockets-sansio``) ends a connection with ``transport.close()``, which waits
until the write buffer drains; a peer that does not read never lets it drain, so the
connection (its file descriptor, its buffers, this protocol object) would stay as long as
the peer does. That happens to a socket dropped as a slow reader (its close frame cannot
even be written) and to one whose keepalive ping went unanswered. Here, once the server is
done with a connection (the ASGI app returned, or the keepalive gave up), the connection is
aborted if it is still not gone :data:`ABORT_AFTER` seconds later.

A closing handshake is never cut short: uvicorn itself waits ``close_timeout`` (10 s) for
the peer's close frame before it closes the transport, and a transport with nothing left to
write closes at once; :data:`ABORT_AFTER` is longer than that wait. What an abort can cut is
only data a peer did not read within those seconds after the server gave up on it.

An upgrade request that websockets' HTTP parser refuses (a header line over 8 KiB, more
than 128 headers, a request line over 8 KiB) is answered and closed here: websockets
prepares its 4xx answer (431, 414) and logs it as sent, but uvicorn only writes what
websockets has to send after a parsed request, so the answer was never written and the
connection, before any app or rate limit saw it, was held for as long as the peer liked.

It also marks a connection that the server's own shutdown closes (``shutdown``), in its
ASGI scope under :data:`SERVER_STOPPING`: such a close is the server going away, not the
participant leaving (see :meth:`tertulia.chats.Chat.disconnect`).

A denial response (HTTP 429 to a throttled handshake) counts as the handshake's answer
(uvicorn logged each as an error, "ASGI callable returned without completing handshake").

This relies on uvicorn's method and attribute names (``run_asgi``, ``send``,
``handshake_complete``, ``close_sent``, ``keepalive_timeout``,
``connection_lost``, ``disconnected``, ``shutdown``, ``scope``, ``data_received``, ``conn``,
``handshake_initiated``), which is why uvicorn is pinned; ``tests/web/test_ws_abort.py``,
``tests/web/test_ws_restart.py`` and ``tests/web/test_ws_oversized_upgrade.py`` fail if the
abort, the mark or the answer stop working.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = structlog.get_logger(__name__)

#: Seconds between the server giving up on a connection and aborting it if still open:
#: uvicorn's ``close_timeout`` (10 s) and a margin. Read when the abort is scheduled.
ABORT_AFTER = 15.0

#: The ASGI scope's key, set to True on a connection closed by the server's shutdown.
SERVER_STOPPING = "tertulia.server_stopping"


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """``WebSocketsSansIOProtocol`` that aborts a connection stuck in closing.

    Pass the class as uvicorn's ``ws`` (``tertulia serve`` and the tests' live server do).
    """

    _abort_timer: asyncio.TimerHandle | None = None

    async def run_asgi(self) -> None:
        await super().run_asgi()
        # The app is done with the connection: uvicorn has closed the transport or will
        # after its close_timeout; either way the connection has no reason to last.
        self._abort_later()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if (
            message["type"] == "websocket.http.response.body"
            and not message.get("more_body", False)
            and self.close_sent
        ):
            # A denial response (a throttled handshake's 429) is a complete answer to the
            # handshake; uvicorn does not count it as one, and logged each as the error
            # "ASGI callable returned without completing handshake".
            self.handshake_complete = True

    def shutdown(self) -> None:
        scope = getattr(self, "scope", None)  # (none before the handshake's request)
        if scope is not None:
            scope[SERVER_STOPPING] = True
        super().shutdown()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            self._refuse_unparsed()

    def _refuse_unparsed(self) -> None:
        """The request could not be parsed: write websockets' answer to it (a 4xx, or
        nothing for a request that is not HTTP) and close the connection."""
        if self.transport.is_closing():
            return
        self.transport.write(b"".join(self.conn.data_to_send()))
        # (as uvicorn marks a refused handshake: no 500 at shutdown, nothing more sent)
        self.handshake_complete = True
        self.close_sent = True
        self.transport.close()
        self._abort_later()  # (a peer that does not read the answer does not keep it open)

    def keepalive_timeout(self) -> None:
        # The peer did not answer a ping (uvicorn closes the transport): it may not be
        # reading either, and the app, waiting for frames, would never return.
        super().keepalive_timeout()
        self._abort_later()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        super().connection_lost(exc)

    def _abort_later(self) -> None:
        if self._abort_timer is None and not self.disconnected:
            self._abort_timer = self.loop.call_later(ABORT_AFTER, self._abort)

    def _abort(self) -> None:
        self._abort_timer = None
        if self.disconnected:
            return
        log.info(
            "websocket connection aborted: its peer reads nothing",
            client=self.client,
            unsent=self.transport.get_write_buffer_size(),
        )
        self.transport.abort()
