"""The files package alone: limits per type, content checks, names, the local store."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path

import pytest

from files import media_samples as samples
from support.waiting import until
from tertulia.files import (
    ContentMismatch,
    LocalFileStore,
    display_name,
    key_conversation,
    largest_limit,
    limit_for,
    serving,
    stored_type,
)
from tertulia.files import store as store_module

LIMITS = {"MAX_ATTACHMENT_SIZE": 10, "MAX_IMAGE_SIZE": 20, "MAX_VIDEO_SIZE": 30}


def test_limits_map_types_to_blab_keys() -> None:
    """Each file type has its CHAT_LIMITS key; a missing key or a text type counts as 0."""
    assert [limit_for(LIMITS, t) for t in "AivaVT"] == [10, 20, 30, 0, 0, 0]
    assert largest_limit(LIMITS) == 30
    assert largest_limit({}) == 0


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "sample"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("message_type", "data", "stored"),
    [
        ("i", samples.png(), "image/png"),
        ("v", samples.mp4(), "video/mp4"),
        ("a", samples.wav(), "audio/wav"),
        ("a", samples.mp3(), "audio/mpeg"),
        ("V", samples.ogg_opus(), "audio/ogg"),
        ("V", samples.mp4(), "audio/mp4"),
        ("A", samples.html(), "text/html"),
        ("A", b"just some text", "application/octet-stream"),
    ],
)
def test_stored_type_comes_from_the_bytes(
    tmp_path: Path, message_type: str, data: bytes, stored: str
) -> None:
    """The stored MIME type is detected from content; audio containers are named as audio."""
    assert stored_type(message_type, _write(tmp_path, data)) == stored


@pytest.mark.parametrize(
    ("message_type", "data"),
    [
        ("i", samples.html()),
        ("i", samples.svg()),
        ("i", samples.wav()),
        ("v", samples.png()),
        ("a", samples.png()),
        ("V", b"plain text, not audio"),
    ],
)
def test_content_that_does_not_fit_the_type_is_refused(
    tmp_path: Path, message_type: str, data: bytes
) -> None:
    """An image must be a (passive) image, audio audio, video video."""
    with pytest.raises(ContentMismatch):
        stored_type(message_type, _write(tmp_path, data))


def test_a_file_of_no_known_type_is_said_to_be_unrecognised(tmp_path: Path) -> None:
    """AMR audio (its magic is ``#!AMR``; the detector does not know it) as audio: refused,
    as "not recognised" (before: "detected application/octet-stream", a guess's fallback
    that reads as though the file had been examined and found to be something else)."""
    with pytest.raises(ContentMismatch) as refused:
        stored_type("a", _write(tmp_path, b"#!AMR\n" + bytes(range(256)) * 8))
    assert refused.value.detected is None
    assert str(refused.value) == "The file is not audio (its type was not recognised)."


def test_only_passive_media_are_served_inline() -> None:
    """image/audio/video inline with their type; active or other types as downloads."""
    assert serving("image/png").disposition == "inline"
    assert serving("video/mp4").media_type == "video/mp4"
    for active in ("image/svg+xml", "text/html", "application/xml", "text/javascript", None):
        how = serving(active)
        assert (how.media_type, how.disposition) == ("application/octet-stream", "attachment")


def test_display_names_are_safe_and_bounded() -> None:
    """Only the last path segment is kept, without control characters, at most 255 chars
    with the extension kept."""
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("C:\\fakepath\\pic.png") == "pic.png"
    assert display_name("a\r\nb.txt") == "ab.txt"
    long = display_name("x" * 300 + ".jpeg")
    assert long is not None
    assert len(long) == 255
    assert long.endswith("x.jpeg")
    assert display_name("") is None
    # Only dots name no file (a browser saving one picks a name of its own).
    nameless = (".", "..", "a/..", "...", ". .", ".\u0301", "\u2800", "\u200b")
    assert [display_name(n) for n in nameless] == [None] * len(nameless)
    assert display_name(".profile") == ".profile"
    assert display_name("a\u2028b\u2029.txt") == "ab.txt"  # (as names refuse them)


async def test_local_store_keeps_files_under_server_made_names(tmp_path: Path) -> None:
    """Spooled bytes are kept under ``chat/chat_<hex>/msg_<hex>_<hex>``; only such names
    are ever located; delete removes the file."""
    store = LocalFileStore(tmp_path)
    conversation = str(uuid.uuid4())
    spool = await store.spool()
    spool.add(b"hello")
    await spool.finish()
    key = await store.keep(spool, conversation)
    assert key.startswith(f"chat/chat_{uuid.UUID(conversation).hex}/msg_")
    assert key_conversation(key) == conversation
    located = store.locate(key)
    assert located is not None
    assert located.read_bytes() == b"hello"
    assert not list((tmp_path / "tmp").iterdir())
    for foreign in ("../secret", "chat/../../x", key + "/..", "/etc/passwd", key.upper()):
        assert store.locate(foreign) is None
        assert key_conversation(foreign) is None
    await store.delete(key)
    assert store.locate(key) is None


async def test_discarded_spool_files_leave_nothing(tmp_path: Path) -> None:
    """A discarded spool file is deleted (also when discarded twice)."""
    store = LocalFileStore(tmp_path)
    spool = await store.spool()
    spool.add(b"x" * 10)
    await spool.flush()
    spool.discard()
    spool.discard()
    assert not list((tmp_path / "tmp").iterdir())


async def test_a_keep_cancelled_mid_move_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while its thread moves the file (a stopping server cancels the upload), keep
    removes what the move made: its caller, never told the name, could not. (Before: the
    thread went on and left a file no message names.)"""
    moving, release, moved = threading.Event(), threading.Event(), threading.Event()
    move = store_module._move_durably

    def gated(source: Path, target: Path) -> None:
        moving.set()
        release.wait(10)
        move(source, target)
        moved.set()

    monkeypatch.setattr(store_module, "_move_durably", gated)
    store = LocalFileStore(tmp_path)
    spool = await store.spool()
    spool.add(b"hello")
    await spool.finish()
    keeping = asyncio.create_task(store.keep(spool, str(uuid.uuid4())))
    await until(moving.is_set)
    keeping.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await keeping
    await until(moved.is_set)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
