"""Internal bots run off the event loop with time limits: a bot that raises or never returns
stalls neither the conversation nor the server, and its failure is logged with ids
(PROTOCOL 6.2)."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support import bots as test_bots
from support.blab import Person, Socket
from support.bots import EventDict, LogWatcher, bots_with, watch_logs
from support.server import LiveServer, live_server
from tertulia.settings import Settings

PersonFactory = Callable[[LiveServer], Person]
SettingsFactory = Callable[..., Settings]


@pytest.fixture
def release_bots() -> Iterator[None]:
    """Blocked bots return when the test ends, so no worker thread outlives it."""
    test_bots.RELEASE.clear()
    yield
    test_bots.RELEASE.set()


async def _conversation_goes_on(socket: Socket, texts: list[str]) -> None:
    """Each text is echoed to its sender and answered by ECHO."""
    for text in texts:
        local_id = await socket.say(text)
        mine = await socket.message(local_id=local_id)
        answer = await socket.message(quoted_message_id=mine["id"])
        assert answer["text"] == text.upper()


def _failure_of(bot_id: str, conversation_id: str) -> Callable[[EventDict], bool]:
    def match(entry: EventDict) -> bool:
        return bool(
            entry.get("event") == "bot delivery failed for good"
            and entry.get("participant_id") == bot_id
            and entry.get("conversation_id") == conversation_id
        )

    return match


async def _run(
    make_settings: SettingsFactory,
    people: PersonFactory,
    logs: LogWatcher,
    cls: str,
    error: str,
) -> list[dict[str, Any]]:
    """Run the scenario; returns the bot's "bot call failed" lines."""
    settings = make_settings(bots=bots_with("Faulty", cls, timeout=0.3, retries=1))
    async with live_server(settings) as server:
        alice = people(server)
        created = await alice.create(nickname="alice", bots=["ECHO", "Faulty"])
        assert created.status_code == 201, created.text
        faulty_id = next(p["id"] for p in created.json()["participants"] if p["name"] == "Faulty")
        assert alice.conversation_id is not None
        socket = await alice.connect()
        await _conversation_goes_on(socket, ["first", "second"])

        failed = await logs.wait_for(_failure_of(faulty_id, alice.conversation_id))
        assert failed["log_level"] == "error"
        assert error in failed["error"]
        attempts = [
            e
            for e in logs.entries
            if e.get("event") == "bot call failed" and e.get("participant_id") == faulty_id
        ]
        assert attempts
        assert all(e["conversation_id"] == alice.conversation_id for e in attempts)

        await _conversation_goes_on(socket, ["third"])
        assert (await alice.http.get("/bots/")).status_code == 200
        other = people(server)
        assert (await other.create(nickname="dan", bots=["ECHO"])).status_code == 201
        await _conversation_goes_on(await other.connect(), ["elsewhere"])
    return attempts


async def test_raising_bot_does_not_stop_the_conversation(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A bot that raises is retried, then logged with its ids; ECHO and the socket go on.
    Each failed call is logged with its traceback, which names the line of the bot's code
    that raised (bot authors' QA: only the exception's text, no file or line)."""
    with watch_logs() as logs:
        attempts = await _run(make_settings, people, logs, "RaisingBot", "boom")
    for attempt in attempts:
        raised = attempt["exc_info"]
        assert isinstance(raised, RuntimeError)
        (where,) = [
            f for f in traceback.extract_tb(raised.__traceback__) if "support" in f.filename
        ]
        assert where.filename.endswith("bots.py")
        assert where.name == "receive_message"


async def test_blocking_bot_times_out(
    make_settings: SettingsFactory, people: PersonFactory, release_bots: None
) -> None:
    """A synchronous bot that never returns times out and is logged; nothing else waits.
    A timeout is said in words: no traceback (the runner's, which says nothing more)."""
    with watch_logs() as logs:
        attempts = await _run(make_settings, people, logs, "BlockingBot", "no answer within")
    assert all("exc_info" not in attempt for attempt in attempts)


async def test_hanging_async_bot_times_out(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """An async bot that awaits forever is cancelled at its timeout and logged."""
    with watch_logs() as logs:
        await _run(make_settings, people, logs, "AsyncHangingBot", "no answer within")
