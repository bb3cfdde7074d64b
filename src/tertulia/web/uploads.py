"""Streaming ``multipart/form-data`` uploads for posting a message (PROTOCOL 3.10, 5.8).

The body is never held in memory: it is read chunk by chunk from ``request.stream()``, fed
to python-multipart's streaming parser, and the file part is written to a spool file of the
:class:`~tertulia.files.FileStore` (at most one chunk plus a 256 KB write buffer in memory).

Refusing as early as possible:

1. ``Content-Length`` over the largest limit plus :data:`ALLOWANCE` → 413 without a byte
   of the file: at the file part's headers, with the type's own limit when the ``type``
   field came before (the BLAB web client's order), else with the largest; or, when the
   file part has not begun within :data:`ALLOWANCE` bytes or :data:`PEEK_SECONDS`, with the
   largest.
2. When the ``type`` field comes before the file part (the BLAB web client's order), the
   type's own limit applies from the file part's first byte, and a ``Content-Length`` over
   that limit plus :data:`ALLOWANCE` is refused right at the part's headers; a file on a
   type that takes none (``T``) is refused there too.
3. Otherwise the file is capped at the largest limit while streaming and checked against
   its type's limit once the body has been read.

A file over a limit is refused ``413 {"detail": "MAX = <limit>"}`` (the type's limit when
the type is known, else the largest). A file that would leave the media file system with
less free space than ``media_min_free`` is refused ``507 no_space``
(:class:`~tertulia.errors.InsufficientStorage`): when its spool file would be made,
counting the announced ``Content-Length``, and again before each buffer is written.

A refusal before the end of the body first reads and drops what
is left of it, when that is at most :data:`DRAIN_AT_MOST` and arrives within
:data:`DRAIN_SECONDS`: a connection closed with body bytes unread is reset by the kernel,
and the client, still sending, may never read the answer. A longer or slower rest is not
waited for: the refusal is an :class:`UploadError` with ``complete=False``, and the caller
closes the connection (``Connection: close``) so the client stops sending. Whatever was
spooled is deleted on every error.

A client that stops sending without closing its connection (a phone losing its network, a
NAT dropping the flow: no FIN ever arrives) is given up after
:data:`tertulia.web.bodies.IDLE_SECONDS` without a byte of the body: 400 with
``Connection: close``, and its spool file deleted. Without this,
the request and a partial spool file would stay until the server stops. So is one whose
body comes too slowly (:mod:`tertulia.web.bodies`: the time spent writing to disk does not
count against the client).
"""

from __future__ import annotations

import asyncio
import email.message
import email.utils
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import anyio.to_thread
import structlog
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from tertulia.chats import Chat
from tertulia.domain.inputs import parse_new_message
from tertulia.domain.model import FileInfo
from tertulia.errors import (
    InsufficientStorage,
    PayloadTooLarge,
    TertuliaError,
    UnsupportedMediaType,
    ValidationFailed,
)
from tertulia.files import (
    FILE_TYPE_CODES,
    ContentMismatch,
    FileStore,
    SpoolFile,
    display_name,
    file_store,
    largest_limit,
    limit_for,
    stored_type,
)
from tertulia.web.bodies import BodyReader, BodyStalled
from tertulia.web.deps import Membership, services
from tertulia.web.responses import JSONBody

log = structlog.get_logger(__name__)

ALLOWANCE = 64 * 1024  # boundaries, part headers and the text fields, on top of the file
MAX_FIELDS_SIZE = 32 * 1024  # all text fields together (text is at most 4000 characters)
MAX_PARTS = 32
FILE_FIELDS = ("file", "blob")  # ``file`` as BLAB; ``blob`` also taken for voice recordings
FLUSH_AT = 256 * 1024
DRAIN_AT_MOST = 1024 * 1024  # body bytes read and dropped after an early refusal...
DRAIN_SECONDS = 5.0  # ...and how long they may take (a stalled client is not waited for)
PEEK_SECONDS = 1.0  # an oversized body's wait for its type (see 1. above)
EMPTY_FILE = "The submitted file is empty."
NOT_A_FILE = "The submitted data was not a file. Check the encoding type on the form."


