"""What a person feels when things go wrong: a reload, a server restart, an outage."""

from __future__ import annotations

import asyncio
import json

import pytest

from e2e.browser import ALL_IDS, Tab, expect, one_text_a_minute
from support.server import live_server
from tertulia.cli import delete

pytestmark = pytest.mark.asyncio(loop_scope="session")

MY_ID = """async () => {
  const id = sessionStorage.getItem("tertulia.conversation");
  const response = await fetch(`/api/chat/conversations/${id}/`);
  const body = await response.json();
  return [id, body.my_participant_id, body.participants.length];
}"""

TOP_IN_SCROLLER = """row => row.getBoundingClientRect().top
  - document.querySelector('.scroller').getBoundingClientRect().top"""


async def test_a_reload_keeps_the_conversation_and_the_participant(make_settings, open_tab) -> None:
    """After a reload the page re-enters as the same participant and shows the history
    (with rooms off, where only re-entering is allowed), and the message box keeps what
    was written and not sent, and the message it replies to, until it is sent."""
    async with live_server(make_settings(rooms=False)) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        await tab.start_conversation("alice", ["ECHO"])
        await tab.send("remember me")
        await expect(tab.bubble("REMEMBER ME")).to_have_count(1)
        before = await page.evaluate(MY_ID)
        await tab.bubble("REMEMBER ME").hover()
        await tab.bubble("REMEMBER ME").get_by_role("button", name="Reply to ECHO").click()
        await page.locator("#composer-input").fill("half\nwritten")

        await page.reload()

        await expect(tab.bubble("remember me", mine=True)).to_have_count(1)
        await expect(tab.bubble("REMEMBER ME", mine=False)).to_have_count(1)
        await expect(page.locator("#participants .you-tag")).to_have_count(1)
        await expect(page.locator("#participants li.person")).to_have_count(2)
        assert await page.evaluate(MY_ID) == before
        box, preview = page.locator("#composer-input"), page.locator(".reply-preview")
        await expect(box).to_have_value("half\nwritten")
        await expect(preview).to_contain_text("Replying to ECHO")
        await expect(preview).to_contain_text("REMEMBER ME")

        await box.press("Enter")
        await expect(tab.bubble("half\nwritten", mine=True).locator(".quote")).to_contain_text(
            "REMEMBER ME"
        )
        await page.reload()
        await expect(tab.bubble("half\nwritten", mine=True)).to_have_count(1)
        await expect(box).to_have_value("")
        await expect(preview).to_be_hidden()


