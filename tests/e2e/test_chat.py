"""A person in the browser: lobby, a conversation with bots, options, several people."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from e2e.browser import ALL_IDS, CONVERSATION_ID, bot_leaves, expect, png
from e2e.test_reliability import TOP_IN_SCROLLER
from support.bots import bots_with
from support.server import live_server

pytestmark = pytest.mark.asyncio(loop_scope="session")

PRESELECT = {
    "ECHO": {"module": "tertulia.bots.builtin", "class": "UpperCaseEchoBot"},
    "Manager": {
        "module": "tertulia.bots.builtin",
        "class": "PreSelectManagerBot",
        "kwargs": {"bots": ["ECHO"]},
    },
}


async def test_a_conversation_with_echo(make_settings, open_tab) -> None:
    """From the lobby to ECHO's answer: my bubble, then ECHO's, quoting mine."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        await tab.send("hello there")

        answer = tab.bubble("HELLO THERE", mine=False)
        await expect(answer).to_have_count(1)
        await expect(answer.locator(".sender")).to_contain_text("ECHO")
        await expect(answer.locator(".quote")).to_contain_text("hello there")
        await expect(tab.bubble("hello there", mine=True)).to_have_count(1)
        await expect(tab.page.locator("li.pending")).to_have_count(0)
        await expect(tab.page.locator(".system-line", has_text="ECHO joined")).to_have_count(1)


async def test_an_option_of_the_manager_greeting(make_settings, open_tab) -> None:
    """Clicking an option sends its text, quoting the message that offered it; only the
    newest message offering options has live buttons, an earlier one's are disabled."""
    settings = make_settings(bots=PRESELECT, manager="Manager")
    async with live_server(settings) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        greetings = tab.page.locator("li.msg.theirs").filter(
            has=tab.page.locator(".text", has_text=re.compile("^Choose a bot:$"))
        )
        await expect(greetings).to_have_count(1)
        await tab.send("which?")  # (anything but a bot's name: the greeting again)
        await expect(greetings).to_have_count(2)

        old = greetings.first.get_by_role("button", name="ECHO")
        await expect(old).to_be_disabled()
        await expect(old).to_have_attribute("aria-disabled", "true")
        await expect(old).to_be_visible()
        greeting = greetings.last
        await expect(greeting.get_by_role("button", name="ECHO")).to_be_enabled()
        await greeting.get_by_role("button", name="ECHO").click()

        choice = tab.bubble("ECHO", mine=True)
        await expect(choice).to_have_count(1)
        await expect(choice.locator(".quote")).to_contain_text("Choose a bot:")
        await expect(
            tab.page.locator("li.msg.theirs .text", has_text="You are now talking to ECHO")
        ).to_have_count(1)
        await tab.send("hi")
        await expect(tab.bubble("HI", mine=False)).to_have_count(1)


async def test_two_people_in_a_room(make_settings, open_tab) -> None:
    """A second person joins from the room list; each sees the other's messages and presence."""
    async with live_server(make_settings()) as server:
        alice = await open_tab(server.base_url)
        await alice.start_conversation("alice", ["ECHO"], name="Team room")
        await expect(alice.page.locator("#chat-title")).to_have_text("Team room")

        bob = await open_tab(server.base_url)
        await bob.page.goto("/")
        await bob.page.fill("#nickname", "bob")
        await bob.page.get_by_role("button", name="Join Team room").click()
        await bob.page.locator("#composer-input").wait_for()

        await expect(alice.page.locator(".system-line", has_text="bob joined")).to_have_count(1)
        await expect(
            alice.page.locator("#participants li.person.is-online", has_text="bob")
        ).to_have_count(1)

        await bob.send("hi from bob")
        from_bob = alice.bubble("hi from bob", mine=False)
        await expect(from_bob).to_have_count(1)
        await expect(from_bob.locator(".sender")).to_have_text("bob")

        await alice.send("hi from alice")
        await expect(bob.bubble("hi from alice", mine=False)).to_have_count(1)
        await expect(bob.bubble("hi from bob", mine=True)).to_have_count(1)
        # Both people see ECHO's answers to both.
        await expect(alice.bubble("HI FROM ALICE")).to_have_count(1)
        await expect(bob.bubble("HI FROM BOB")).to_have_count(1)