class UploadError(Exception):
    """An upload refused; nothing of it is kept.

    Attributes:
        error: the error to answer with.
        complete: whether the whole body had been read (if not, close the connection).
        bytes_read: body bytes read before the refusal.
    """

    def __init__(self, error: TertuliaError, *, complete: bool, bytes_read: int) -> None:
        super().__init__(error.detail)
        self.error = error
        self.complete = complete
        self.bytes_read = bytes_read


class _Refuse(Exception):
    """Raised inside the parser's callbacks to stop reading."""

    def __init__(self, error: TertuliaError) -> None:
        super().__init__(error.detail)
        self.error = error


@dataclass
class ReceivedFile:
    """The file part, complete and on disk (the spool file is flushed and closed).

    Attributes:
        spool: where the bytes are; the caller keeps or discards it.
        filename: the client's file name, as sent (not safe for anything but display).
        size: bytes.
    """

    spool: SpoolFile
    filename: str | None
    size: int


@dataclass
class Upload:
    """A multipart body: its text fields (a repeated name keeps its last value) and file."""

    fields: dict[str, str]
    file: ReceivedFile | None = None


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"MAX = {limit}")


def _decode(raw: bytes) -> str:
    # parse_options_header gives latin-1 bytes back; browsers send UTF-8 names.
    return raw.decode("utf-8", errors="replace")


_FORM_ESCAPES = ((b"%22", b'"'), (b"%0D", b"\r"), (b"%0A", b"\n"))
"""The HTML standard's escapes in a multipart file name, and what they stand for."""


def _file_name(disposition: bytes, options: dict[bytes, bytes]) -> str | None:
    """A part's file name, None when it names none (a text field): ``filename*`` when it
    has one (RFC 2231, ``charset'language'percent-encoded``, as some HTTP libraries send a
    name that is not ASCII, and as Django, hence BLAB, reads it; it wins over ``filename``,
    RFC 6266), else ``filename`` (python-multipart's parser knows only this one)."""
    if b"filename*" in disposition.lower():
        header = email.message.Message()
        header["Content-Disposition"] = disposition.decode("latin-1")
        # (an RFC 2231 value comes as a (charset, language, text) tuple, whatever typeshed says)
        params = cast(
            "list[tuple[str, object]]",
            header.get_params(header="content-disposition", failobj=[]),
        )
        for key, value in params:
            if key.lower() == "filename" and isinstance(value, tuple):
                return email.utils.collapse_rfc2231_value(
                    value, errors="replace", fallback_charset="utf-8"
                )
    raw = options.get(b"filename")
    if raw is None:
        return None
    # The HTML standard's escapes in a multipart name, which browsers (and httpx) write:
    # '"' as %22, CR and LF as %0D and %0A (those two then dropped from the name shown).
    for escaped, character in _FORM_ESCAPES:
        raw = raw.replace(escaped, character)
    return _decode(raw)


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    is_file: bool = False
    empty_input: bool = False  # filename="": a file input left empty (no file)
    data: bytearray = field(default_factory=bytearray)
    header_name: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    disposition: bytes = b""


