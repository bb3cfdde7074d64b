"""WebSocket bots' trigger against an endpoint that does not take it."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from external.fakes import TIMEOUT, PersonFactory, SettingsFactory, bot_id, external_bot, serve
from support.bots import watch_logs
from support.server import live_server


async def test_redirected_trigger_is_a_failure(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A trigger answered 307 started nothing: it is retried and then logged as failed, not
    logged as "external bot triggered" with no bot ever coming."""
    asked = asyncio.Event()

    async def trigger(request: Request) -> Response:
        asked.set()
        return RedirectResponse("/elsewhere", status_code=307)

    app = Starlette(routes=[Route("/", trigger, methods=["POST"])])
    with watch_logs() as logs:
        async with serve(app) as base:
            settings = make_settings(bots={"Ext": external_bot(f"{base}/", retries=0)})
            async with live_server(settings) as server:
                alice = people(server)
                created = await alice.create(nickname="alice", bots=["Ext"])
                ext_id = bot_id(created.json(), "Ext")
                await asyncio.wait_for(asked.wait(), TIMEOUT)
                await asyncio.wait_for(server.registry.runner.idle(), TIMEOUT)
                events = [e.get("event") for e in logs.entries]
                assert "external bot triggered" not in events
                failed = [
                    e
                    for e in logs.entries
                    if e.get("event") == "bot delivery failed for good"
                    and e.get("participant_id") == ext_id
                ]
                assert len(failed) == 1, events
                assert "307" in failed[0]["error"]