async def test_a_server_restart_loses_and_repeats_nothing(make_settings, open_tab) -> None:
    """Written during an outage, sent after it: every message shows exactly once."""
    settings = make_settings()
    async with live_server(settings) as first:
        port = first.port
        tab = await open_tab(first.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        await tab.send("before")
        await expect(tab.bubble("BEFORE")).to_have_count(1)

    page = tab.page
    await expect(page.locator(".banner-connection")).to_contain_text("Connection lost")
    await tab.send("during the outage")
    pending = page.locator("li.pending", has_text="during the outage")
    await expect(pending).to_contain_text("Waiting for the connection")

    async with live_server(settings, port=port):
        # The backoff may wait a few seconds before the next attempt.
        await expect(pending).to_have_count(0, timeout=20_000)
        await expect(page.locator(".banner-connection")).to_be_hidden()
        await expect(tab.bubble("DURING THE OUTAGE")).to_have_count(1)
        await tab.send("after")
        await expect(tab.bubble("AFTER")).to_have_count(1)

        for text in ("before", "during the outage", "after"):
            await expect(tab.bubble(text, mine=True)).to_have_count(1)
            await expect(tab.bubble(text.upper(), mine=False)).to_have_count(1)
        ids = await page.eval_on_selector_all("li[data-id]", "rows => rows.map(r => r.dataset.id)")
        assert len(ids) == len(set(ids))
        # The page's view agrees with the server's history.
        stored = await page.evaluate(
            """async () => {
              const id = sessionStorage.getItem("tertulia.conversation");
              const r = await fetch(`/api/chat/conversations/${id}/messages/?limit=200`);
              return (await r.json()).results.map(m => m.id);
            }"""
        )
        assert sorted(ids) == sorted(stored)


async def test_files_sent_during_an_outage_go_up_in_order_after_it(make_settings, open_tab) -> None:
    """Two files sent while the server is away wait for it, the first one for the
    connection, the second for the first; once it is back they are stored in that order."""
    settings = make_settings()
    async with live_server(settings) as first:
        port = first.port
        tab = await open_tab(first.base_url)
        await tab.start_conversation("alice", ["ECHO"])

    page = tab.page
    await expect(page.locator(".banner-connection")).to_contain_text("Connection lost")
    names = ["one.txt", "two.txt"]
    files = [{"name": n, "mimeType": "text/plain", "buffer": n.encode()} for n in names]
    await page.set_input_files("input[type=file]", files=files)
    await page.get_by_role("button", name="Send", exact=True).click()
    pending = page.locator("li.msg.mine.pending")
    await expect(pending.first).to_contain_text("Waiting for the connection")
    await expect(pending.nth(1)).to_contain_text("Waiting for the file before it")

    async with live_server(settings, port=port):
        cards = page.locator("li.msg.mine.type-A:not(.pending) a.file-card")
        await expect(cards).to_have_count(2, timeout=20_000)
        assert [(await c.inner_text()).split("\n")[0] for c in await cards.all()] == names
        await expect(pending).to_have_count(0)


async def test_a_long_history_loads_in_pages(make_settings, open_tab) -> None:
    """The newest 200 messages come at once, earlier ones on demand, each exactly once."""
    # No bots (no answers to wait for) and no message rate limit for the bulk posting.
    async with live_server(make_settings(rate_limits={"message": ""})) as server:
        tab, url = await away_from_a_conversation(open_tab, server.base_url)
        page = tab.page
        await post_notes(tab, url, range(1, 211))
        await page.goto("/")

        await expect(tab.bubble("note 210")).to_have_count(1)
        # The newest 200 messages, then this visit's own "You joined".
        await expect(page.locator(".system-line", has_text="You joined")).to_have_count(1)
        stored = await page.evaluate(ALL_IDS)
        assert len(stored) == 214  # created, joined, 210 notes, left, joined
        shown = page.locator("li[data-id]")
        await expect(shown).to_have_count(201)
        assert await shown.evaluate_all("rows => rows.map(r => r.dataset.id)") == stored[-201:]

        # At the top, the earlier messages come in above what the person was reading,
        # which stays where it was on the screen.
        await page.evaluate(
            "async () => { document.querySelector('.scroller').scrollTop = 0;"
            " await new Promise(requestAnimationFrame); }"
        )
        reading = page.locator(f'li[data-id="{stored[-201]}"]')
        top_before = await reading.evaluate(TOP_IN_SCROLLER)
        await page.get_by_role("button", name="Load earlier messages").click()
        await expect(page.locator(".system-line", has_text="Conversation created")).to_have_count(1)
        await expect(page.get_by_role("button", name="Load earlier messages")).to_be_hidden()
        assert await shown.evaluate_all("rows => rows.map(r => r.dataset.id)") == stored
        assert abs(await reading.evaluate(TOP_IN_SCROLLER) - top_before) <= 2


async def test_a_reload_during_a_hiccup_waits_rather_than_leaving(make_settings, open_tab) -> None:
    """A reload while the server answers 503 (a proxy between restarts) or 429 (a shared
    address over the join limit) keeps the conversation: the page waits and re-enters once
    the server answers. Only a 403 or 404 means the person is no longer in it."""
    async with live_server(make_settings(rooms=False)) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        await tab.send("still here")
        await expect(tab.bubble("STILL HERE")).to_have_count(1)
        page = tab.page
        conversation_id = await page.evaluate('sessionStorage.getItem("tertulia.conversation")')
        refusals = {"left": 2}

        async def hiccup(route) -> None:
            if refusals["left"] and route.request.method == "GET":
                status = 503 if refusals["left"] == 2 else 429
                refusals["left"] -= 1
                await route.fulfill(status=status, json={"detail": "try later"})
            else:
                await route.continue_()

        await page.route(f"**/api/chat/conversations/{conversation_id}/", hiccup)
        await page.reload()
        await expect(tab.bubble("STILL HERE", mine=False)).to_have_count(1, timeout=20_000)
        assert refusals["left"] == 0
        assert await page.evaluate('sessionStorage.getItem("tertulia.conversation")') == (
            conversation_id
        )

        await page.unroute(f"**/api/chat/conversations/{conversation_id}/")

        async def forbidden(route) -> None:
            await route.fulfill(status=403, json={"detail": "not a participant"})

        await page.route(f"**/api/chat/conversations/{conversation_id}/", forbidden)
        await page.reload()
        await expect(page.get_by_text("You are no longer in that conversation.")).to_be_visible()
        assert await page.evaluate('sessionStorage.getItem("tertulia.conversation")') == ""
        assert await page.evaluate('localStorage.getItem("tertulia.conversation")') is None


async def test_two_tabs_in_two_conversations_each_reload_into_their_own(
    make_settings, open_tab
) -> None:
    """The conversation a reload re-enters is the tab's own: two tabs of one browser in two
    conversations each come back to theirs. A new tab starts in the last one entered, and a
    tab sent back to the lobby stays there."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", [], name="First")
        page = await tab.context.new_page()
        page.on("pageerror", lambda error: tab.errors.append(str(error)))
        await page.goto("/")
        title = page.locator("#chat-title")
        await expect(title).to_have_text("First")  # a new tab: the last one entered
        await page.get_by_role("button", name="Back to the lobby").click()
        await page.reload()
        await expect(page.locator("#nickname")).to_be_visible()  # (not back in First)
        other = Tab(tab.context, page, tab.errors)
        await other.start_conversation("alice", [], name="Second")

        for _ in range(2):
            await tab.page.reload()
            await expect(tab.page.locator("#chat-title")).to_have_text("First")
            await page.reload()
            await expect(title).to_have_text("Second")
        third = await tab.context.new_page()
        third.on("pageerror", lambda error: tab.errors.append(str(error)))
        await third.goto("/")
        await expect(third.locator("#chat-title")).to_have_text("Second")


async def test_texts_written_in_two_tabs_during_an_outage_are_all_sent(
    make_settings, open_tab
) -> None:
    """Two tabs of one conversation share the browser's storage. Each writes a text while
    the server is down, and one tab is closed; after the restart a reload sends both (one
    tab's save no longer wipes the other's), and each shows once."""
    settings = make_settings()
    async with live_server(settings) as first:
        port = first.port
        tab = await open_tab(first.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        other = await tab.context.new_page()
        other.on("pageerror", lambda error: tab.errors.append(str(error)))
        await other.goto("/")
        await other.locator("#composer-input").wait_for()

    for page, text in ((tab.page, "from tab A"), (other, "from tab B")):
        await expect(page.locator(".banner-connection")).to_contain_text("Connection lost")
        await page.fill("#composer-input", text)
        await page.press("#composer-input", "Enter")
        await expect(page.locator("li.pending", has_text=text)).to_have_count(1)
    await tab.page.close()

    async with live_server(settings, port=port):
        await other.reload()
        for text in ("from tab A", "from tab B"):
            mine = other.locator("li.msg.mine:not(.pending)", has_text=text)
            await expect(mine).to_have_count(1, timeout=20_000)
            echo = other.locator("li.msg.theirs:not(.pending)", has_text=text.upper())
            await expect(echo).to_have_count(1)
        await expect(other.locator("li.pending")).to_have_count(0)
        assert (
            await other.evaluate(
                """() => Object.keys(localStorage).filter(k => k.includes("pending"))"""
            )
            == []
        )


async def test_a_quote_of_an_earlier_message_brings_it(make_settings, open_tab) -> None:
    """A message quoting one from before the loaded history offers to show it: a click
    loads the earlier pages and brings the quoted message into view, focused."""
    async with live_server(make_settings(rate_limits={"message": ""})) as server:
        tab, url = await away_from_a_conversation(open_tab, server.base_url)
        page = tab.page
        post = tab.context.request.post
        first = await post(url, data={"type": "T", "text": "the very first", "local_id": "f"})
        first_id = (await first.json())["id"]
        await post_notes(tab, url, range(210))
        quoting = {
            "type": "T",
            "text": "about that",
            "local_id": "q",
            "quoted_message_id": first_id,
        }
        assert (await post(url, data=quoting)).ok
        await page.goto("/")

        row = tab.bubble("about that")
        await expect(row).to_have_count(1)
        target = page.locator(f'li[data-id="{first_id}"]')
        await expect(target).to_have_count(0)
        await row.get_by_role("button", name="Show the quoted message").click()
        await expect(target).to_be_in_viewport()
        await expect(target).to_be_focused()
        await expect(row.locator("button.quote")).to_contain_text("the very first")


async def away_from_a_conversation(open_tab, base_url: str):
    """alice's tab in a conversation without bots, then away from it (about:blank) while
    its history grows; the tab and the conversation's messages URL."""
    tab = await open_tab(base_url)
    await tab.start_conversation("alice", [])
    await expect(tab.page.locator(".system-line", has_text="You joined")).to_have_count(1)
    conversation_id = await tab.page.evaluate("sessionStorage.getItem('tertulia.conversation')")
    await tab.page.goto("about:blank")
    return tab, f"{base_url}/api/chat/conversations/{conversation_id}/messages/"


async def post_notes(tab, url: str, numbers: range) -> None:
    """Post "note N" for each number, ten at a time (the context's requests carry the
    page's cookie)."""
    for start in range(numbers.start, numbers.stop, 10):
        responses = await asyncio.gather(
            *(
                tab.context.request.post(
                    url, data={"type": "T", "text": f"note {n}", "local_id": f"n{n}"}
                )
                for n in range(start, min(start + 10, numbers.stop))
            )
        )
        assert all(r.status == 201 for r in responses), [await r.text() for r in responses]


KEPT = """id => [localStorage.getItem(`tertulia.pending.${id}`),
  localStorage.getItem(`tertulia.draft.${id}`)]"""
"""A page script: what the browser keeps of a conversation's pending texts and draft."""


async def test_a_conversation_deleted_while_open_says_so(make_settings, open_tab) -> None:
    """``tertulia delete`` while the page is open: the next text closes the socket with
    4404, and the page says at once that the conversation is gone (rather than
    reconnecting), back in the lobby, and forgets the conversation's pending texts and
    draft; so does a tab that finds it gone on a reload."""
    settings = make_settings()
    async with live_server(settings) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        await tab.send("soon gone")
        await expect(tab.bubble("SOON GONE")).to_have_count(1)
        page = tab.page
        conversation_id = await page.evaluate('sessionStorage.getItem("tertulia.conversation")')

        assert await asyncio.to_thread(delete, settings, [conversation_id]) == 0
        sockets: list[str] = []
        page.on("websocket", lambda socket: sockets.append(socket.url))
        await tab.send("hello?")

        await expect(page.get_by_text("That conversation no longer exists.")).to_be_visible()
        assert await page.evaluate('sessionStorage.getItem("tertulia.conversation")') == ""
        assert await page.evaluate('localStorage.getItem("tertulia.conversation")') is None
        assert sockets == []  # told by the close code, not by failing to reconnect
        assert await page.evaluate(KEPT, conversation_id) == [None, None]

        # A tab reloaded into it (its draft written before it knew) finds it gone.
        await page.evaluate(
            """id => {
              sessionStorage.setItem("tertulia.conversation", id);
              localStorage.setItem(`tertulia.draft.${id}`, '{"text": "still not sent"}');
            }""",
            conversation_id,
        )
        await page.reload()
        await expect(page.get_by_text("That conversation no longer exists.")).to_be_visible()
        assert await page.evaluate(KEPT, conversation_id) == [None, None]


async def test_a_text_seen_failing_stays_failed_after_a_reload(make_settings, open_tab) -> None:
    """A text marked "Not sent" is not sent again behind the person's back when the page
    reloads (as after a reconnect): it comes back failed, with its reason, until Try again.
    A text still pending then is sent."""
    async with one_text_a_minute(make_settings, open_tab) as tab:
        page = tab.page
        await tab.send("second")
        failed = page.locator("li.pending.status-failed")
        await expect(failed).to_contain_text("second")

        sent: list[str] = []
        page.on(
            "websocket",
            lambda socket: socket.on(
                "framesent", lambda payload: sent.append(json.loads(payload).get("text"))
            ),
        )
        await page.reload()
        await expect(failed).to_contain_text("second")
        await expect(failed).to_contain_text("You are sending messages too fast.")
        # A later text goes (and is refused): the restored ones would have gone before it.
        await tab.send("third")
        await expect(failed.filter(has_text="third")).to_have_count(1)
        assert sent == ["third"]
        await expect(failed).to_have_count(2)