class _Reader:
    """The parser's callbacks: fields in memory (capped), the file into ``pending``."""

    def __init__(self, limits: Mapping[str, int], declared: int | None) -> None:
        self.limits = limits
        self.declared = declared
        self.largest = largest_limit(limits)
        self.fields: dict[str, str] = {}
        self.fields_size = 0
        self.parts = 0
        self.part = _Part()
        self.file_started = False
        self.filename: str | None = None
        self.file_size = 0
        self.file_limit = self.largest
        self.pending = bytearray()  # file bytes not yet handed to the spool file
        self.ended = False

    # -- python-multipart callbacks ----------------------------------------------------

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise _Refuse(ValidationFailed(detail=f"At most {MAX_PARTS} form parts."))
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.header_value += data[start:end]

    def on_header_end(self) -> None:
        if bytes(self.part.header_name).strip().lower() == b"content-disposition":
            self.part.disposition = bytes(self.part.header_value)
        self.part.header_name.clear()
        self.part.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.disposition)
        if b"name" not in options:
            raise _Refuse(
                ValidationFailed(detail='Multipart form parse error - a part has no "name".')
            )
        self.part.name = _decode(options[b"name"])
        filename = _file_name(self.part.disposition, options)
        if filename is None:
            return
        self.part.is_file = True
        self.part.filename = filename
        if not self.part.filename and self.part.name in FILE_FIELDS:
            # What a browser sends for a file input left empty: no file, as Django (BLAB)
            # takes it. Its content, if any, is dropped (counted as a field's).
            self.part.empty_input = True
            return
        if self.part.name not in FILE_FIELDS:
            raise _Refuse(ValidationFailed({self.part.name: ["Unexpected file."]}))
        if self.file_started:
            raise _Refuse(ValidationFailed({"file": ["Send at most one file."]}))
        self.file_started = True
        self.filename = self.part.filename
        kind = self.fields.get("type")
        if kind is None:
            if self.declared is not None and self.declared > self.largest + ALLOWANCE:
                raise _Refuse(too_large(self.largest))
            return  # the type comes later: capped by the largest limit meanwhile
        if kind not in FILE_TYPE_CODES:
            raise _Refuse(_no_file_for(self.fields))
        self.file_limit = limit_for(self.limits, kind)
        if self.declared is not None and self.declared > self.file_limit + ALLOWANCE:
            raise _Refuse(too_large(self.file_limit))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        size = end - start
        if self.part.is_file and not self.part.empty_input:
            self.file_size += size
            if self.file_size > self.file_limit:
                raise _Refuse(too_large(self.file_limit))
            self.pending += data[start:end]
            return
        self.fields_size += size
        if self.fields_size > MAX_FIELDS_SIZE:
            raise _Refuse(
                PayloadTooLarge(f"The form's text fields exceed {MAX_FIELDS_SIZE} bytes.")
            )
        if not self.part.empty_input:
            self.part.data += data[start:end]

    def on_part_end(self) -> None:
        if not self.part.is_file:
            self.fields[self.part.name] = self.part.data.decode("utf-8", errors="replace")

    def on_end(self) -> None:
        self.ended = True


def _no_file_for(fields: Mapping[str, str]) -> ValidationFailed:
    """The error for a file on a message type that takes none: the type's own error when
    the type is invalid, else a ``file`` error (Tertulia refuses files on ``T``)."""
    try:
        parse_new_message(fields)
    except ValidationFailed as exc:
        if "type" in exc.errors:
            return ValidationFailed({"type": exc.errors["type"]})
    return ValidationFailed({"file": ["Only the types V, a, v, i and A take a file."]})


def _boundary(request: Request) -> bytes:
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise ValidationFailed(
            detail="Multipart form parse error - Invalid boundary in multipart: None"
        )
    return boundary


class _Body(BodyReader):
    """A request body read message by message, which can also be drained after a refusal."""

    async def drain(self, declared: int | None) -> bool:
        """Read and drop the rest, when it is at most :data:`DRAIN_AT_MOST` bytes arriving
        within :data:`DRAIN_SECONDS`; whether the body has ended."""
        if declared is not None and declared - self.read > DRAIN_AT_MOST:
            return False
        start = self.read
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                async for _ in self.chunks():
                    if self.read - start > DRAIN_AT_MOST:
                        return False
        except (ClientDisconnect, TimeoutError, BodyStalled):
            return False
        return True


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    return int(raw) if raw is not None and raw.strip().isdigit() else None


