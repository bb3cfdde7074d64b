"""Request bodies as BLAB's API takes them: JSON, and form or multipart where allowed.

Every body read here is capped at :data:`MAX_BODY` while it streams (by ``Content-Length``
before a byte is read, and by counting otherwise), whatever its type: these are small
objects, and file uploads take another path (:mod:`tertulia.web.uploads`). Form and
multipart bodies are parsed only once they have been read whole within that cap.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson
from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser

from tertulia.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed

MAX_BODY = 64 * 1024  # JSON and form bodies; file uploads take another path


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
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise PayloadTooLarge(f"MAX = {MAX_BODY}")
        chunks.append(chunk)
    return b"".join(chunks)
