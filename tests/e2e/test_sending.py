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


def overlap(one: dict[str, float], other: dict[str, float]) -> bool:
    """Whether two bounding boxes overlap."""
    return (
        one["x"] < other["x"] + other["width"]
        and other["x"] < one["x"] + one["width"]
        and one["y"] < other["y"] + other["height"]
        and other["y"] < one["y"] + one["height"]
    )


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


async def test_a_text_refused_while_the_server_is_unavailable_waits_for_it(
    make_settings, open_tab
) -> None:
    """A text refused as `unavailable` (the database out of reach) says it waits for the
    server, with no error, and goes again after each retry_after for as long as the outage
    lasts (more times than a throttled text would), then arrives once; the texts after it
    wait behind it."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", [])
        page = tab.page
        refusals = 0

        async def outage(route: Any) -> None:
            # The server's database is away for the first eight tries of the first text.
            upstream = route.connect_to_server()

            def from_page(payload: str | bytes) -> None:
                nonlocal refusals
                frame = json.loads(payload)
                if frame.get("text") == "during the outage" and refusals < 8:
                    refusals += 1
                    error = {
                        "code": "unavailable",
                        "detail": "The database cannot be reached; try again shortly.",
                        "local_id": frame["local_id"],
                        "retry_after": 1,
                    }
                    route.send(json.dumps({"error": error}))
                else:
                    upstream.send(payload)

            route.on_message(from_page)

        await page.route_web_socket("**/ws/chat/**", outage)
        await page.reload()
        await page.locator("#composer-input").wait_for()
        await tab.send("during the outage")
        await tab.send("after it")
        waiting = page.locator("li.pending", has_text="during the outage")
        await expect(waiting).to_contain_text("Waiting for the server…")
        await expect(tab.bubble("during the outage", mine=True)).to_have_count(1, timeout=20_000)
        await expect(tab.bubble("after it", mine=True)).to_have_count(1)
        assert refusals == 8
        assert await stored_texts(tab, server.base_url) == ["during the outage", "after it"]
        await expect(page.locator("li.pending")).to_have_count(0)
        await expect(page.locator(".notice-error")).to_have_count(0)


async def test_a_quote_of_a_message_not_available_says_so_in_words(make_settings, open_tab) -> None:
    """A text quoting a message the server does not show (a bot's answer never approved)
    is refused with a reason a person reads, in their language, no field name; with no
    "Try again" that could only fail again, but Delete and sending it without the quote."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url, locale="pt-BR")
        page = tab.page
        await page.goto("/")
        await page.fill("#nickname", "alice")
        await page.locator("#nickname").press("Enter")
        await page.locator("#composer-input").wait_for()
        for number in range(12):  # the failed text at the bottom, where notices show
            await tab.send(f"earlier {number}")
        await expect(tab.bubble("earlier 11", mine=True)).to_have_count(1)
        # (the page cannot quote what it is not shown: a text saved by another tab can)
        await page.evaluate(
            """() => {
              const id = sessionStorage.getItem("tertulia.conversation");
              localStorage.setItem(`tertulia.pending.${id}`, JSON.stringify([{
                localId: "quotes-a-hidden-one", text: "about that", time: new Date().toISOString(),
                quotedId: "01a2496f-9bdc-7573-b480-8ee3f898b651",
              }]));
            }"""
        )
        await page.reload()
        failed = page.locator("li.pending.status-failed", has_text="about that")
        await expect(failed).to_contain_text("A mensagem que você respondeu não está disponível.")
        await expect(failed).not_to_contain_text("quoted_message_id")
        # The notice saying so leaves the reason under the text readable.
        notice = await page.locator(".notice-error").bounding_box()
        reason = await failed.locator(".failure span").first.bounding_box()
        assert notice
        assert reason
        assert not overlap(notice, reason), (notice, reason)
        await expect(failed.get_by_role("button", name="Tentar de novo")).to_have_count(0)
        await expect(failed.get_by_role("button", name="Apagar")).to_have_count(1)
        await failed.get_by_role("button", name="Enviar sem a citação").click()
        await expect(tab.bubble("about that", mine=True)).to_have_count(1)
        await expect(page.locator("li.pending")).to_have_count(0)
