"""SQLite's group commit: use cases ready at once share a commit, and nothing else changes."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from support.bots import watch_logs
from support.sqlite_log import log_restarts
from tertulia.domain.ids import new_id
from tertulia.domain.model import Conversation
from tertulia.storage import conversations as conv_repo
from tertulia.storage.migrate import upgrade_async
from tertulia.storage.sqlite import SQLiteDatabase, _Batch


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SQLiteDatabase]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'group.db'}"
    await upgrade_async(url)
    opened = SQLiteDatabase(url)
    try:
        yield opened
    finally:
        await opened.close()


def conversation(name: str) -> Conversation:
    return Conversation(id=new_id(), name=name, created_at=datetime.now(UTC))


async def write(db: SQLiteDatabase, name: str, fail: bool) -> None:
    """One use case storing a conversation named ``name``, failing at its end if asked."""
    async with db.write() as conn:
        await conv_repo.insert_conversation(conn, conversation(name))
        if fail:
            raise RuntimeError(name)


async def outcomes(db: SQLiteDatabase, *writes: tuple[str, bool]) -> list[str]:
    """Run ``(name, fails)`` writes in one turn of the loop; each one's result type name."""
    results = await asyncio.gather(*(write(db, *w) for w in writes), return_exceptions=True)
    return [type(r).__name__ for r in results]


def committed_names(path: Path) -> set[str]:
    """Names as another process would see them (a fresh connection: committed data only)."""
    with sqlite3.connect(path) as other:
        return {row[0] for row in other.execute("SELECT name FROM conversations")}


async def test_use_cases_ready_together_share_one_commit(
    db: SQLiteDatabase, tmp_path: Path
) -> None:
    """Three writers in one turn of the loop: one COMMIT, and each returns after it."""
    statements: list[str] = []
    db._writer.set_trace_callback(statements.append)  # the writer connection's SQL

    async def write_and_look(name: str) -> set[str]:
        await write(db, name, False)
        return committed_names(tmp_path / "group.db")

    seen = await asyncio.gather(write_and_look("a"), write_and_look("b"), write_and_look("c"))
    assert statements.count("COMMIT") == 1
    assert statements.count("BEGIN IMMEDIATE") == 1
    assert all(names == {"a", "b", "c"} for names in seen)  # acknowledged means stored


async def test_a_failing_use_case_undoes_only_itself(db: SQLiteDatabase, tmp_path: Path) -> None:
    """In a shared transaction, the one that fails is rolled back to its savepoint."""
    results = await outcomes(db, ("kept-1", False), ("dropped", True), ("kept-2", False))
    assert results == ["NoneType", "RuntimeError", "NoneType"]
    assert committed_names(tmp_path / "group.db") == {"kept-1", "kept-2"}


async def test_a_lone_use_case_commits_without_waiting_for_company(
    db: SQLiteDatabase, tmp_path: Path
) -> None:
    """Alone, a write block returns as soon as its own commit is done."""
    async with asyncio.timeout(1):
        async with db.write() as conn:
            await conv_repo.insert_conversation(conn, conversation("alone"))
    assert committed_names(tmp_path / "group.db") == {"alone"}


async def test_reads_never_see_an_open_transaction(db: SQLiteDatabase) -> None:
    """A read during someone's write block sees only what was committed before."""
    started, release = asyncio.Event(), asyncio.Event()
    pending = conversation("pending")

    async def writer() -> None:
        async with db.write() as conn:
            await conv_repo.insert_conversation(conn, pending)
            started.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await started.wait()
    async with db.read() as conn:
        assert await conv_repo.get_conversation(conn, pending.id) is None
    release.set()
    await task
    async with db.read() as conn:
        assert await conv_repo.get_conversation(conn, pending.id) == pending


