"""Attachments: per-type size limits, content type checks, and storage of uploaded files.

- :mod:`.limits` — BLAB's ``CHAT_LIMITS`` per message type (PROTOCOL 5.8).
- :mod:`.content` — what a file is, judged by its bytes, and how it may be served.
- :mod:`.store` — the :class:`FileStore` interface and the local-directory store, with
  server-made names (PROTOCOL 3.11).
"""

from __future__ import annotations

from pathlib import Path

from tertulia.files.content import ContentMismatch, Serving, serving, stored_type
from tertulia.files.limits import FILE_TYPE_CODES, check_files_budget, largest_limit, limit_for
from tertulia.files.store import (
    FileStore,
    LocalFileStore,
    SpoolFile,
    display_name,
    key_conversation,
)


def file_store(media_root: Path, *, min_free: int = 0) -> FileStore:
    """The store for ``settings.media_root`` (cheap: holds no resources); ``min_free``:
    ``settings.media_min_free``, for a store uploads are written to."""
    return LocalFileStore(media_root, min_free=min_free)


__all__ = [
    "FILE_TYPE_CODES",
    "ContentMismatch",
    "FileStore",
    "LocalFileStore",
    "Serving",
    "SpoolFile",
    "check_files_budget",
    "display_name",
    "file_store",
    "key_conversation",
    "largest_limit",
    "limit_for",
    "serving",
    "stored_type",
]
