"""The working indicator: a ``state`` frame with ``working`` while a bot handles a message."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from external.fakes import (
    TIMEOUT,
    PersonFactory,
    Recorder,
    SettingsFactory,
    bot_id,
    external_bot,
    serve,
)
from support.bots import bot_person
from support.server import live_server
from tertulia.domain.routing import HUMANS
from tertulia.realtime.broker import Event
from tertulia.realtime.memory import MemoryBroker
from tertulia.working import WorkingIndicator


async def test_indicator_coalesces_bursts_and_tells_people_only() -> None:
    """Quick deliveries tell nobody; a long one gives one 'working' and one 'idle' frame,
    addressed to people only."""
    broker = MemoryBroker()
    frames: list[Event] = []
    changed = asyncio.Event()

    def collect(event: Event) -> None:
        frames.append(event)
        changed.set()

    await broker.subscribe("c", collect)

    async def state_of(conversation_id: str) -> dict[str, Any]:
        return {"participants": [], "conversation_name": None, "online": []}

    indicator = WorkingIndicator(broker, state_of, delay=0.05)
    for _ in range(3):  # a burst, all within the delay
        indicator.change("c", "bot", True)
        indicator.change("c", "bot", False)
    indicator.change("c", "bot", False)  # an end without a start is ignored
    indicator.change("c", "bot", True)
    indicator.change("c", "other", True)
    indicator.change("c", "other", False)

    async def next_frame() -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT):
            while not frames:
                changed.clear()
                await changed.wait()
        event = frames.pop(0)
        assert event.audience == frozenset({HUMANS})
        state: dict[str, Any] = orjson.loads(event.frame)["state"]
        return state

    working = await next_frame()
    assert working["working"] == ["bot"]
    assert set(working) == {"participants", "conversation_name", "online", "working"}
    assert indicator.shown("c") == ["bot"]
    indicator.change("c", "bot", False)
    assert (await next_frame())["working"] == []
    assert frames == []
    await indicator.close()


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", "s3cret")


async def test_people_see_a_slow_bot_working(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """While a webhook bot sits on a message people get working: [it], then []; the bot's
    own socket gets no such frame, and a trigger-only external bot never shows."""
    release = asyncio.Event()

    async def hook(request: Request) -> Response:
        body = orjson.loads(await request.body())
        if not body["message"]["sent_by_human"]:
            return Response(status_code=204)
        await release.wait()
        reply = {"type": "T", "text": "done", "quoted_message_id": body["message"]["id"]}
        return JSONResponse({"messages": [reply]})

    slow = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve(slow) as base, serve(Recorder()) as trigger_url:
        bots = {
            "Slow": {
                "module": "tertulia.bots.external",
                "class": "WebhookBot",
                "args": [f"{base}/hook", "TEST_WEBHOOK_SECRET"],
                "kwargs": {"timeout": TIMEOUT},
            },
            "Ext": external_bot(trigger_url),
        }
        async with live_server(make_settings(bots=bots)) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["Slow", "Ext"])
            slow_id = bot_id(created.json(), "Slow")
            assert alice.conversation_id is not None
            socket = await alice.connect()
            await socket.message(event="participant-joined")
            bot = await bot_person(server, alice.conversation_id, slow_id)
            bot_socket = await bot.connect()
            await bot_socket.state()

            # Let the deliveries of system messages settle: one that took long enough to
            # show (a loaded machine) must not be mistaken for the work below.
            await asyncio.wait_for(server.registry.runner.idle(), TIMEOUT)
            if server.registry.working.shown(alice.conversation_id):
                await socket.wait_for(lambda f: f.get("state", {}).get("working") == [])

            asked = await socket.message(local_id=await socket.say("take your time"))
            busy = await socket.wait_for(lambda f: f.get("state", {}).get("working") == [slow_id])
            assert {p["id"] for p in busy["state"]["participants"]} >= {slow_id}
            release.set()
            await socket.message(sender_id=slow_id, quoted_message_id=asked["id"])
            await socket.wait_for(lambda f: f.get("state", {}).get("working") == [])

            await socket.sync()
            shown = [
                f["state"]["working"] for f in socket.frames if "working" in f.get("state", {})
            ]
            assert shown[-2:] == [[slow_id], []]
            assert all(w in ([], [slow_id]) for w in shown)  # never the trigger-only bot
            await bot_socket.sync()
            assert not [f for f in bot_socket.frames if "working" in f.get("state", {})]
            await bot.close()