async def test_closing_checkpoints_the_log(tmp_path: Path) -> None:
    """After close, the write-ahead log has been moved into the database file."""
    path = tmp_path / "ckpt.db"
    url = f"sqlite:///{path}"
    await upgrade_async(url)
    db = SQLiteDatabase(url)
    for i in range(50):
        async with db.write() as conn:
            await conv_repo.insert_conversation(conn, conversation(f"c{i}"))
    await db.close()
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert len(committed_names(path)) == 50


async def test_the_log_restarts_under_steady_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers that never pause still let the log start again from its beginning, so it
    does not grow without end. (Counted by restarts, not by the log's size: how far the
    log grows between two restarts depends on how fast the machine is at the time.)"""
    from tertulia.storage import sqlite as backend

    monkeypatch.setattr(backend, "CHECKPOINT_AFTER", 25)
    monkeypatch.setattr(backend, "WAL_RESET_SIZE", 256 * 1024)
    path = tmp_path / "steady.db"
    url = f"sqlite:///{path}"
    await upgrade_async(url)
    db = SQLiteDatabase(url)
    wal = path.with_name(path.name + "-wal")
    first = log_restarts(wal)
    stored = 0

    async def writer(n: int) -> None:
        nonlocal stored
        for i in itertools.count():
            if log_restarts(wal) >= first + 2:
                return
            async with db.write() as conn:
                await conv_repo.insert_conversation(conn, conversation(f"w{n}-{i}"))
            stored += 1

    try:
        # Without the quiet pass, the passive checkpoints never let the log restart and
        # the writers run until this timeout fails the test.
        await asyncio.wait_for(asyncio.gather(*(writer(n) for n in range(4))), 60)
    finally:
        await db.close()
    assert len(committed_names(path)) == stored


async def test_a_short_log_needs_no_quiet_window_though_its_file_grew_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quiet window (writers wait) is called for by how much log has been written since
    it last started again, not by the size of its file: the file keeps its size when the
    log restarts (up to ``journal_size_limit``), and a quiet window for every checkpoint
    would stall the writers four times a second under any load."""
    from tertulia.storage import sqlite as backend

    monkeypatch.setattr(backend, "CHECKPOINT_INTERVAL", 0.01)
    monkeypatch.setattr(backend, "CHECKPOINT_AFTER", 25)
    monkeypatch.setattr(backend, "WAL_RESET_SIZE", 256 * 1024)
    quiet_windows = 0
    quiet = backend.SQLiteDatabase._quiet

    async def counted(self: SQLiteDatabase, work: Any) -> None:
        nonlocal quiet_windows
        quiet_windows += 1
        await quiet(self, work)

    monkeypatch.setattr(backend.SQLiteDatabase, "_quiet", counted)
    passes = 0
    checkpoint = backend.Checkpointer._checkpoint

    def counted_pass(self: Any, mode: str) -> Any:
        nonlocal passes
        result = checkpoint(self, mode)
        passes += 1
        return result

    monkeypatch.setattr(backend.Checkpointer, "_checkpoint", counted_pass)
    path = tmp_path / "short.db"
    url = f"sqlite:///{path}"
    await upgrade_async(url)
    db = SQLiteDatabase(url)
    wal = path.with_name(path.name + "-wal")
    try:
        # Steady writes until the log has restarted: its file is past WAL_RESET_SIZE now.
        first = log_restarts(wal)
        async with asyncio.timeout(60):
            for i in itertools.count():
                if log_restarts(wal) >= first + 1 and wal.stat().st_size > 256 * 1024:
                    break
                async with db.write() as conn:
                    await conv_repo.insert_conversation(conn, conversation(f"burst-{i}"))
        # Then a light load: a write, then a checkpoint, ten times: a few pages of log.
        quiet_windows = 0
        for i in range(10):
            async with db.write() as conn:
                await conv_repo.insert_conversation(conn, conversation(f"light-{i}"))
            seen = passes
            async with asyncio.timeout(10):
                while passes == seen:
                    await asyncio.sleep(0.005)
    finally:
        await db.close()
    # Judged by the file's size, each of the ten passes would have called for one. A pass of
    # the burst still under way when the light load began may call for one, rightly (its
    # log was long): seen once in a full run on a busy machine.
    assert quiet_windows <= 1


