"""Uploaded files at the ``file_url`` messages carry: ``GET``/``HEAD /media/<name>``.

Access (PROTOCOL 3.11, 9 #38): only a session that participates in the file's
conversation may fetch it (no session, or another conversation's → 403); a file of a
message people cannot see yet (awaiting the manager's approval) is shown only to its
sender and to bots. A name that is not one the store makes is 404 without touching the
file system.

Safety (9 #46): ``X-Content-Type-Options: nosniff`` always; the stored (detected) type is
sent only for passive image, audio and video types, inline; anything else — HTML, SVG, XML,
scripts, unknown — as ``application/octet-stream`` with ``Content-Disposition: attachment``
and a sandboxing CSP. ``Range`` (206, for seeking in audio and video), ``If-Range``,
``ETag``/``Last-Modified`` and ``HEAD`` are handled by Starlette's ``FileResponse``, with
two changes (:class:`MediaFile`): a ``Range`` it cannot use (another unit, malformed,
reversed) is ignored and the whole file sent (RFC 9110 14.2), where Starlette answers a bare
``text/plain`` 400; and a range past the end is a 416 with the usual JSON error body.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable

from tertulia.errors import NotFound
from tertulia.files import file_store, key_conversation, serving
from tertulia.web.deps import membership, services

MEDIA_PREFIX = "/media"
CACHE_CONTROL = "private, max-age=86400"
SANDBOX = "default-src 'none'; sandbox"

router = APIRouter(prefix=MEDIA_PREFIX, tags=["media"])


class MediaFile(FileResponse):
    """Starlette's ``FileResponse``, answering unusable ``Range`` headers as above."""

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader:
            return []  # no ranges: the whole file, 200
        except RangeNotSatisfiable as exc:
            # Raised before anything is sent: the app's handler makes the JSON body.
            raise HTTPException(
                416,
                "Requested range not satisfiable.",
                headers={"Content-Range": f"bytes */{exc.max_size}"},
            ) from None


@router.api_route(
    "/{key:path}", methods=["GET", "HEAD"], response_class=MediaFile, include_in_schema=False
)
async def media_file(key: str, request: Request) -> MediaFile:
    """One uploaded file, for participants of its conversation.

    Raises:
        PermissionDenied: no session, or not a participant of the file's conversation.
        NotFound: no such file (or not visible to this participant yet).
    """
    conversation_id = key_conversation(key)
    if conversation_id is None:
        raise NotFound()
    member = await membership(request, conversation_id)
    svc = services(request)
    message = await member.chat.message_with_file(key)
    if message is None or message.file is None:
        raise NotFound()
    viewer = member.participant
    if not message.visible and viewer.is_human and viewer.id != message.sender_id:
        raise NotFound()
    path = file_store(svc.settings.media_root).locate(key)
    if path is None:
        raise NotFound()
    how = serving(message.file.mime_type)
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": CACHE_CONTROL,
        "Vary": "Cookie",
    }
    if how.disposition == "attachment":
        headers["Content-Security-Policy"] = SANDBOX
    return MediaFile(
        path,
        media_type=how.media_type,
        headers=headers,
        filename=message.file.name or path.name,
        content_disposition_type=how.disposition,
    )
