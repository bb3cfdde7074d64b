"""Plain-method bots that opt into the event loop (``runs_on_loop = True``): no worker
thread, their sends are tasks, and a delivery is done only once its sends are stored."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from support.bots import ON_LOOP_CALLS
from support.managers import delivery_rows, start
from support.server import live_server
from tertulia.bots.builtin import (
    CalcOrEchoManagerBot,
    PreSelectManagerBot,
    TransparentManagerBot,
)
from tertulia.bots.runner import ASYNC_CONCURRENCY, SYNC_CONCURRENCY, concurrency, runs_on_loop
from tertulia.settings import BotSpec

OURS = "support.bots"


async def test_an_on_loop_bot_is_called_on_the_loop_and_its_answer_stored(
    make_settings: Any, people: Any
) -> None:
    bots = {"Quick": {"module": OURS, "class": "OnLoopEchoBot"}}
    async with live_server(make_settings(bots=bots)) as server:
        _, socket, ids = await start(server, people, ["Quick"])
        local_id = await socket.say("hello")
        sent = await socket.message(local_id=local_id)
        answer = await socket.message(quoted_message_id=sent["id"])
        assert answer["text"] == "HELLO"
        thread, returned = ON_LOOP_CALLS[sent["id"]]
        assert thread == threading.get_ident()  # the server runs in the test's loop
        assert isinstance(returned, asyncio.Future)
        await server.registry.runner.idle()
        rows = await delivery_rows(server, ids["Quick"])
        (row,) = [r for r in rows if r.kind == "message" and r.payload["id"] == sent["id"]]
        assert (row.status, row.attempts) == ("done", 1)


async def test_a_refused_send_fails_the_delivery(make_settings: Any, people: Any) -> None:
    """The runner waits for an on-loop bot's sends: one the server refuses is the call's
    failure, recorded at once (another attempt would be refused the same way), as a thread
    bot's would be."""
    bots = {"Bad": {"module": OURS, "class": "OnLoopBadSenderBot", "retries": 1}}
    async with live_server(make_settings(bots=bots)) as server:
        alice, socket, ids = await start(server, people, ["Bad"])
        sent = await socket.message(local_id=await socket.say("hello"))
        await server.registry.runner.idle()
        rows = await delivery_rows(server, ids["Bad"])
        (row,) = [r for r in rows if r.kind == "message" and r.payload["id"] == sent["id"]]
        assert (row.status, row.attempts) == ("failed", 1)
        assert "quoted message does not exist" in row.last_error
        history = (await alice.history()).json()["results"]
        assert not [m for m in history if m.get("sender_id") == ids["Bad"]]


def test_the_example_managers_run_on_the_loop_with_async_concurrency() -> None:
    spec = BotSpec(module="tertulia.bots.builtin", class_name="TransparentManagerBot")
    for cls in (TransparentManagerBot, CalcOrEchoManagerBot, PreSelectManagerBot):
        assert runs_on_loop(cls)
        assert concurrency(spec, cls) == ASYNC_CONCURRENCY

    class Plain:
        def receive_message(self, message: Any) -> None: ...

    assert not runs_on_loop(Plain)
    assert concurrency(spec, Plain) == SYNC_CONCURRENCY
