"""uvicorn's HTTP protocol (httptools), with bounds on a request's head.

uvicorn's httptools protocol takes a request line and headers of any size and for any
time: httptools gathers a header's name and value in memory until it ends, and the
connection waits for the blank line that ends the head as long as the client likes. So
one client could grow the server's memory without end (two connections sending header
lines with no end took it from 119 MB to 1.6 GB), or hold thousands of connections with a
head never finished (slowloris), until the process ran out of file descriptors and turned
everyone away (security QA). The WebSocket upgrade was already bounded (websockets: 8 KiB
a line, 128 headers; web/wsprotocol.py), plain HTTP requests were not.

Here a request's head (its request line and headers, until the blank line) must be at
most :data:`MAX_HEAD` bytes, answered 431 otherwise, and must arrive within
:data:`HEAD_TIMEOUT` seconds of the connection (its first request) or of the first
piece of a later request that left its head unfinished, answered 408 otherwise; a
connection that sends nothing in that time is closed.
The head is counted as httptools parses it (a head that arrives whole in one read as well
as one that takes many) and, while it is unfinished, by the bytes read.
Either answer is JSON (``{"detail", "code"}``) and ends the connection (after
:data:`LINGER` seconds, what the client still sends dropped); the refusals are logged as
warnings, at most one every few seconds (with ``left_out``). What a client
takes *between* requests is uvicorn's keep-alive timeout (5 s); a body's pace is the
application's (uploads: web/uploads.py).

What uvicorn's parser refuses after a request that is still being answered (bytes past a
body's ``Content-Length``, pipelined) is answered (uvicorn's 400) after that request's own
answer, not instead of it: the request was carried out.

This relies on uvicorn's ``HttpToolsProtocol`` method names (``data_received``,
``on_message_begin``, ``on_headers_complete``, ``connection_lost``) and attributes
(``transport``, ``cycle``, ``client``), and on its parser callbacks ``on_url``,
``on_header`` and ``send_400_response``, which is why uvicorn is pinned;
``tests/web/test_http_bounds.py`` fails if the bounds stop working.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tertulia.logs import OUTAGE_WARNING_EVERY, Sampled

log = structlog.get_logger(__name__)

MAX_HEAD = 64 * 1024
"""Bytes a request line and its headers may take in all (a browser's are a few KiB; a
long cookie or a reverse proxy's additions leave a wide margin)."""

HEAD_TIMEOUT = 20.0
"""Seconds a request's head may take to arrive, from its first byte (nginx's
``client_header_timeout`` is 60 s; a proxy in front sends a head at once)."""

LINGER = 2.0
"""Seconds a refused connection is kept after its answer, what the client still sends
read and dropped: closed at once with unread data, the connection is reset, and the client
may never read the answer."""

_REFUSED = {
    408: (b"408 Request Timeout", "The request's headers took too long.", "timeout"),
    431: (
        b"431 Request Header Fields Too Large",
        "The request's headers are too large.",
        "too_large",
    ),
}
_refusals = Sampled(every=OUTAGE_WARNING_EVERY)


class _HeadTooLarge(Exception):
    """Raised in a parser callback to stop a head past :data:`MAX_HEAD`."""


class HttpProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` with a request's head bounded in size and in time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bytes of the head received so far (None: not within a head), and its deadline.
        self._head: int | None = 0
        self._head_timer: asyncio.TimerHandle | None = None
        # Bytes of the head parsed so far (its request line and headers), whatever the
        # reads they came in: a head that arrives whole in one read is counted here.
        self._parsed = 0
        self._too_large = False
        self._refused = False
        # A refusal (status, uvicorn's words) of what followed a request still being
        # answered: sent once that answer is (its request was carried out).
        self._deferred: tuple[int, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # (answered: what still comes is dropped until the connection closes)
        super().data_received(data)
        if self._head is None or self._refused or self.transport.is_closing():
            return  # (no head under way, or answered and closing, or now a WebSocket's)
        # Still within a head after this chunk: the chunk was the head's (or, for a request
        # pipelined behind another's body, partly that body's: counted too, to be safe).
        self._head += len(data)
        if self._head > MAX_HEAD:
            self._refuse(431)
        else:
            self._start_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head = 0  # (its timer starts only if the chunk that began it leaves it unfinished)
        self._parsed = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # (": " and the line's end)
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        """Count ``size`` more bytes of the head; past :data:`MAX_HEAD`, stop the parser
        (its error comes back as :meth:`send_400_response`, answered 431 here)."""
        self._parsed += size
        if self._parsed > MAX_HEAD:
            self._too_large = True
            raise _HeadTooLarge

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what its parser refused: a head past the bound is answered
        431; and what follows a request still being answered waits for that answer (it
        was written at once, and the connection closed, so a request carried out lost its
        answer: one byte too many after a POST's body was enough)."""
        status = 431 if self._too_large else 400
        self._refused = True  # (nothing more is read from this connection)
        if self.cycle is not None and not self.cycle.response_complete:
            self._deferred = (status, msg)
            return
        self._answer(status, msg)

    def _answer(self, status: int, msg: str) -> None:
        if status == 431:
            self._refuse(431)
        else:
            super().send_400_response(msg)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._deferred is None or self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            status, msg = self._deferred  # (else a request pipelined before it is next)
            self._deferred = None
            self._answer(status, msg)

    def on_headers_complete(self) -> None:
        self._head = None
        self._stop_head_timer()
        super().on_headers_complete()

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # (a request pipelined behind one still being answered: its turn comes later)
            self._start_head_timer()
            return
        if self._head:
            self._refuse(408)
        else:
            self.transport.close()  # (nothing sent at all: nothing to answer)

    def _refuse(self, status: int) -> None:
        self._stop_head_timer()
        line, detail, code = _REFUSED[status]
        body = orjson.dumps({"detail": detail, "code": code})
        client = f"{self.client[0]}:{self.client[1]}" if self.client else None
        _refusals.warning(log, f"request refused: {detail}", status=status, client=client)
        self.transport.write(
            b"HTTP/1.1 "
            + line
            + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\nconnection: close\r\n\r\n"
            + body
        )
        self._refused = True
        self._head = None
        # The answer, then the end of what the server sends; the connection closes once
        # the client has had time to read it (or closes its side first).
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.close)
