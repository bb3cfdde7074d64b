"""A small keep-alive HTTP/1.1 client for the benchmark.

httpx costs a few hundred microseconds of CPU per request, which on a small machine is the
same order as the server under test, so the REST scenarios would measure the client. This
client writes requests by hand and parses responses with `httptools` (uvicorn's parser): a
pool of persistent connections, JSON bodies, nothing else.

Cookies are never stored: callers pass the `sessionid` they want and read `Set-Cookie`
themselves, so every request has exactly the identity the scenario chose.

A connection the server closed while idle (keep-alive timeout) fails on reuse before any byte
of the response arrives; such a request is retried once on a fresh connection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any

import httptools
import orjson

_READ_SIZE = 65536


class HttpError(Exception):
    """A connection-level failure (reset, closed, unparsable response)."""


class _StaleConnectionError(HttpError):
    """The server closed a reused connection before answering: safe to retry once."""


@dataclass(slots=True)
class Response:
    """One HTTP response: status, lower-cased header pairs and the body."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header_values(self, name: str) -> list[str]:
        """Returns every value of header `name` (lower case)."""
        return [value for key, value in self.headers if key == name]

    def cookie(self, name: str) -> str | None:
        """Returns the value of cookie `name` from the `Set-Cookie` headers, if any."""
        for raw in self.header_values("set-cookie"):
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(raw)
            except CookieError:
                continue
            if name in jar:
                return jar[name].value
        return None

    def json(self) -> Any:
        """Returns the body decoded as JSON."""
        return orjson.loads(self.body)


class _Sink:
    """httptools callbacks collecting one response."""

    __slots__ = ("body", "complete", "headers", "started")

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.complete = False
        self.started = False

    def on_message_begin(self) -> None:
        self.started = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class _Connection:
    """One persistent TCP connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = False

    async def exchange(self, raw: bytes) -> tuple[Response, bool]:
        """Sends one request; returns the response and whether the connection stays open."""
        reused, self.used = self.used, True
        self.writer.write(raw)
        sink = _Sink()
        parser = httptools.HttpResponseParser(sink)
        while not sink.complete:
            try:
                data = await self.reader.read(_READ_SIZE)
            except ConnectionError as exc:
                raise self._closed(reused, sink) from exc
            if not data:
                raise self._closed(reused, sink)
            try:
                parser.feed_data(data)
            except httptools.HttpParserError as exc:
                raise HttpError(f"unparsable response: {exc}") from exc
        response = Response(parser.get_status_code(), sink.headers, b"".join(sink.body))
        return response, parser.should_keep_alive()

    @staticmethod
    def _closed(reused: bool, sink: _Sink) -> HttpError:
        if reused and not sink.started:
            return _StaleConnectionError("connection closed by the server while idle")
        return HttpError("connection closed before the response was complete")

    def close(self) -> None:
        self.writer.close()


class HttpClient:
    """A pool of keep-alive connections to one `host:port`.

    Args:
        host: server address (the benchmark only uses 127.0.0.1).
        port: server port.
        max_connections: most requests in flight at once.
        timeout: seconds allowed for one request, connecting included.
    """

    def __init__(
        self, host: str, port: int, *, max_connections: int = 64, timeout: float = 10.0
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._host_header = f"{host}:{port}"

    async def request(
        self, method: str, path: str, *, json: Any = None, cookie: str | None = None
    ) -> Response:
        """Sends one request and returns the response (any status).

        Args:
            method: HTTP method.
            path: path and query, starting with `/`.
            json: a body to send as JSON, or None for no body.
            cookie: the `sessionid` to send, or None for none.

        Raises:
            HttpError: on a connection failure or an unparsable response.
            TimeoutError: when the request takes longer than the client's timeout.
        """
        raw = self._encode(method, path, json, cookie)
        async with self._slots:
            async with asyncio.timeout(self.timeout):  # not counting the wait for a slot
                try:
                    return await self._send(raw)
                except _StaleConnectionError:
                    return await self._send(raw)

    async def _send(self, raw: bytes) -> Response:
        conn = self._idle.pop() if self._idle else await self._connect()
        try:
            response, keep = await conn.exchange(raw)
        except BaseException:
            conn.close()
            raise
        if keep:
            self._idle.append(conn)
        else:
            conn.close()
        return response

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return _Connection(reader, writer)

    def _encode(self, method: str, path: str, json: Any, cookie: str | None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host_header}", "Accept: */*"]
        body = b""
        if json is not None:
            body = orjson.dumps(json)
            lines.append("Content-Type: application/json")
        if body or method in {"POST", "PUT", "PATCH"}:
            lines.append(f"Content-Length: {len(body)}")
        if cookie is not None:
            lines.append(f"Cookie: sessionid={cookie}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def aclose(self) -> None:
        """Closes every idle connection."""
        while self._idle:
            self._idle.pop().close()
