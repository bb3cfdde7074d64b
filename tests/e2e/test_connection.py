"""What the page says about its connection when the server accepts a socket and closes it
at once: an outage of its database or broker (1013), too many tabs of the person (4429)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from e2e.browser import Tab, expect
from support.server import live_server

pytestmark = pytest.mark.asyncio(loop_scope="session")

WATCH_NOTICES = """() => {
  window.noticesSeen = [];
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (node.textContent) window.noticesSeen.push(node.textContent);
      }
    }
    // (a notice's words come a moment after the notice: in it, hence the subtree)
  }).observe(document.getElementById("notices"), { childList: true, subtree: true });
}"""
"""A page script: from now on, window.noticesSeen lists the text of every notice shown."""


UNREACHABLE = "database unreachable: reconnect later"


async def notices_seen(tab: Tab) -> list[str]:
    return await tab.page.evaluate("window.noticesSeen")


async def test_sockets_closed_at_once_are_not_a_reconnection(make_settings, open_tab) -> None:
    """During an outage where each socket is accepted and closed with 1013, the page says
    the connection is lost and never "Connected again."; it says so once a socket is
    served again."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", [])
        page = tab.page
        outage = False
        refused = 0
        three_refused = asyncio.Event()
        sockets: list[Any] = []
        tasks: set[asyncio.Future[None]] = set()

        def route(socket: Any) -> None:
            nonlocal refused
            sockets.append(socket)
            upstream = socket.connect_to_server()
            if not outage:
                return
            refused += 1
            if refused == 3:
                three_refused.set()

            # Accepted, then closed before the server's first frame reaches the page.
            def close(payload: str | bytes) -> None:
                tasks.add(asyncio.ensure_future(socket.close(code=1013, reason=UNREACHABLE)))

            upstream.on_message(close)

        await page.route_web_socket("**/ws/chat/**", route)
        await page.reload()
        await page.locator("#composer-input").wait_for()
        # (served through the route: the state frame says who is online; the message box
        # shows before the socket is open, and closing "the last socket" then found none)
        await expect(page.locator(".subtitle")).to_have_text("1 online")
        await expect(page.locator(".banner-connection")).to_be_hidden()
        await page.evaluate(WATCH_NOTICES)

        outage = True
        await sockets[-1].close(code=1013, reason=UNREACHABLE)
        await asyncio.wait_for(three_refused.wait(), timeout=15)
        await expect(page.locator(".banner-connection")).to_contain_text("Connection lost")
        assert not any("Connected again" in text for text in await notices_seen(tab))

        outage = False
        await page.get_by_role("button", name="Retry now").click()
        await expect(page.locator(".notice", has_text="Connected again.")).to_have_count(1)
        await expect(page.locator(".banner-connection")).to_be_hidden()


async def test_a_tab_over_the_socket_cap_says_so_and_connects_later(
    make_settings, open_tab
) -> None:
    """A tab whose socket the server closes with 4429 (too many of the person's tabs on the
    conversation) says to close one, without "Connected again."; it keeps trying slowly and
    connects once the other tab closes, then sends what was written meanwhile."""
    async with live_server(make_settings(ws_max_sockets_per_participant=1)) as server:
        first = await open_tab(server.base_url)
        await first.start_conversation("alice", [])
        page = await first.context.new_page()  # the same person's second tab
        sockets: list[Any] = []
        page.on("websocket", lambda socket: sockets.append(socket))
        await page.goto("/")
        banner = page.locator(".banner-connection")
        await expect(banner).to_contain_text("open in too many tabs or windows")
        await expect(banner).not_to_contain_text("Reconnecting in")
        await expect(page.locator(".notice", has_text="Connected again.")).to_have_count(0)
        tried = len(sockets)
        await page.fill("#composer-input", "from the second tab")
        await page.press("#composer-input", "Enter")

        await first.page.close()
        second = Tab(first.context, page)
        await expect(second.bubble("from the second tab", mine=True)).to_have_count(
            1, timeout=20_000
        )
        await expect(banner).to_be_hidden()
        assert len(sockets) - tried <= 2  # slowly: not every half second


async def test_going_offline_is_a_lost_connection_at_once(make_settings, open_tab) -> None:
    """The browser going offline says the connection is lost at once, and who is online
    is no longer claimed; back online, the page connects at once, sends what was written
    meanwhile and shows presence again."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        page = tab.page
        subtitle = page.locator(".subtitle")
        banner = page.locator(".banner-connection")
        await expect(subtitle).to_have_text("ECHO · 1 online")
        await expect(page.locator(".people .is-online")).to_have_count(1)

        await tab.context.set_offline(True)
        # At once, not after the 10 s a silent socket is given.
        await expect(banner).to_contain_text("Connection lost", timeout=3_000)
        await expect(subtitle).to_have_text("ECHO")
        await expect(page.locator(".people .is-online")).to_have_count(0)
        await expect(page.locator(".people .person-state", has_text="online")).to_have_count(0)
        await tab.send("written offline")
        await expect(page.locator("li.pending", has_text="written offline")).to_have_count(1)

        await tab.context.set_offline(False)
        await expect(tab.bubble("WRITTEN OFFLINE", mine=False)).to_have_count(1, timeout=5_000)
        await expect(banner).to_be_hidden()
        await expect(subtitle).to_have_text("ECHO · 1 online")
        await expect(page.locator(".people .is-online")).to_have_count(1)