async def test_checkpoints_go_on_after_an_unexpected_error_in_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass that fails with an error nobody planned for (a bug, say) is logged with its
    traceback, and the checkpoints go on: were their task to end, the log would grow
    without bound and the server would not say why."""
    from tertulia.storage import sqlite as backend

    monkeypatch.setattr(backend, "CHECKPOINT_INTERVAL", 0.01)
    checkpoint = backend.Checkpointer._checkpoint
    passes: list[str] = []

    def first_pass_fails(self: Any, mode: str) -> Any:
        passes.append(mode)
        if len(passes) == 1:
            raise RuntimeError("a bug in the first pass")
        return checkpoint(self, mode)

    monkeypatch.setattr(backend.Checkpointer, "_checkpoint", first_pass_fails)
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    await upgrade_async(url)
    db = SQLiteDatabase(url)
    try:
        with watch_logs() as logs:
            async with db.write() as conn:
                await conv_repo.insert_conversation(conn, conversation("before"))
            failed = await logs.wait_for(lambda e: e["event"] == "sqlite checkpoint crashed")
            assert failed["log_level"] == "error"
            assert failed.get("exc_info")
            async with db.write() as conn:
                await conv_repo.insert_conversation(conn, conversation("after"))
            async with asyncio.timeout(10):
                while len(passes) < 2:
                    await asyncio.sleep(0.005)
    finally:
        await db.close()
    assert committed_names(tmp_path / "crash.db") == {"before", "after"}


async def test_a_failing_first_use_case_leaves_the_others_a_new_batch(
    db: SQLiteDatabase, tmp_path: Path
) -> None:
    """The batch's first use case has no savepoint: its failure rolls back the transaction
    (it was alone in it), and the use cases ready behind it commit in a new one."""
    statements: list[str] = []
    db._writer.set_trace_callback(statements.append)
    results = await outcomes(db, ("dropped", True), ("kept-1", False), ("kept-2", False))
    assert results == ["RuntimeError", "NoneType", "NoneType"]
    assert committed_names(tmp_path / "group.db") == {"kept-1", "kept-2"}
    assert statements.count("ROLLBACK") == 1
    assert statements.count("COMMIT") == 1
    assert statements.count("SAVEPOINT use_case") == 1  # kept-2 joined kept-1's batch


async def test_a_use_case_cancelled_while_waiting_for_the_commit_leaves_the_others(
    db: SQLiteDatabase, tmp_path: Path
) -> None:
    """Three use cases share a commit; one is cancelled while it waits for it. The others
    return normally once it is done, and all three are stored (the statements of the
    cancelled one had run: it is the commit that it no longer waits for)."""
    waiting = asyncio.Event()

    async def write_then_wait(name: str) -> None:
        async with db.write() as conn:
            await conv_repo.insert_conversation(conn, conversation(name))
            waiting.set()

    tasks = [asyncio.create_task(write_then_wait(n)) for n in ("a", "b", "c")]
    await waiting.wait()
    await asyncio.sleep(0)  # every block has ended its turn and waits for the commit
    tasks[1].cancel()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
    assert [type(r).__name__ for r in results] == ["NoneType", "CancelledError", "NoneType"]
    assert committed_names(tmp_path / "group.db") == {"a", "b", "c"}


async def test_a_waiter_asked_for_after_the_outcome_has_it_at_once() -> None:
    """A batch's waiters end with its outcome, also one asked for once it is known."""
    loop = asyncio.get_running_loop()
    committed, failed = _Batch(loop), _Batch(loop)
    early = committed.waiter()
    committed.settle()
    failed.settle(RuntimeError("rolled back"))
    failed.settle()  # the first outcome stands
    assert await early is None
    assert await committed.waiter() is None
    with pytest.raises(RuntimeError, match="rolled back"):
        await failed.waiter()