RENAME = """async (name) => {
  const id = sessionStorage.getItem("tertulia.conversation");
  const me = (await (await fetch(`/api/chat/conversations/${id}/`)).json()).my_participant_id;
  const response = await fetch(`/api/chat/conversations/${id}/participants/${me}/`, {
    method: "PATCH",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name }),
  });
  return response.status;
}"""
"""A page script: rename the page's participant (as BLAB's "Change my name" does)."""


async def test_the_reply_being_written_follows_a_rename(make_settings, open_tab) -> None:
    """The quoted message above the box names its sender's new name after a rename, as the
    messages do."""
    async with live_server(make_settings()) as server:
        alice = await open_tab(server.base_url)
        await alice.start_conversation("alice", [], name="Team room")
        bob = await open_tab(server.base_url)
        await bob.page.goto("/")
        await bob.page.fill("#nickname", "bob")
        await bob.page.get_by_role("button", name="Join Team room").click()
        await bob.send("hi from bob")
        from_bob = alice.bubble("hi from bob", mine=False)
        await from_bob.locator("button.reply").click()
        preview = alice.page.locator(".reply-preview")
        await expect(preview).to_contain_text("Replying to bob")

        assert await bob.page.evaluate(RENAME, "Roberto") == 200

        await expect(from_bob.locator(".sender")).to_have_text("Roberto")
        await expect(preview).to_contain_text("Replying to Roberto")
        await alice.send("welcome, Roberto")
        answer = alice.bubble("welcome, Roberto", mine=True)
        await expect(answer.locator(".quote")).to_contain_text("Roberto")


async def test_the_working_indicator_shows_while_a_bot_works(make_settings, open_tab) -> None:
    """A slow bot shows as working until its answer arrives; two at once are named as a
    sentence names them (web client QA: "ECHO, Calculator are working…")."""
    bots = {
        name: {
            "module": "tertulia.bots.builtin",
            "class": "UpperCaseEchoBot",
            "kwargs": {"delay": delay},
        }
        for name, delay in (("Sloth", 1.5), ("Snail", 3.0))
    }
    async with live_server(make_settings(bots=bots)) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["Sloth", "Snail"])
        await tab.send("take your time")

        working = tab.page.locator(".working")
        both = re.compile(r"^(Sloth and Snail|Snail and Sloth) are working…$")
        await expect(working).to_have_text(both)
        await expect(tab.page.locator("#participants .is-working")).to_have_count(2)
        await expect(tab.bubble("TAKE YOUR TIME")).to_have_count(1)
        await expect(working).to_have_text("Snail is working…")
        await expect(tab.page.locator("#participants .is-working")).to_contain_text("Snail")
        await expect(tab.bubble("TAKE YOUR TIME")).to_have_count(2)
        await expect(working).to_be_hidden()


async def test_the_end_of_a_conversation_is_announced(make_settings, open_tab) -> None:
    """When a required bot leaves, a banner says the conversation has ended."""
    settings = make_settings(bots=bots_with("Keeper", "SilentBot", required=True))
    async with live_server(settings) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["ECHO", "Keeper"])
        await bot_leaves(server, tab.page, "Keeper")

        await expect(tab.page.locator(".banner-ended")).to_have_text(
            "This conversation has ended: Keeper left."
        )
        await expect(tab.page.locator(".system-ended")).to_contain_text(
            "The conversation has ended (Keeper left)"
        )
        # The bot that left is marked so, as a person who left is, after a reload too.
        panel_keeper = tab.page.locator("#participants li.person", has_text="Keeper")
        for reload in (False, True):
            if reload:
                await tab.page.reload()
            await expect(tab.page.locator(".subtitle")).to_contain_text("Keeper (left)")
            await expect(panel_keeper.locator(".person-state")).to_contain_text("offline")
            await expect(panel_keeper).to_have_class(re.compile(r"\bhas-left\b"))


