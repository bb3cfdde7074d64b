"""Request bodies as BLAB's API takes them: JSON, and form or multipart where allowed.

Every body read here is capped at :data:`MAX_BODY` while it streams (by ``Content-Length``
before a byte is read, and by counting otherwise), whatever its type: these are small
objects, and file uploads take another path (:mod:`tertulia.web.uploads`). Form and
multipart bodies are parsed only once they have been read whole within that cap.

A client that goes away before its body ends, or stops sending without closing its
connection (no byte for :data:`IDLE_SECONDS`), gets 400 with ``Connection: close`` (to a
client gone, nobody): bad input like any other, not a server failure, and nothing waits
for it until the server stops. So does one whose body drips in too slowly: a body may take
:data:`GRACE_SECONDS`, and one second more for each :data:`MIN_RATE` bytes that arrived
(Apache's ``mod_reqtimeout`` rule, ``body=20,MinRate=500``). Before, a byte every few
seconds held a request (and a connection) for as long as the client liked: a JSON body's
64 KiB, a byte every 10 s, for a week (chaos QA). Only the time spent waiting for the
client counts: while the server is busy with what it read (an upload's writes to disk),
the client's bytes wait in the buffers, and are not late.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson
import structlog
from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from tertulia.errors import IncompleteBody, PayloadTooLarge, UnsupportedMediaType, ValidationFailed

log = structlog.get_logger(__name__)

MAX_BODY = 64 * 1024  # JSON and form bodies; file uploads take another path
IDLE_SECONDS = 60.0  # a body (of any kind) that sends nothing for this long is given up
GRACE_SECONDS = 20.0  # a body may take this long, ...
MIN_RATE = 500  # ... and a second more per this many bytes that arrived


class BodyStalled(Exception):
    """Nothing of the body arrived for :data:`IDLE_SECONDS`."""

    reason = "stalled"  # (for the log)

    @property
    def summary(self) -> str:
        """What happened, after "The request" or "The upload"."""
        return f"stalled: nothing arrived for {IDLE_SECONDS:g} seconds."


class BodyTooSlow(BodyStalled):
    """The body arrived slower than :data:`MIN_RATE` bytes a second, after the first
    :data:`GRACE_SECONDS`."""

    reason = "too slow"

    @property
    def summary(self) -> str:
        return f"was too slow: its body came slower than {MIN_RATE} bytes a second."


class BodyReader:
    """A request body read message by message, knowing when it has ended (unlike
    ``request.stream()``, whose end cannot be told apart from a refusal in between) and
    giving up on a client that stops sending."""

    def __init__(self, request: Request) -> None:
        self._receive = request.receive
        self.ended = False
        self.read = 0
        self.waited = 0.0  # seconds spent waiting for the client's next bytes

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive.

        Raises:
            ClientDisconnect: the client went away before the end.
            BodyStalled: nothing arrived for :data:`IDLE_SECONDS`.
            BodyTooSlow: the body came too slowly (module).
        """
        clock = asyncio.get_running_loop().time
        while not self.ended:
            allowed = GRACE_SECONDS + self.read / MIN_RATE - self.waited
            if allowed <= 0:
                raise BodyTooSlow()
            started = clock()
            try:
                async with asyncio.timeout(min(IDLE_SECONDS, allowed)):
                    message = await self._receive()
            except TimeoutError:
                raise (BodyStalled() if allowed >= IDLE_SECONDS else BodyTooSlow()) from None
            finally:
                self.waited += clock() - started
            if message["type"] != "http.request":
                raise ClientDisconnect()
            self.ended = not message.get("more_body", False)
            chunk: bytes = message.get("body", b"")
            self.read += len(chunk)
            if chunk:
                yield chunk


async def read_object(request: Request, *, form: bool = True) -> dict[str, Any]:
    """The request's fields as a dict.

    Args:
        form: whether ``application/x-www-form-urlencoded`` is accepted (multipart always is).

    Raises:
        PayloadTooLarge: a body over :data:`MAX_BODY` bytes.
        ValidationFailed: malformed JSON, JSON that is not an object, or a malformed form.
        UnsupportedMediaType: another content type (with a body).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data" or (
        form and content_type == "application/x-www-form-urlencoded"
    ):
        return await _read_form(request, multipart=content_type == "multipart/form-data")
    body = await _read_capped(request)
    if not body.strip() and content_type in ("", "application/json"):
        return {}
    if content_type not in ("application/json", "") and not content_type.endswith("+json"):
        raise UnsupportedMediaType(f'Unsupported media type "{content_type}" in request.')
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(detail=f"JSON parse error - {exc}") from None
    if not isinstance(value, dict):
        kind = {list: "list", str: "str", int: "int", float: "float", bool: "bool"}.get(
            type(value), type(value).__name__
        )
        raise ValidationFailed(
            {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]}
        )
    return value


async def _read_form(request: Request, *, multipart: bool) -> dict[str, Any]:
    """A form or multipart body, read within the cap, then parsed (a repeated key keeps its
    last value; a file part's value is not a string, so field checks refuse it)."""
    body = await _read_capped(request)

    async def whole() -> AsyncGenerator[bytes, None]:
        yield body
        yield b""

    parser: FormParser | MultiPartParser
    if multipart:
        parser = MultiPartParser(request.headers, whole(), max_part_size=MAX_BODY)
    else:
        parser = FormParser(request.headers, whole())
    try:
        data: FormData = await parser.parse()
    except MultiPartException as exc:
        raise ValidationFailed(detail=exc.message) from None
    try:
        return {key: data.getlist(key)[-1] for key in data}
    finally:
        for value in data.values():
            if isinstance(value, UploadFile):
                await value.close()


async def _read_capped(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise PayloadTooLarge(f"MAX = {MAX_BODY}")
    chunks = []
    size = 0
    try:
        async for chunk in BodyReader(request).chunks():
            size += len(chunk)
            if size > MAX_BODY:
                raise PayloadTooLarge(f"MAX = {MAX_BODY}")
            chunks.append(chunk)
    except ClientDisconnect:
        log.info("request body cut short", path=request.url.path, reason="client gone")
        raise IncompleteBody("The request was interrupted: its body ended early.") from None
    except BodyStalled as exc:
        log.info("request body cut short", path=request.url.path, reason=exc.reason)
        raise IncompleteBody(f"The request {exc.summary}") from None
    return b"".join(chunks)
