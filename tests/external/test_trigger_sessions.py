"""One live instance of a WebSocket bot: a retried trigger's session ends the ones its
earlier attempts handed out (a retry after a trigger timed out), a call-back's leaves the
bot's session alone, and a session the bot never used lapses soon (PROTOCOL 6.3; bots QA,
A4)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from external.fakes import (
    PersonFactory,
    Recorder,
    SettingsFactory,
    as_bot,
    expiry,
    room_with_ext,
)
from tertulia.domain.times import utcnow


async def test_a_retried_trigger_ends_the_session_of_the_attempt_before_it(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """The first attempt reached the bot but failed (a 503 here; in QA, an answer later
    than the 5 s timeout, the bot starting all the same): the retry hands out a new
    session, and the first one no longer opens a socket, so only the retry's instance
    talks (before: both connected, and every greeting and answer came twice)."""
    recorder = Recorder()
    refusals = 1

    async def busy_at_first(scope: Any, receive: Any, send: Any) -> None:
        nonlocal refusals
        status = 503 if refusals else 200
        refusals = max(refusals - 1, 0)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    recorder.app = busy_at_first
    async with room_with_ext(make_settings, people, recorder=recorder, ext={"retries": 1}) as room:
        first, second = (r.json() for r in await recorder.wait_for(2))
        assert first["session"] != second["session"]
        with pytest.raises(InvalidStatus) as refused:
            await as_bot(room.server, people, first).connect()
        assert refused.value.response.status_code == 403
        bot = await as_bot(room.server, people, second).connect()
        await bot.state()


async def test_a_retried_trigger_closes_a_socket_open_on_an_earlier_attempts_session(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A bot's socket opened on a trigger attempt's session just as a retry went (the retry
    found no socket yet): the socket is closed with 4403, at once."""
    async with room_with_ext(make_settings, people) as room:
        (first,) = await room.recorder.wait_for(1)
        bot = await as_bot(room.server, people, first.json()).connect()
        await bot.state()
        newer = await room.server.registry.new_bot_session(
            room.created["id"], room.ext, trigger=True, replacing=[first.json()["session"]]
        )
        assert await bot.closed_with() == 4403
        await as_bot(room.server, people, {**first.json(), "session": newer}).connect()


async def test_a_call_back_leaves_the_bots_session_valid(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A call-back's trigger (a new delivery, not a retry) hands out a session and ends
    none: the SDK, reconnecting on its session while the call-back was on its way, was
    refused (403) and left, and the message that called it back was never answered
    (test_sdk_resume, 1 run in 12)."""
    async with room_with_ext(make_settings, people) as room:
        (first,) = await room.recorder.wait_for(1)
        await room.server.registry.new_bot_session(room.created["id"], room.ext, trigger=True)
        bot = await as_bot(room.server, people, first.json()).connect()
        await bot.state()


async def test_a_trigger_session_lasts_a_short_while_until_the_bot_uses_it(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A trigger's session, never used (the trigger failed, or the bot never came), lapses
    within minutes, not after bot_session_max_age (a day here); the bot's first socket
    renews it to bot_session_max_age."""
    async with room_with_ext(make_settings, people, bot_session_max_age=86_400) as room:
        (first,) = await room.recorder.wait_for(1)
        key = first.json()["session"]
        assert await expiry(room.server, key) <= utcnow() + timedelta(hours=1)
        bot = await as_bot(room.server, people, first.json()).connect()
        await bot.state()
        assert await expiry(room.server, key) > utcnow() + timedelta(hours=23)
