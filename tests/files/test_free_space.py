"""What files may take of the disk: the local store's free-space floor (``media_min_free``),
refusing an upload before its spool file is made or before the buffer that would cross the
floor is written; and a conversation's budget of file bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tertulia.errors import FilesBudgetExceeded, InsufficientStorage
from tertulia.files import LocalFileStore, check_files_budget

FLOOR = 1000


class Disk:
    """A file system whose free space the test sets, less what the spool files hold."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.asked: list[Path] = []

    def __call__(self, path: Path) -> int:
        self.asked.append(path)
        written = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return self.free - written


def spooled(root: Path) -> list[Path]:
    tmp = root / "tmp"
    return [p for p in tmp.iterdir() if p.is_file()] if tmp.exists() else []


async def test_an_announced_size_that_would_cross_the_floor_makes_no_spool_file(
    tmp_path: Path,
) -> None:
    """``spool(expected=...)`` refuses (507 no_space) before a file is made when the
    announced bytes would leave less than the floor; within it, a spool file is made."""
    disk = Disk(free=FLOOR + 500)
    store = LocalFileStore(tmp_path, min_free=FLOOR, free_space=disk)
    with pytest.raises(InsufficientStorage) as refused:
        await store.spool(expected=501)
    assert (refused.value.status, refused.value.code) == (507, "no_space")
    assert (refused.value.free, refused.value.floor) == (FLOOR + 500, FLOOR)
    assert refused.value.body() == {"detail": InsufficientStorage.TEXT, "code": "no_space"}
    assert spooled(tmp_path) == []
    spool = await store.spool(expected=500)
    spool.discard()
    assert disk.asked  # (the floor was looked at, on the media root's file system)


async def test_a_write_that_would_cross_the_floor_is_refused_and_not_written(
    tmp_path: Path,
) -> None:
    """An upload of unknown size is written while it leaves the floor free; the buffer
    that would cross it is refused, and none of it reaches the file."""
    store = LocalFileStore(tmp_path, min_free=FLOOR, free_space=Disk(free=FLOOR + 500))
    spool = await store.spool()
    spool.add(b"x" * 400)
    await spool.flush()
    spool.add(b"y" * 101)
    with pytest.raises(InsufficientStorage):
        await spool.flush()
    assert spool.path.read_bytes() == b"x" * 400
    spool.discard()
    assert spooled(tmp_path) == []


async def test_no_floor_looks_at_no_free_space(tmp_path: Path) -> None:
    """``min_free = 0`` switches the floor off: free space is never asked for."""
    disk = Disk(free=0)
    store = LocalFileStore(tmp_path, min_free=0, free_space=disk)
    spool = await store.spool(expected=10**9)
    spool.add(b"z" * 100)
    await spool.finish()
    spool.discard()
    assert disk.asked == []


def test_a_file_fits_the_budget_up_to_the_byte() -> None:
    """A conversation's files may reach their budget, not pass it (the error says it)."""
    check_files_budget(stored=2500, size=500, budget=3000)
    with pytest.raises(FilesBudgetExceeded) as refused:
        check_files_budget(stored=2500, size=501, budget=3000)
    assert (refused.value.status, refused.value.budget) == (413, 3000)
    assert refused.value.body()["budget"] == 3000
    with pytest.raises(FilesBudgetExceeded):
        check_files_budget(stored=0, size=1, budget=0)
