"""``retention_days`` (tertulia/retention.py): the server deletes idle conversations itself,
closing their sockets at once, and keeps the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support.aging import age
from support.blab import talking
from support.bots import watch_logs
from support.server import live_server
from support.waiting import until
from tertulia import retention
from tertulia.errors import ConfigurationError
from tertulia.settings import load_settings


async def test_a_sweep_deletes_the_idle_and_closes_their_sockets(
    make_settings: Any, people: Any
) -> None:
    """An idle conversation goes, files included, and its open socket is closed with 4404
    at once (no write needed, with the in-process broker too); an active one on the same
    server goes on."""
    settings = make_settings(retention_days=30)
    with watch_logs() as logs:
        async with live_server(settings) as server:
            alice, bob = people(server), people(server)
            alice_socket = await talking(alice, "alice")
            attached = await alice.http.post(
                f"/conversations/{alice.conversation_id}/messages/",
                data={"type": "A", "local_id": "f1"},
                files={"file": ("notes.txt", b"some notes", "text/plain")},
            )
            assert attached.status_code == 201
            bob_socket = await talking(bob, "bob")
            await age(server.registry.db, alice.conversation_id)

            done = await server.app.state.retention.sweep()

            assert (done.conversations, done.files) == (1, 1)
            assert await alice_socket.closed_with() == 4404
            answer = await alice.http.get(f"/conversations/{alice.conversation_id}/")
            assert answer.status_code == 404
            directory = Path(settings.media_root) / "chat"
            assert not (directory / f"chat_{alice.conversation_id.replace('-', '')}").exists()
            await bob_socket.say("still here")
            await bob_socket.message(text="STILL HERE")
            assert (await server.app.state.retention.sweep()).conversations == 0
    swept = [e for e in logs.entries if e["event"] == "retention: idle conversations deleted"]
    assert [(e["conversations"], e["files"]) for e in swept] == [(1, 1)]
    assert logs.errors() == []


async def test_the_server_sweeps_as_it_starts(make_settings: Any, people: Any) -> None:
    """Started on a database holding a long-idle conversation, the server deletes it by
    itself; without ``retention_days`` nothing is deleted."""
    settings = make_settings()
    async with live_server(settings) as server:
        old, recent = people(server), people(server)
        for person, name in ((old, "old"), (recent, "recent")):
            assert (await person.create(nickname=name, name=name, bots=[])).status_code == 201
        await age(server.registry.db, old.conversation_id)
        assert server.app.state.retention is None

    with watch_logs() as logs:
        kept = settings.model_copy(update={"retention_days": 30.0})
        async with live_server(kept) as server:
            await logs.wait_for(lambda e: e["event"] == "retention: idle conversations deleted")
            rooms = (await people(server).http.get("/conversations/")).json()
            ids = [c["id"] for c in (rooms["results"] if isinstance(rooms, dict) else rooms)]
            assert ids == [recent.conversation_id]


def test_retention_days_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="retention_days"):
        load_settings(None, retention_days=0)


async def test_a_failed_sweep_is_logged_and_tried_again(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep that fails (the database away, say) is logged with its traceback and tried
    again after RETRY_AFTER; the server goes on meanwhile."""
    calls: list[int] = []
    real = retention.erase

    async def failing_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database away")
        return await real(*args, **kwargs)

    monkeypatch.setattr(retention, "erase", failing_once)
    monkeypatch.setattr(retention, "RETRY_AFTER", 0.05)
    with watch_logs() as logs:
        async with live_server(make_settings(retention_days=30)):
            failed = await logs.wait_for(lambda e: e["event"] == "retention: sweeping failed")
            await until(lambda: len(calls) >= 2)
    assert failed["log_level"] == "error"
