"""The registry of conversation controllers: one ``Chat`` per conversation per process
(DESIGN), in bounded memory."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from support.rest import PersonFactory
from support.server import LiveServer, live_server
from support.waiting import until
from tertulia import chats


async def _new_conversation(server: LiveServer, people: PersonFactory, name: str) -> str:
    person = people(server)
    response = await person.create(nickname=name, name=name, bots=["ECHO"])
    assert response.status_code == 201, response.text
    assert person.conversation_id is not None
    return person.conversation_id


async def test_a_controller_in_use_stays_the_only_one_though_the_cache_dropped_it(
    server: LiveServer, people: PersonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A socket keeps its conversation's ``Chat`` for as long as it is open; when more
    conversations than the cache holds are used meanwhile, the next request for that
    conversation must get the same ``Chat``, not a second one with its own lock and its
    own (stale) participants."""
    registry = server.registry
    monkeypatch.setattr(registry, "_cache_size", 2)
    first = await _new_conversation(server, people, "first")
    held = await registry.get(first)  # as an open socket's handler holds it
    for i in range(3):
        await registry.get(await _new_conversation(server, people, f"other{i}"))
    assert await registry.get(first) is held


async def test_a_controller_nobody_uses_is_let_go_once_the_cache_dropped_it(
    server: LiveServer, people: PersonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = server.registry
    monkeypatch.setattr(registry, "_cache_size", 2)
    first = await _new_conversation(server, people, "first")
    gone = weakref.ref(await registry.get(first))
    for i in range(3):
        await registry.get(await _new_conversation(server, people, f"other{i}"))
    gc.collect()
    assert gone() is None
    assert (await registry.get(first)) is not None  # loaded again when asked for


async def test_closing_leaves_nothing_to_publish_later(
    make_settings: Any, people: PersonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A presence ``state`` frame waiting for its moment when the server stops is dropped,
    not published later through a broker that is closed by then (Redis would open a new
    connection, left unclosed)."""
    monkeypatch.setattr(chats, "STATE_DELAY", 60.0)
    async with live_server(make_settings()) as server:
        alice = people(server)
        assert (await alice.create(nickname="alice", name="room", bots=[])).status_code == 201
        assert alice.conversation_id is not None
        await alice.connect()  # her arrival schedules a presence state, 60 s on
        chat = await server.registry.get(alice.conversation_id)
        assert chat is not None
        await until(lambda: chat.state_pending)
        registry = server.registry
    assert not chat.state_pending
    assert chat._state_timer is None
    assert not registry._background


async def test_a_background_task_failing_in_an_outage_is_a_sampled_warning(
    server: LiveServer,
) -> None:
    """A fire-and-forget task (a runner's wake-up, a delayed state frame) that meets Redis
    or the database out of reach is an outage, said as one: a warning now and then, no
    traceback (chaos QA: one per task, 210 in a minute's outage); any other failure is
    still an error with its traceback."""
    import asyncio

    from support.bots import watch_logs
    from tertulia.errors import BrokerUnavailable

    async def unreachable() -> None:
        raise BrokerUnavailable("ConnectionError: refused")

    async def broken() -> None:
        raise ValueError("a bug")

    with watch_logs() as logs:
        for work in (unreachable, unreachable, broken):
            task = asyncio.create_task(work(), name=work.__name__)
            server.registry.background(task)
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.sleep(0)  # (its done callback)
    failures = [e for e in logs.entries if "background task failed" in e["event"]]
    assert [(e["log_level"], "exc_info" in e) for e in failures] == [
        ("warning", False),
        ("error", True),
    ], failures
    assert failures[0]["task"] == "unreachable"
