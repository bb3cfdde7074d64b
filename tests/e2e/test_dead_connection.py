"""A connection that dies without closing (a NAT forgetting it, a laptop's sleep): the page
notices, connects again, and loses and repeats nothing."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.browser import CONVERSATION_ID, Tab, expect
from e2e.proxy import silencing_proxy
from support.server import live_server
from support.waiting import until

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def stored_texts(tab: Tab, base_url: str) -> list[str]:
    """The texts of the page's conversation as the server holds them (asked directly)."""
    conversation_id = await tab.page.evaluate(CONVERSATION_ID)
    url = f"{base_url}/api/chat/conversations/{conversation_id}/messages/?limit=200"
    response = await tab.context.request.get(url)
    return [m["text"] for m in (await response.json())["results"] if m["type"] == "T"]


def watch_sockets(tab: Tab) -> list[str]:
    """The URLs of the sockets the page opens from now on."""
    urls: list[str] = []
    tab.page.on("websocket", lambda socket: urls.append(socket.url))
    return urls


@pytest.mark.parametrize("upstream", [True, False], ids=["both_ways", "answers_lost"])
async def test_a_text_sent_into_a_dead_connection_arrives_once(
    make_settings: Any, open_tab: Any, upstream: bool
) -> None:
    """A text whose echo does not come gives a silent connection away: the page connects
    again, resuming after what it had, and the text is stored and shown exactly once,
    whether it never reached the server or only its answers were lost."""
    async with live_server(make_settings()) as server, silencing_proxy(server.port) as proxy:
        tab = await open_tab(proxy.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        await tab.send("before")
        await expect(tab.bubble("BEFORE")).to_have_count(1)
        sockets = watch_sockets(tab)

        assert proxy.silence(upstream=upstream)
        await tab.send("anyone there?")
        pending = tab.page.locator("li.pending", has_text="anyone there?")
        await expect(pending).to_contain_text("Sending…")

        # The watchdog gives the echo 10 s.
        await expect(pending).to_have_count(0, timeout=30_000)
        await expect(tab.bubble("anyone there?", mine=True)).to_have_count(1)
        await expect(tab.bubble("ANYONE THERE?", mine=False)).to_have_count(1)
        await expect(tab.page.locator(".banner-connection")).to_be_hidden()
        assert len(sockets) == 1
        assert "?after=" in sockets[0]
        stored = await stored_texts(tab, server.base_url)
        assert stored.count("anyone there?") == 1
        assert stored.count("ANYONE THERE?") == 1


@pytest.mark.parametrize("trigger", ["wake", "online"])
async def test_a_dead_connection_is_replaced_after_a_wake_or_a_new_network(
    make_settings: Any, open_tab: Any, trigger: str
) -> None:
    """After a sleep (the page's timers ran minutes late) or when the browser comes back
    online, the page connects again without waiting for a text to go unanswered: what was
    said meanwhile shows, once."""
    async with live_server(make_settings()) as server, silencing_proxy(server.port) as proxy:
        tab = await open_tab(proxy.base_url)
        await tab.page.clock.install()
        await tab.start_conversation("alice", [])
        await tab.send("before")
        await expect(tab.bubble("before")).to_have_count(1)
        sockets = watch_sockets(tab)

        assert proxy.silence()
        # Written meanwhile on another device (straight to the server).
        conversation_id = await tab.page.evaluate(CONVERSATION_ID)
        posted = await tab.context.request.post(
            f"{server.base_url}/api/chat/conversations/{conversation_id}/messages/",
            data={"type": "T", "text": "from my phone", "local_id": "phone1"},
        )
        assert posted.status == 201
        if trigger == "wake":
            await tab.page.clock.fast_forward("03:00")  # the lid closed for three minutes
        else:
            await tab.page.clock.fast_forward(5000)  # (a socket just made is not replaced)
            await tab.page.evaluate("window.dispatchEvent(new Event('online'))")

        await expect(tab.bubble("from my phone")).to_have_count(1)
        assert len(sockets) == 1
        assert "?after=" in sockets[0]
        await tab.send("after")
        await expect(tab.bubble("after")).to_have_count(1)
        assert (await stored_texts(tab, server.base_url)).count("from my phone") == 1


async def test_a_new_socket_into_a_dead_network_is_given_up_and_tried_again(
    make_settings: Any, open_tab: Any
) -> None:
    """The network dies: the watchdog replaces the silent socket, but the new one's
    handshake never ends either. It is given up in time and tried again, so once the
    network is back the text goes, once."""
    async with live_server(make_settings()) as server, silencing_proxy(server.port) as proxy:
        tab = await open_tab(proxy.base_url)
        await tab.page.clock.install()
        await tab.start_conversation("alice", ["ECHO"])
        await tab.send("before")
        await expect(tab.bubble("BEFORE")).to_have_count(1)
        sockets = watch_sockets(tab)

        proxy.cut()
        await tab.send("into the void")
        pending = tab.page.locator("li.pending", has_text="into the void")
        await expect(pending).to_have_count(1)
        await tab.page.clock.fast_forward(11_000)  # the echo owed for longer than 10 s
        await until(lambda: len(sockets) == 1)  # (its handshake hangs)
        proxy.restore()
        await tab.page.clock.fast_forward(11_000)  # the handshake given up
        await tab.page.clock.fast_forward(2_000)  # (the backoff's first wait)

        await expect(tab.bubble("INTO THE VOID", mine=False)).to_have_count(1)
        await expect(pending).to_have_count(0)
        assert len(sockets) == 2
        stored = await stored_texts(tab, server.base_url)
        assert stored.count("into the void") == 1


async def test_a_slow_answer_to_a_text_sent_after_a_quiet_while_is_waited_for(
    make_settings: Any, open_tab: Any
) -> None:
    """A text answered, five seconds of quiet, then a text the server answers slowly: it
    gets its own ten seconds, counted from its sending; the healthy socket is kept."""
    async with live_server(make_settings()) as server, silencing_proxy(server.port) as proxy:
        tab = await open_tab(proxy.base_url)
        await tab.page.clock.install()
        await tab.start_conversation("alice", [])
        await tab.send("first")
        await expect(tab.page.locator("li.pending")).to_have_count(0)
        sockets = watch_sockets(tab)
        await tab.page.clock.fast_forward(5_000)

        proxy.hold()
        await tab.send("second")
        pending = tab.page.locator("li.pending", has_text="second")
        await expect(pending).to_have_count(1)
        await tab.page.clock.fast_forward(6_000)  # ten seconds after the first, five after it
        proxy.release()

        await expect(pending).to_have_count(0)
        await expect(tab.bubble("second", mine=True)).to_have_count(1)
        assert sockets == [], "the healthy socket was kept"
        assert (await stored_texts(tab, server.base_url)).count("second") == 1
