"""Where uploaded files live: a small interface and the local-directory implementation.

An upload is first written to a :class:`SpoolFile` (a temporary file under the store's
root, so that keeping it is a rename on the same file system), then either kept under a
name the server makes, or discarded. No name or path from a client ever reaches the file
system: stored files are named like BLAB's,

    ``chat/chat_<conversation id hex>/msg_<random hex>_<random hex>``

and :meth:`FileStore.locate` accepts nothing but that shape. The client's file name is only
kept as data (``file_name``, see :func:`display_name`).

Durability: :meth:`LocalFileStore.keep` flushes the file and its directory to disk before it
returns, so a message that commits after it never points at a file a crash could lose. A
crash between the two leaves an unreferenced file (never a dangling reference); spool files
left by a crash are under ``<root>/tmp`` and may be deleted when the server is stopped.

Errors: a file that cannot be written (a root not writable, a full disk) is the server's
trouble, not the request's: the ``OSError`` is logged here, with the path and the reason,
and becomes :class:`FilesUnavailable` (503 ``unavailable``), not a traceback and a 500.
The server checks at its start that the root can be written
(:func:`tertulia.preflight.check_media_root`).

Free space: a store made with ``min_free`` (``settings.media_min_free``) refuses to write
an upload that would leave its file system with fewer free bytes:
:class:`~tertulia.errors.InsufficientStorage` (507 ``no_space``). It looks before a spool
file is made (counting the size the client announced, when it did) and again before each
buffer is written (a client that announced nothing, or lied, or other uploads meanwhile).
Without the floor, uploads filled the disk, and then the database (SQLite on the same disk,
often) could no longer write anyone's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

import anyio.to_thread
import structlog

from tertulia.domain.conversations import shows_nothing
from tertulia.errors import InsufficientStorage, Unavailable

log = structlog.get_logger(__name__)
RETRY_AFTER = 30  # seconds: a full disk or a wrong mode takes an operator

KEY_PATTERN = re.compile(r"chat/chat_([0-9a-f]{32})/msg_[0-9a-f]{32}_[0-9a-f]{32}")
MAX_NAME = 255
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
WRITE_BUFFER = 256 * 1024
# In the root: where the database whose files the store holds is (FileStore.claim).
OWNER_MARK = ".tertulia-database"

FreeSpace = Callable[[Path], int]
"""Bytes an unprivileged process may still write on the file system of a path."""


def free_bytes(path: Path) -> int:
    """The :data:`FreeSpace` of the operating system (``statvfs``: ``f_bavail`` blocks)."""
    return shutil.disk_usage(path).free


def _keep_floor(directory: Path, size: int, min_free: int, free_space: FreeSpace) -> None:
    """Refuse to write ``size`` more bytes under ``directory`` when that would leave fewer
    than ``min_free`` free (0: no floor).

    Raises:
        InsufficientStorage: below the floor.
    """
    if min_free <= 0:
        return
    free = free_space(directory)
    if free - size < min_free:
        raise InsufficientStorage(free=free, floor=min_free)


class FilesUnavailable(Unavailable):
    """An uploaded file cannot be written (its directory not writable, the disk full)."""

    def __init__(self) -> None:
        super().__init__("Files cannot be stored now.", retry_after=RETRY_AFTER)


@contextlib.contextmanager
def _writing(what: Path) -> Iterator[None]:
    """Translate an ``OSError`` while writing under ``what`` into :class:`FilesUnavailable`."""
    try:
        yield
    except OSError as exc:
        log.error("cannot write an uploaded file", path=str(what), error=f"{exc}")
        raise FilesUnavailable() from exc


def _directory(conversation_id: str) -> str:
    """Where a conversation's files are kept, under the store's root."""
    return f"chat/chat_{uuid.UUID(conversation_id).hex}"


def new_key(conversation_id: str) -> str:
    """A fresh storage name for a file of the conversation (BLAB's shape, PROTOCOL 3.11)."""
    return f"{_directory(conversation_id)}/msg_{uuid.uuid4().hex}_{uuid.uuid4().hex}"


def key_conversation(key: str) -> str | None:
    """The conversation id (canonical) a storage name belongs to; None for anything that is
    not a storage name this module makes."""
    match = KEY_PATTERN.fullmatch(key)
    return str(uuid.UUID(hex=match.group(1))) if match else None


def display_name(raw: str | None) -> str | None:
    """The client's file name, made safe to keep and show: the last path segment, no
    control characters, at most 255 characters with the extension kept; None when empty or
    when only dots, spaces or invisible characters are left."""
    if not raw:
        return None
    name = re.split(r"[/\\]", raw)[-1]
    # No control or format characters, nor line or paragraph separators (names refuse them).
    name = "".join(c for c in name if unicodedata.category(c) not in _DROPPED).strip()
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and 0 < len(ext) <= 16:
            name = stem[: MAX_NAME - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_NAME]
    # Dots alone ("." or "..") name no file, nor does what shows nothing: a browser saving
    # them would pick a name of its own.
    return None if shows_nothing(name.replace(".", "")) else name


class SpoolFile:
    """A temporary local file an upload is streamed into (buffered, written in a thread).

    Args:
        min_free: bytes each write must leave free on the file system (0: no floor).
        free_space: how free space is measured (tests pass their own).

    Attributes:
        path: where the bytes are.
        size: how many bytes were written so far.
    """

    def __init__(
        self,
        path: Path,
        file: BinaryIO,
        *,
        min_free: int = 0,
        free_space: FreeSpace = free_bytes,
    ) -> None:
        self.path = path
        self._file = file
        self._buffer = bytearray()
        self.size = 0
        self._min_free = min_free
        self._free_space = free_space

    @classmethod
    async def create(
        cls,
        directory: Path,
        *,
        expected: int = 0,
        min_free: int = 0,
        free_space: FreeSpace = free_bytes,
    ) -> SpoolFile:
        """A new empty spool file in ``directory`` (created if needed).

        Args:
            expected: bytes the upload is announced to bring (0: not known), which must
                leave ``min_free`` free.

        Raises:
            InsufficientStorage: ``expected`` bytes would leave less than ``min_free``.
            FilesUnavailable: the file cannot be made.
        """

        def make() -> SpoolFile:
            directory.mkdir(parents=True, exist_ok=True)
            _keep_floor(directory, expected, min_free, free_space)
            handle, name = tempfile.mkstemp(dir=directory, prefix="upload_")
            return cls(
                Path(name),
                os.fdopen(handle, "wb", buffering=0),
                min_free=min_free,
                free_space=free_space,
            )

        with _writing(directory):
            return await anyio.to_thread.run_sync(make)

    def add(self, data: bytes) -> None:
        """Append ``data`` to the in-memory buffer; :meth:`flush` writes it out."""
        self._buffer += data
        self.size += len(data)

    @property
    def pending(self) -> int:
        """Bytes buffered but not written yet."""
        return len(self._buffer)

    async def flush(self) -> None:
        """Write the buffer to the file (in a thread), when that leaves ``min_free`` free.

        Raises:
            InsufficientStorage: below the floor (nothing of the buffer is written).
            FilesUnavailable: the write failed.
        """
        if self._buffer:
            data, self._buffer = bytes(self._buffer), bytearray()
            with _writing(self.path):
                await anyio.to_thread.run_sync(self._write, data)

    def _write(self, data: bytes) -> None:
        _keep_floor(self.path.parent, len(data), self._min_free, self._free_space)
        self._file.write(data)

    async def finish(self) -> None:
        """Write what is buffered, push it to disk, and close the file."""
        await self.flush()
        with _writing(self.path):
            await anyio.to_thread.run_sync(_sync_and_close, self._file)

    def discard(self) -> None:
        """Close and delete the file (safe to call twice, and after :meth:`finish`)."""
        self._buffer = bytearray()
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


def _sync_and_close(file: BinaryIO) -> None:
    os.fsync(file.fileno())
    file.close()


class FileStore(Protocol):
    """Storage of uploaded files. Implementations must keep the names they are given."""

    async def spool(self, expected: int = 0) -> SpoolFile:
        """A new temporary file to stream an upload of about ``expected`` bytes into (0:
        not known); its ``flush`` and ``finish`` raise as this does.

        Raises:
            InsufficientStorage: storing ``expected`` bytes (or, later, what is written)
                would leave less free space than the store's floor.
            FilesUnavailable: it cannot be written.
        """
        ...

    async def keep(self, spool: SpoolFile, conversation_id: str) -> str:
        """Store a finished spool file under a new name of the conversation; returns the
        name (the ``file_url`` path after ``/media/``). The spool file is gone afterwards.
        Cancelled, it keeps nothing: the caller could not delete a file it was not named.

        Raises:
            FilesUnavailable: it cannot be written.
        """
        ...

    async def delete(self, key: str) -> None:
        """Remove a stored file; a missing file or a foreign name is not an error.

        Callers use it on error paths, also while being cancelled: implementations should
        finish the removal even then (the local one does not suspend at all)."""
        ...

    def locate(self, key: str) -> Path | None:
        """The local path of a stored file, or None (unknown name, or not there)."""
        ...

    async def delete_conversation(self, conversation_id: str) -> int:
        """Remove every stored file of a conversation (also any no message names, left by
        a crash between keeping a file and storing its message); returns how many.

        Only the owner of the files may call it: see :meth:`claim`."""
        ...

    async def claim(self, owner: str) -> str:
        """The database whose files this store holds (where it is: see
        :mod:`tertulia.ownership`): the one its owner's mark names, or ``owner`` when it
        has none (marked so now, if the store exists).

        A database other than the one returned shares the store with its owner (a copy:
        the same conversation ids, the same files) and must not delete its files: they
        are the owner's too."""
        ...


class LocalFileStore:
    """Files in a local directory (``settings.media_root``).

    Args:
        root: the directory; created when first needed.
        min_free: bytes an upload must leave free on its file system (0: no floor).
        free_space: how free space is measured (tests pass their own).
    """

    def __init__(
        self, root: Path, *, min_free: int = 0, free_space: FreeSpace = free_bytes
    ) -> None:
        self.root = Path(root).resolve()
        self.min_free = min_free
        self._free_space = free_space

    async def spool(self, expected: int = 0) -> SpoolFile:
        return await SpoolFile.create(
            self.root / "tmp",
            expected=expected,
            min_free=self.min_free,
            free_space=self._free_space,
        )

    async def keep(self, spool: SpoolFile, conversation_id: str) -> str:
        key = new_key(conversation_id)
        target = self.root / key
        moving = asyncio.ensure_future(anyio.to_thread.run_sync(_move_durably, spool.path, target))
        try:
            with _writing(target):
                await asyncio.shield(moving)
        except asyncio.CancelledError:
            # Cancelled (a stopping server cancels the upload) while the thread moves the
            # file: the thread goes on regardless, and the caller, never told the name,
            # cannot delete what it makes. Wait for the move to end, then undo it.
            await asyncio.wait([moving])
            target.unlink(missing_ok=True)
            if not moving.cancelled():
                moving.exception()  # (retrieved: a failed move changes nothing here)
            raise
        return key

    async def delete(self, key: str) -> None:
        # No await inside: a cancelled caller cannot interrupt the removal.
        path = self.locate(key)
        if path is not None:
            path.unlink(missing_ok=True)

    def locate(self, key: str) -> Path | None:
        if key_conversation(key) is None:
            return None
        path = self.root / key
        return path if path.is_file() else None

    async def delete_conversation(self, conversation_id: str) -> int:
        return await anyio.to_thread.run_sync(_remove_tree, self.root / _directory(conversation_id))

    async def claim(self, owner: str) -> str:
        return await anyio.to_thread.run_sync(_claim, self.root, owner)


def _claim(root: Path, owner: str) -> str:
    """:meth:`LocalFileStore.claim`: the mark is made whole beside it, then linked into
    place, which fails if another process marked it first (then its mark counts)."""
    if not root.is_dir():
        return owner  # (no store yet, so no files: marked when first made)
    mark = root / OWNER_MARK
    made = root / f"{OWNER_MARK}.{uuid.uuid4().hex}"
    try:
        with contextlib.suppress(FileNotFoundError):
            return _read_mark(mark)
        made.write_text(f"{owner}\n", encoding="utf-8")
        try:
            os.link(made, mark)
        except FileExistsError:
            return _read_mark(mark)
    except OSError as exc:  # (a root that cannot be written: nor can its files be deleted)
        log.warning("media_root could not be marked", path=str(mark), error=str(exc))
        return owner
    finally:
        made.unlink(missing_ok=True)
    return owner


def _read_mark(mark: Path) -> str:
    return mark.read_text(encoding="utf-8", errors="replace").strip()


def _remove_tree(directory: Path) -> int:
    """Remove ``directory`` and the files in it (none, if it is not there); how many."""
    if not directory.is_dir():
        return 0
    files = sum(1 for path in directory.rglob("*") if path.is_file())
    shutil.rmtree(directory)
    return files


def _move_durably(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


__all__ = [
    "OWNER_MARK",
    "FileStore",
    "FilesUnavailable",
    "FreeSpace",
    "LocalFileStore",
    "SpoolFile",
    "display_name",
    "free_bytes",
    "key_conversation",
    "new_key",
]
