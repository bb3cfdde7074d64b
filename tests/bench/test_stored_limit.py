"""The stored limit's storage (``bench.stored``): it must store as Tertulia does, or the
benchmark's reference for "what storing alone leaves" measures something else."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bench.echo_server import message_body
from bench.stored import Store
from support.sqlite_log import log_restarts
from tertulia.domain.ids import new_id

CONVERSATIONS = 8


async def test_its_log_restarts_under_steady_writes_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closed loops of texts and answers that never pause still let the log start again
    from its beginning (Tertulia's quiet windows), as in Tertulia's server. Before, the
    stored limit only ran passive checkpoints: its log grew without end (2.7 GB in 15 s of
    the throughput scenario), and its writes cost it twice Tertulia's system time."""
    from tertulia.storage import sqlite as backend

    monkeypatch.setattr(backend, "CHECKPOINT_AFTER", 25)
    monkeypatch.setattr(backend, "WAL_RESET_SIZE", 256 * 1024)
    path = tmp_path / "stored.db"
    store = await asyncio.to_thread(Store, path)  # it migrates with asyncio.run()
    wal = path.with_name(path.name + "-wal")
    answered = 0
    enough = asyncio.Event()

    async def closed_loop() -> None:
        nonlocal answered
        person = {"id": new_id(), "name": "p", "type": "H"}
        bot = {"id": new_id(), "name": "ECHO", "type": "B"}
        conversation = new_id()
        await store.create(conversation, [person, bot])
        for turn in range(100_000):
            if enough.is_set():
                return
            text = message_body(person["id"], True, "x" * 200, f"l{turn}", None)
            text["seq"] = store.next_seq(conversation)
            delivery = await store.message(conversation, text, bot["id"])
            assert delivery is not None
            reply = message_body(bot["id"], False, "X" * 200, new_id(), text["id"])
            reply["seq"] = store.next_seq(conversation)
            await store.answer(conversation, reply, delivery)
            answered += 1

    async def restarts_twice() -> None:
        first = log_restarts(wal)
        while log_restarts(wal) < first + 2:
            await asyncio.sleep(0.01)
        enough.set()

    loops = [asyncio.create_task(closed_loop()) for _ in range(CONVERSATIONS)]
    try:
        async with asyncio.timeout(30):
            await restarts_twice()
            await asyncio.gather(*loops)
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    with sqlite3.connect(path) as check:
        (messages,) = check.execute("SELECT count(*) FROM messages").fetchone()
        (done,) = check.execute("SELECT count(*) FROM deliveries WHERE status = 'done'").fetchone()
    assert messages == 2 * answered
    assert done == answered
