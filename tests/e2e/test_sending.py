"""Texts under a rate limit or an outage of the server's database: each arrives, once and
in the order written, and none is marked "Not sent" for having had to wait."""

from __future__ import annotations

import json
from typing import Any

import pytest

from e2e.browser import Tab, expect
from e2e.test_dead_connection import stored_texts
from support.server import live_server

pytestmark = pytest.mark.asyncio(loop_scope="session")


def watch_sent_texts(tab: Tab) -> list[str]:
    """The texts of the frames the page sends from now on, in order."""
    sent: list[str] = []

    def on_socket(socket: Any) -> None:
        socket.on("framesent", lambda payload: sent.append(json.loads(payload).get("text")))

    tab.page.on("websocket", on_socket)
    return sent


async def test_texts_written_under_a_rate_limit_go_in_order(make_settings, open_tab) -> None:
    """Seven texts written at once under a limit of one a second all arrive, in the order
    written: the queue goes one text at a time, paced by the server's retry_after, so no
    later text overtakes one that waits and none fails for the refusals of its queue."""
    settings = make_settings(rate_limits={"message": "1/second"})
    async with live_server(settings) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", [])
        sent = watch_sent_texts(tab)
        lines = [f"line {number}" for number in range(7)]
        for line in lines:
            await tab.send(line)
        await expect(tab.bubble(lines[-1], mine=True)).to_have_count(1, timeout=20_000)
        assert await stored_texts(tab, server.base_url) == lines
        await expect(tab.page.locator("li.pending")).to_have_count(0)
        # Sent again only after its refusal, never behind a later one.
        order = [lines.index(text) for text in sent]
        assert order == sorted(order), sent