async def receive_upload(request: Request, store: FileStore, limits: Mapping[str, int]) -> Upload:
    """Read a multipart message body, streaming its file to a spool file of ``store``.

    Args:
        request: a ``multipart/form-data`` request whose body has not been read.
        store: where the file is spooled.
        limits: the five limits (``settings.chat_limits``).

    Returns:
        the text fields and, when there was a file part, the spooled file (non-empty,
        within its type's limit). The caller keeps or discards ``file.spool``.

    Raises:
        UploadError: over a limit (413), a malformed body, a file on a type that takes
            none, an empty file, an unexpected or second file part, or the client went
            away or stalled mid-body (400).
    """
    declared = _declared_length(request)
    reader = _Reader(limits, declared)
    body_cap = reader.largest + ALLOWANCE
    body = _Body(request)
    spool: SpoolFile | None = None
    # Refused for certain, but read up to the file part to name the type's own limit.
    oversized = declared is not None and declared > body_cap
    try:
        parser = MultipartParser(
            _boundary(request),
            {
                "on_part_begin": reader.on_part_begin,
                "on_part_data": reader.on_part_data,
                "on_part_end": reader.on_part_end,
                "on_header_field": reader.on_header_field,
                "on_header_value": reader.on_header_value,
                "on_header_end": reader.on_header_end,
                "on_headers_finished": reader.on_headers_finished,
                "on_end": reader.on_end,
            },
        )
        try:
            async with asyncio.timeout(PEEK_SECONDS if oversized else None):
                async for chunk in body.chunks():
                    parser.write(chunk)  # its callbacks refuse a file over its type's limit
                    # (after a body that is not all file: epilogue, padding)
                    if body.read > (ALLOWANCE if oversized else body_cap):
                        raise _Refuse(too_large(reader.file_limit))
                    if reader.pending:
                        if spool is None:
                            # (the whole body's length: the fields are a few KB at most)
                            spool = await store.spool(expected=declared or 0)
                        spool.add(bytes(reader.pending))
                        reader.pending.clear()
                        if spool.pending >= FLUSH_AT:
                            await spool.flush()
        except TimeoutError:
            if not oversized:  # (only an oversized body's wait has a deadline)
                raise
            raise _Refuse(too_large(reader.file_limit)) from None
        parser.finalize()
        if not reader.ended:
            raise ValidationFailed(detail="Multipart form parse error - the body ended early.")
        received = await _finish(reader, spool)
    except _Refuse as exc:
        _discard(spool)
        raise await _failed(request, exc.error, body, declared) from None
    except FormParserError as exc:
        _discard(spool)
        error = ValidationFailed(detail=f"Multipart form parse error - {exc}")
        raise await _failed(request, error, body, declared) from None
    except TertuliaError as exc:
        _discard(spool)
        raise await _failed(request, exc, body, declared) from None
    except ClientDisconnect:
        _discard(spool)
        error = ValidationFailed(detail="The upload was interrupted.")
        raise await _failed(request, error, body, None, gone=True) from None
    except BodyStalled as exc:
        _discard(spool)
        error = ValidationFailed(detail=f"The upload {exc.summary}")
        raise await _failed(request, error, body, None, gone=True) from None
    except BaseException:
        _discard(spool)
        raise
    return Upload(reader.fields, received)


async def _finish(reader: _Reader, spool: SpoolFile | None) -> ReceivedFile | None:
    """Checks that need the whole body: the type's limit, a file on ``T``, an empty file."""
    if not reader.file_started:
        return None
    kind = reader.fields.get("type")
    if kind not in FILE_TYPE_CODES:
        raise _Refuse(_no_file_for(reader.fields))
    limit = limit_for(reader.limits, kind)
    if reader.file_size > limit:
        raise _Refuse(too_large(limit))
    if reader.file_size == 0 or spool is None:
        raise _Refuse(ValidationFailed({"file": [EMPTY_FILE]}))
    await spool.finish()
    return ReceivedFile(spool, reader.filename, reader.file_size)


