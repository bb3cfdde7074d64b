"""What an uploaded file is, judged by its bytes, and how it may be served.

Neither the file name nor the client's ``Content-Type`` is trusted: the type comes from the
file's magic numbers (``puremagic``, a pure-Python, maintained detector reading the first
~36 KB and the last ~0.5 KB). An image message must carry an image, a voice or audio
message audio, a video message video; an attachment may be anything.

Containers that hold audio as well as video (WebM/Matroska, Ogg, MP4, 3GPP) are accepted
for both and stored under the name that fits the message: a voice recording made by a
browser's ``MediaRecorder`` is WebM, Ogg or MP4 and is stored as ``audio/webm``,
``audio/ogg`` or ``audio/mp4``.

Serving (PROTOCOL 3.11, 9 #46): only passive media types are ever sent inline with their
own type; everything else, and active image types (SVG, anything XML), goes out as
``application/octet-stream`` with ``Content-Disposition: attachment``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import puremagic

OCTET_STREAM = "application/octet-stream"
MAX_MIME = 100  # the ``mime_type`` column

# Detected type -> stored type, per kind of content a message type asks for.
_AUDIO_CONTAINERS: Mapping[str, str] = {
    "video/webm": "audio/webm",
    "application/x-matroska": "audio/webm",
    "video/x-matroska": "audio/x-matroska",
    "application/ogg": "audio/ogg",
    "video/ogg": "audio/ogg",
    "video/mp4": "audio/mp4",
    "video/3gpp": "audio/3gpp",
}
_VIDEO_CONTAINERS: Mapping[str, str] = {
    "application/ogg": "video/ogg",
    "application/x-matroska": "video/x-matroska",
}
_ALIASES: Mapping[str, str] = {
    "audio/wave": "audio/wav",
    "audio/x-wav": "audio/wav",
    "video/avi": "video/x-msvideo",
}
_KIND_BY_TYPE: Mapping[str, str] = {"i": "image", "V": "audio", "a": "audio", "v": "video"}
_KIND_NAMES: Mapping[str, str] = {"image": "an image", "audio": "audio", "video": "a video"}


class ContentMismatch(Exception):
    """The file's content does not fit the message type.

    Attributes:
        expected: ``"image"``, ``"audio"`` or ``"video"``.
        detected: the detected MIME type, or None when nothing was recognised.
    """

    def __init__(self, expected: str, detected: str | None) -> None:
        self.expected = expected
        self.detected = detected
        found = f"detected {detected}" if detected else "its type was not recognised"
        super().__init__(f"The file is not {_KIND_NAMES[expected]} ({found}).")


def candidates(path: Path) -> list[str]:
    """MIME types the file may be, most likely first; those tied for first place lead.

    Blocking (reads ~37 KB): call it in a thread.
    """
    return [mime for _, mime in _matches(path)]


def _matches(path: Path) -> list[tuple[float, str]]:
    try:
        with path.open("rb") as handle:
            found = puremagic.magic_stream(handle)
    except (puremagic.PureError, ValueError):
        return []
    seen: dict[str, float] = {}
    for match in found:  # puremagic sorts by confidence, highest first
        if match.mime_type and len(match.mime_type) <= MAX_MIME:
            seen.setdefault(_ALIASES.get(match.mime_type, match.mime_type), match.confidence)
    return [(confidence, mime) for mime, confidence in seen.items()]


def _is_active(mime: str) -> bool:
    return "xml" in mime or "svg" in mime


def _fits(kind: str, mime: str) -> str | None:
    if kind == "image":
        return mime if mime.startswith("image/") and not _is_active(mime) else None
    if kind == "audio":
        return mime if mime.startswith("audio/") else _AUDIO_CONTAINERS.get(mime)
    return mime if mime.startswith("video/") else _VIDEO_CONTAINERS.get(mime)


def stored_type(message_type: str, path: Path) -> str:
    """The MIME type to store for a file sent as ``message_type``, judged by its bytes.

    For the media types only the most likely detections count (a weak second guess does
    not turn a text file into audio). Blocking (reads ~37 KB): call it in a thread.

    Raises:
        ContentMismatch: an image, voice, audio or video message whose file is not that.
    """
    found = _matches(path)
    kind = _KIND_BY_TYPE.get(message_type)
    if kind is None:
        return found[0][1] if found else OCTET_STREAM
    best = found[0][0] if found else None
    for confidence, mime in found:
        fitted = _fits(kind, mime) if confidence == best else None
        if fitted is not None:
            return fitted
    detected = found[0][1] if found else None
    raise ContentMismatch(kind, None if detected == OCTET_STREAM else detected)


@dataclass(frozen=True, slots=True)
class Serving:
    """How a stored file goes out: its ``Content-Type`` and ``Content-Disposition`` type."""

    media_type: str
    disposition: str  # "inline" | "attachment"


def serving(mime_type: str | None) -> Serving:
    """Passive image/audio/video types inline; everything else as an opaque download."""
    mime = (mime_type or "").lower()
    major = mime.split("/", 1)[0]
    if major in ("image", "audio", "video") and not _is_active(mime):
        return Serving(mime, "inline")
    return Serving(OCTET_STREAM, "attachment")


__all__ = ["OCTET_STREAM", "ContentMismatch", "Serving", "candidates", "serving", "stored_type"]