async def test_a_refused_message_shows_the_server_error(make_settings, open_tab) -> None:
    """An error frame naming my message: a notice, and the message marked as not sent."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        # A NUL, which the page lets through and the server refuses.
        await tab.send("null \x00 here")

        refusal = "Null characters are not allowed."
        await expect(tab.page.locator(".notice-error")).to_contain_text(refusal)
        failed = tab.page.locator("li.pending.status-failed")
        await expect(failed).to_contain_text(refusal)
        await failed.get_by_role("button", name="Delete").click()
        await expect(failed).to_have_count(0)


async def test_a_texts_length_is_counted_as_the_server_counts_it(make_settings, open_tab) -> None:
    """What the server trims (Python's ``str.strip()``) is not counted: U+0085 and
    U+001C to U+001F are spaces there, U+FEFF is not."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.page.goto("/")
        length = """async (text) => {
          const { textLength } = await import("/static/js/text.js");
          return textLength(text);
        }"""
        assert await tab.page.evaluate(length, "a" * 4000 + "\x85") == 4000
        assert await tab.page.evaluate(length, "\x1c\x1f ab\u3000") == 2
        assert await tab.page.evaluate(length, "\ufeffab") == 3


async def test_a_text_over_the_limit_is_refused_with_a_notice(make_settings, open_tab) -> None:
    """A paste over the server's 4,000 characters is kept whole, and the page says it is too
    long and sends nothing until it is shortened; the limit counts characters, not UTF-16
    units (4,000 emoji are fine)."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", [])
        page = tab.page
        box = page.locator("#composer-input")
        error = page.locator(".composer-error")
        await box.focus()
        await page.keyboard.insert_text("a" * 4500)  # as a paste

        await expect(error).to_have_text(
            "This message is too long to send: 4,500 characters, and the limit is 4,000."
            " Shorten it or split it."
        )
        await expect(box).to_have_js_property("value", "a" * 4500)
        await expect(box).to_have_attribute("aria-invalid", "true")
        await box.press("Enter")
        await expect(error).to_contain_text("too long")
        await expect(page.locator("li.msg.mine")).to_have_count(0)
        await page.reload()  # kept whole across a reload too, and said too long again
        await expect(box).to_have_js_property("value", "a" * 4500)
        await expect(error).to_contain_text("4,500 characters")

        await box.press("Control+a")
        await page.keyboard.insert_text("\N{GRINNING FACE}" * 4000)
        await expect(error).to_be_empty()
        await expect(box).not_to_have_attribute("aria-invalid", "true")
        await box.press("Enter")
        sent = page.locator("li.msg.mine:not(.pending)")
        await expect(sent).to_have_count(1)
        conversation_id = await page.evaluate(CONVERSATION_ID)
        response = await tab.context.request.get(
            f"{server.base_url}/api/chat/conversations/{conversation_id}/messages/"
        )
        texts = [m["text"] for m in (await response.json())["results"] if m["type"] == "T"]
        assert texts == ["\N{GRINNING FACE}" * 4000]


async def test_without_rooms_the_lobby_lists_only_ones_own(make_settings, open_tab) -> None:
    """With rooms off a first visit sees no list; then the lobby lists the person's own
    conversations, newest first, to open again. The page asks the API root whether rooms
    are on rather than list them and be refused (QA: a 403, and its console line, on every
    visit)."""
    async with live_server(make_settings(rooms=False)) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        refused: list[str] = []
        page.on("response", lambda r: refused.append(r.url) if r.status >= 400 else None)
        async with page.expect_response("**/api/chat/") as root:
            await page.goto("/")
        assert (await root.value).status == 200
        await expect(page.get_by_role("heading", name="New conversation")).to_be_visible()
        await expect(page.get_by_role("heading", name="Open conversations")).to_be_hidden()
        await expect(page.get_by_role("heading", name="Your conversations")).to_be_hidden()

        for name in ("Book club", "Chess"):
            await tab.start_conversation("alice", [], name=name)
            await expect(page.locator("#chat-title")).to_have_text(name)
            await page.get_by_role("button", name="Back to the lobby").click()
        await expect(page.get_by_role("heading", name="Your conversations")).to_be_visible()
        await expect(page.locator(".room-name")).to_have_text(["Chess", "Book club"])
        await page.get_by_role("button", name="Open Book club again").click()
        await expect(page.locator("#chat-title")).to_have_text("Book club")
        assert refused == []


async def test_a_burst_of_messages_shows_in_order_and_follows_the_reader(
    make_settings, open_tab
) -> None:
    """Another person's messages arriving all at once each show once, in the server's order;
    a reader at the bottom follows them, one who scrolled up is told how many are new."""
    async with live_server(make_settings(rate_limits={"message": ""})) as server:
        alice = await open_tab(server.base_url)
        await alice.start_conversation("alice", [], name="Busy room")
        page = alice.page
        bob, url = await someone_joins(alice, server.base_url, open_tab)

        async def burst(prefix: str, count: int) -> None:
            responses = await asyncio.gather(
                *(
                    bob.context.request.post(
                        f"{url}/messages/",
                        data={"type": "T", "text": f"{prefix} {n}", "local_id": f"{prefix}{n}"},
                    )
                    for n in range(count)
                )
            )
            assert [r.status for r in responses] == [201] * count

        await burst("first", 100)
        await expect(page.locator("li.msg.theirs")).to_have_count(100)
        stored = await page.evaluate(ALL_IDS)
        rows = page.locator("li[data-id]")
        assert await rows.evaluate_all("rows => rows.map(r => r.dataset.id)") == stored
        await expect(rows.last).to_be_in_viewport()
        await expect(page.locator(".jump-new")).to_be_hidden()

        await page.evaluate(
            "async () => { document.querySelector('.scroller').scrollTop = 0;"
            " await new Promise(requestAnimationFrame); }"
        )
        await burst("second", 20)
        await expect(page.locator("li.msg.theirs")).to_have_count(120)
        jump = page.get_by_role("button", name="20 new messages")
        await expect(jump).to_be_visible()
        await expect(rows.last).not_to_be_in_viewport()
        await jump.click()
        await expect(rows.last).to_be_in_viewport()
        await expect(jump).to_be_hidden()


async def someone_joins(tab, base_url: str, open_tab):
    """bob joins the conversation of ``tab`` over the REST API (from a context of his own,
    whose requests carry his cookie); returns his tab and the conversation's API URL."""
    conversation_id = await tab.page.evaluate("sessionStorage.getItem('tertulia.conversation')")
    url = f"{base_url}/api/chat/conversations/{conversation_id}"
    bob = await open_tab(base_url)
    assert (await bob.context.request.post(f"{url}/join/", data={"nickname": "bob"})).ok
    await expect(tab.page.locator("#participants li.person", has_text="bob")).to_have_count(1)
    return bob, url


SET_VISIBILITY = """state => {
  Object.defineProperty(document, "visibilityState", { value: state, configurable: true });
  document.dispatchEvent(new Event("visibilitychange"));
}"""


async def test_a_hidden_page_counts_new_messages_in_its_title(make_settings, open_tab) -> None:
    """While the page is hidden (another tab in front), each message from someone else adds
    to a count in its title, which the tab shows; coming back clears it."""
    async with live_server(make_settings()) as server:
        alice = await open_tab(server.base_url)
        await alice.start_conversation("alice", [], name="Quiet room")
        page = alice.page
        # (the name isolated, U+2068…U+2069: a right-to-left one keeps its punctuation)
        await expect(page).to_have_title("\u2068Quiet room\u2069 · Tertulia")
        bob, url = await someone_joins(alice, server.base_url, open_tab)

        await page.evaluate(SET_VISIBILITY, "hidden")
        for n, text in enumerate(("are you there?", "hello?"), start=1):
            data = {"type": "T", "text": text, "local_id": f"b{n}"}
            assert (await bob.context.request.post(f"{url}/messages/", data=data)).ok
            await expect(page).to_have_title(f"({n}) \u2068Quiet room\u2069 · Tertulia")

        await page.evaluate(SET_VISIBILITY, "visible")
        await expect(page).to_have_title("\u2068Quiet room\u2069 · Tertulia")
        await expect(alice.bubble("hello?", mine=False)).to_have_count(1)


async def test_the_conversation_is_saved_as_a_text_file(make_settings, open_tab) -> None:
    """The header's save button downloads the whole conversation as text, oldest first,
    every page of it (more than the REST API's 100 a page): names, events, a reply with
    what it answers, a file (an image too) by its name and address, events with names."""
    async with live_server(make_settings(rate_limits={"message": ""})) as server:
        alice = await open_tab(server.base_url)
        await alice.start_conversation("alice", [], name="Books & club")
        page = alice.page
        bob, url = await someone_joins(alice, server.base_url, open_tab)
        for n in range(120):
            sent = await bob.context.request.post(
                f"{url}/messages/", data={"type": "T", "text": f"line {n}", "local_id": f"l{n}"}
            )
            assert sent.status == 201
        await alice.send("the last word")
        await expect(alice.bubble("the last word", mine=True)).to_have_count(1)
        # (exactly: a row of "line 11" at 9 p.m. reads "line 119:05 PM" as text)
        quoted = alice.bubble("line 119", mine=False)
        await quoted.hover()
        await quoted.get_by_role("button", name="Reply").click()
        await alice.send("agreed")
        await expect(alice.bubble("agreed", mine=True)).to_have_count(1)
        attached = await bob.context.request.post(
            f"{url}/messages/",
            multipart={
                "type": "A",
                "local_id": "f1",
                "file": {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"notes"},
            },
        )
        assert attached.status == 201
        await expect(page.locator("li.msg.theirs", has_text="notes.txt")).to_have_count(1)
        pictured = await bob.context.request.post(
            f"{url}/messages/",
            multipart={
                "type": "i",
                "local_id": "f2",
                "text": "the cover",
                "file": {"name": "cover.png", "mimeType": "image/png", "buffer": png(8, 8)},
            },
        )
        assert pictured.status == 201
        await expect(page.locator("li.msg.theirs.type-i")).to_have_count(1)

        async with page.expect_download() as waiting:
            await page.get_by_role("button", name="Save the conversation as a text file").click()
        saved = await waiting.value
        text = Path(await saved.path()).read_text(encoding="utf-8")

    # (the "&" left out, and the second space it would leave: QA)
    assert re.fullmatch(r"Books club \d{4}-\d\d-\d\d\.txt", saved.suggested_filename)
    lines = text.splitlines()
    assert lines[0] == "Books & club"
    assert lines[1].startswith("Saved ")
    body = [line.split("] ", 1)[1] for line in lines[3:] if line.startswith("[")]
    said = [b for b in body if not b.startswith("—")]
    assert said[:120] == [f"bob: line {n}" for n in range(120)]
    assert said[120:122] == ["alice: the last word", "alice: agreed"]
    reply = next(n for n, line in enumerate(lines) if line.endswith("] alice: agreed"))
    # (under the reply: above it, it read as part of the entry before; QA)
    assert lines[reply + 1] == "    > bob: line 119"
    assert re.fullmatch(r"bob: notes\.txt <http://127\.0\.0\.1:\d+/media/.+>", said[122])
    # An image by its name too (not "Photo"); events with names (not "You joined").
    assert re.fullmatch(r"bob: cover\.png <http://127\.0\.0\.1:\d+/media/.+> the cover", said[123])
    assert [b for b in body if b.startswith("—")] == ["— Conversation created", "— alice joined"]


async def test_a_long_visit_keeps_the_page_to_the_newest_rows(make_settings, open_tab) -> None:
    """Following a busy conversation, the page keeps only the newest 500-600 rows (each new
    message would otherwise cost the layout of every row); "Load earlier messages" brings
    the others back without asking the server, keeping the reader's place, and a quote of
    one off the page brings it too."""
    async with live_server(make_settings(rate_limits={"message": ""})) as server:
        alice = await open_tab(server.base_url)
        await alice.start_conversation("alice", [], name="Busy room")
        page = alice.page
        bob, url = await someone_joins(alice, server.base_url, open_tab)
        for start in range(0, 1000, 100):
            responses = await asyncio.gather(
                *(
                    bob.context.request.post(
                        f"{url}/messages/",
                        data={"type": "T", "text": f"burst {n}", "local_id": f"b{n}"},
                    )
                    for n in range(start, start + 100)
                )
            )
            assert [r.status for r in responses] == [201] * 100
            await expect(alice.bubble(f"burst {start + 99}")).to_have_count(1)
        rows = page.locator("li.msg")
        shown = await rows.count()
        assert 500 <= shown <= 600, shown
        await expect(rows.last).to_be_in_viewport()
        await expect(alice.bubble("burst 0")).to_have_count(0)

        asked: list[str] = []
        page.on("request", lambda request: asked.append(request.url))
        first = rows.first
        first_text = await first.locator(".text").inner_text()
        await page.evaluate("document.querySelector('.scroller').scrollTop = 0")
        top_before = await first.evaluate(TOP_IN_SCROLLER)
        await page.get_by_role("button", name="Load earlier messages").click()
        await expect(rows).to_have_count(shown + 200)
        kept = alice.bubble(first_text)
        assert abs(await kept.evaluate(TOP_IN_SCROLLER) - top_before) < 2
        assert not [u for u in asked if "/messages" in u]

        replied = await bob.context.request.post(
            f"{url}/messages/",
            data={
                "type": "T",
                "text": "about the first",
                "quoted_message_id": await message_id(page, "burst 0"),
                "local_id": "q1",
            },
        )
        assert replied.status == 201
        reply = page.locator("li.msg", has_text="about the first")
        await reply.scroll_into_view_if_needed()
        await reply.locator(".quote").click()
        target = alice.bubble("burst 0")
        await expect(target).to_have_count(1)
        await expect(target).to_be_focused()
        await expect(target).to_be_in_viewport()


async def message_id(page, text: str) -> str:
    """The id of the stored message whose text is ``text`` (over the REST API)."""
    found = await page.evaluate(
        """async (text) => {
          const id = sessionStorage.getItem("tertulia.conversation");
          for (let n = 1; ; n += 1) {
            const url = `/api/chat/conversations/${id}/messages/?page=${n}`;
            const body = await (await fetch(url)).json();
            const hit = body.results.find((m) => m.text === text);
            if (hit) return hit.id;
            if (!body.next) return null;
          }
        }""",
        text,
    )
    assert found is not None
    return found


async def test_the_browsers_back_and_forward_go_between_lobby_and_conversation(
    make_settings, open_tab
) -> None:
    """Back from a conversation shows the lobby, as the page's own back arrow does, and
    Forward the conversation again; once the page's back arrow took the person to the
    lobby, Back leaves the page, as from a lobby (web client QA: Back left the page from a
    conversation, a phone's Back button closing the chat)."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        await tab.start_conversation("alice", ["ECHO"], name="Back and forth")
        await tab.send("hello")
        await expect(tab.bubble("HELLO", mine=False)).to_have_count(1)
        lobby = page.get_by_role("button", name="Start the conversation")

        await page.go_back()
        await expect(lobby).to_be_visible()
        assert page.url == f"{server.base_url}/"
        await page.go_forward()
        await expect(tab.bubble("HELLO", mine=False)).to_have_count(1)
        await page.reload()  # (the conversation's entry stays one)
        await expect(tab.bubble("HELLO", mine=False)).to_have_count(1)

        await page.get_by_role("button", name="Back to the lobby").click()
        await expect(lobby).to_be_visible()
        await page.go_back()
        await expect(page).to_have_url("about:blank")


@pytest.mark.parametrize(
    ("nickname", "initials"),
    [("ana maria", "AM"), ("Carol <b>X</b>", "CB"), ("(Zé)", "Z"), ("😀", "😀")],
)
async def test_an_avatar_shows_the_names_first_letters(
    make_settings, open_tab, nickname: str, initials: str
) -> None:
    """A person's avatar shows the first letter (or digit) of the first two words of the
    name that have one, not whatever character comes first (web client QA: "C<"); a name
    with none shows its first character."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation(nickname, [])
        mine = tab.page.locator("#participants .avatar:not(.avatar-bot)")
        await expect(mine).to_have_text(initials)


async def test_the_lobby_lists_rooms_in_the_order_people_read_names(
    make_settings, open_tab
) -> None:
    """Rooms are listed by name as a dictionary orders them (case and accents aside, numbers
    by their value), in the person's language; the server's order is by code point, which
    put every capital first, "Room 10" before "Room 2" and "ábaco" last (web client QA of
    2026-12-07, noticed). Unnamed conversations come last."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        for name in ("beta", "Room 10", "ábaco", "Alpha", None, "Room 2"):
            created = await tab.context.request.post(
                f"{server.base_url}/api/chat/conversations/",
                data={"nickname": "owner", "name": name, "bots": []},
            )
            assert created.status == 201, await created.text()
        await tab.page.goto("/")
        names = tab.page.locator("li.room .room-name")
        await expect(names).to_have_count(6)
        shown = await names.all_inner_texts()
        assert shown[:5] == ["ábaco", "Alpha", "beta", "Room 2", "Room 10"]
        assert shown[5] == "Conversation", "the unnamed one, last"