def _discard(spool: SpoolFile | None) -> None:
    if spool is not None:
        spool.discard()


async def _failed(
    request: Request, error: TertuliaError, body: _Body, declared: int | None, *, gone: bool = False
) -> UploadError:
    """The refusal, once what is left of a short body has been read (see the module)."""
    read = body.read
    complete = body.ended or (not gone and await body.drain(declared))
    log.info(
        "upload refused",
        status=error.status,
        detail=error.detail,
        bytes_read=read,
        body_complete=complete,
        conversation_id=request.path_params.get("conversation_id"),
    )
    return UploadError(error, complete=complete, bytes_read=read)


def is_multipart(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


async def post_multipart(request: Request, member: Membership) -> JSONBody:
    """The multipart path of ``POST messages/``: receive, check, store, then submit.

    The file is kept (under a server-made name, flushed to disk) before the message is
    submitted, and deleted again when the submission fails or turns out to repeat an
    earlier ``local_id``; so no stored message points at a missing file and no failed one
    leaves a file behind.

    Returns:
        201 with the message, 200 for a repeated ``local_id``, or the refusal of
        :func:`receive_upload` (with ``Connection: close`` when the body was not read).

    Raises:
        ValidationFailed: ``file`` sent as a text field, or the message's own rules.
        UnsupportedMediaType: the file's content does not fit the message type.
    """
    svc = services(request)
    store = file_store(svc.settings.media_root, min_free=svc.settings.media_min_free)
    try:
        upload = await receive_upload(request, store, svc.settings.chat_limits)
    except UploadError as exc:
        if isinstance(exc.error, InsufficientStorage):
            # (an operator's matter: a warning, one every few seconds while it lasts)
            svc.outages.warning(
                log,
                "media_root below media_min_free; upload refused",
                free=exc.error.free,
                min_free=exc.error.floor,
                conversation_id=member.chat.conversation.id,
            )
        headers = {**(exc.error.headers() or {})}  # (Retry-After with a 503)
        if not exc.complete:
            headers["Connection"] = "close"
        return JSONBody(exc.error.body(), status_code=exc.error.status, headers=headers or None)
    received = upload.file
    key: str | None = None
    try:
        if "file" in upload.fields:
            raise ValidationFailed({"file": [NOT_A_FILE]})
        info: FileInfo | None = None
        if received is not None:
            kind = upload.fields["type"]
            try:
                mime = await anyio.to_thread.run_sync(stored_type, kind, received.spool.path)
            except ContentMismatch as exc:
                raise UnsupportedMediaType(str(exc)) from None
            key = await store.keep(received.spool, member.chat.conversation.id)
            info = FileInfo(
                path=key,
                size=received.size,
                name=display_name(received.filename),
                mime_type=mime,
            )
        result = await member.chat.submit(member.participant, upload.fields, file=info)
    except BaseException:
        if received is not None:
            received.spool.discard()
        if key is not None and not await _kept_by_a_message(member.chat, key):
            await store.delete(key)
        raise
    if result.duplicate and key is not None:
        await store.delete(key)
    status = 200 if result.duplicate else 201
    return JSONBody(member.chat.public(result.message), status_code=status)


async def _kept_by_a_message(chat: Chat, key: str) -> bool:
    """Whether a message carrying the file ``key`` was stored after all: the failure came
    after its commit (a cancellation while its frames were published, say), and deleting
    the file would leave a message without it. When that cannot be told, the file is kept:
    an unreferenced file costs only disk."""
    try:
        return await chat.message_with_file(key) is not None
    except Exception:
        return True


__all__ = [
    "ALLOWANCE",
    "NOT_A_FILE",
    "ReceivedFile",
    "Upload",
    "UploadError",
    "is_multipart",
    "post_multipart",
    "receive_upload",
]
