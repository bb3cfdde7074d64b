"""Request bodies as BLAB's API takes them: JSON, and form or multipart where allowed."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from tertulia.errors import UnsupportedMediaType, ValidationFailed

MAX_BODY = 64 * 1024  # JSON and form bodies; file uploads take another path


async def read_object(request: Request, *, form: bool = True) -> dict[str, Any]:
    """The request's fields as a dict.

    Args:
        form: whether ``application/x-www-form-urlencoded`` is accepted (multipart always is).

    Raises:
        ValidationFailed: malformed JSON, or JSON that is not an object.
        UnsupportedMediaType: another content type (with a body).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data" or (
        form and content_type == "application/x-www-form-urlencoded"
    ):
        data = await request.form(max_part_size=MAX_BODY)
        return {key: data.getlist(key)[-1] for key in data}
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


async def _read_capped(request: Request) -> bytes:
    from tertulia.errors import PayloadTooLarge

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
