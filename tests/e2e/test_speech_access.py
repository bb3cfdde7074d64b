"""What a screen reader is told, and how names, dates and texts are shown: the web client's
accessibility and i18n QA round."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from e2e.browser import CONVERSATION_ID, Tab, bot_leaves, expect
from e2e.test_chat import PRESELECT
from support.bots import bots_with
from support.server import live_server

pytestmark = pytest.mark.asyncio(loop_scope="session")

LISTEN = """() => {
  // What a screen reader is told: each change inside a live region that was in the page
  // before it (one added with its text already in it is not read), in the words read:
  // neither aria-hidden nor hidden text. One entry per region per batch of changes.
  window.spoken = [];
  const LIVE = "[aria-live]:not([aria-live=off]), [role=status], [role=alert], [role=log]";
  const hidden = (node) => {
    const el = node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement;
    return !el || Boolean(el.closest("[aria-hidden=true], [hidden]"));
  };
  const said = (node) => {
    if (hidden(node)) return "";
    if (node.nodeType === Node.TEXT_NODE) return node.data;
    if (node.nodeType !== Node.ELEMENT_NODE) return "";
    return [...node.childNodes].map(said).join("");
  };
  new MutationObserver((records) => {
    const batch = new Map();
    for (const record of records) {
      const target =
        record.target.nodeType === Node.ELEMENT_NODE ? record.target : record.target.parentElement;
      const region = target?.closest(LIVE);
      if (!region?.isConnected) continue;
      const text =
        record.type === "characterData"
          ? said(record.target)
          : [...record.addedNodes].filter((node) => node.isConnected).map(said).join(" ");
      if (text.trim()) batch.set(region, `${batch.get(region) ?? ""} ${text}`.trim());
    }
    for (const text of batch.values()) window.spoken.push(text.replace(/\\s+/g, " "));
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
}"""
"""A page script: from now on, window.spoken lists each announcement a screen reader gets."""


async def spoken(page: Any) -> list[str]:
    return await page.evaluate("window.spoken")


ISOLATED = """(root, text) => {
  // Whether `text` is shown in an element of its own that lays it out apart from what is
  // around it (bidi isolation: <bdi>, dir="auto") and right to left, as its script is.
  const isolating = (el) => /isolate|plaintext/.test(getComputedStyle(el).unicodeBidi);
  const all = [root, ...root.querySelectorAll("*")];
  return all.some(
    (el) =>
      el.textContent === text && isolating(el) && getComputedStyle(el).direction === "rtl",
  );
}"""
"""A page script: whether an element holds a text isolated and laid out right to left."""


TICKED = """() => {
  // Whether the banner's countdown has shown three values in a row counting down ("0:03",
  // "0:02", "0:01"): rewritten twice within one wait. (Checked at every frame.)
  const shown = /\\d:\\d\\d/.exec(document.querySelector(".banner-connection")?.textContent)?.[0];
  window.ticks ??= [];
  if (shown && window.ticks.at(-1) !== shown) window.ticks.push(shown);
  const [a, b, c] = window.ticks.slice(-3);
  return c !== undefined && a > b && b > c;
}"""


async def test_a_lost_connection_is_said_once_in_words(make_settings, open_tab) -> None:
    """While the connection is lost, a screen reader hears once that it is, and when it
    will be tried again in words ("in 1 second"), while the countdown ticks on screen; and
    "Connected again." once it is back. The banner, a live region, read its countdown every
    second ("0:02", as a clock), and a notice added with its text was often not read."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", [])
        page = tab.page
        outage = False
        sockets: list[Any] = []
        tasks: set[asyncio.Future[None]] = set()

        def route(socket: Any) -> None:
            sockets.append(socket)
            upstream = socket.connect_to_server()
            if not outage:
                return

            # Accepted, then closed before the server's first frame reaches the page.
            def close(payload: str | bytes) -> None:
                tasks.add(asyncio.ensure_future(socket.close(code=1013, reason="away")))

            upstream.on_message(close)

        await page.route_web_socket("**/ws/chat/**", route)
        await page.reload()
        # (served through the route: the state frame says who is online)
        await expect(page.locator(".subtitle")).to_have_text("1 online")
        banner = page.locator(".banner-connection")
        await expect(banner).to_be_hidden()
        await page.evaluate(LISTEN)

        outage = True
        await sockets[-1].close(code=1013, reason="away")
        await page.wait_for_function(TICKED, polling="raf")
        said = await spoken(page)
        lost = [text for text in said if "Connection lost" in text]
        assert len(lost) == 1, said
        assert re.fullmatch(r"Connection lost\. Reconnecting in (1 second|\d+ seconds)\.", lost[0])
        assert not [text for text in said if re.search(r"\d:\d\d", text)], said

        outage = False
        await page.get_by_role("button", name="Retry now").click()
        await expect(page.locator(".notice", has_text="Connected again.")).to_have_count(1)
        await expect(banner).to_be_hidden()
        said = await spoken(page)
        assert said.count("Connected again.") == 1, said
        assert len([text for text in said if "Connection lost" in text]) == 1, said


TOGGLE = "button.people-toggle"


async def test_a_status_is_said_again_only_when_it_changes(make_settings, open_tab) -> None:
    """ "Sloth is working…" is told once, however often the page redraws meanwhile (here:
    the participants panel hidden and shown), and so is the banner of an ended
    conversation: both were rebuilt, and read again, at every redraw."""
    bots = bots_with("Keeper", "SilentBot", required=True)
    bots["Sloth"] = {
        "module": "tertulia.bots.builtin",
        "class": "UpperCaseEchoBot",
        "kwargs": {"delay": 4.0},
    }
    async with live_server(make_settings(bots=bots)) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        await tab.start_conversation("alice", ["Sloth", "Keeper"])
        await page.evaluate(LISTEN)
        await tab.send("take your time")
        working = page.locator(".working")
        await expect(working).to_have_text("Sloth is working…")
        for _ in range(4):  # (each a redraw)
            await page.locator(TOGGLE).click()
        await expect(working).to_have_text("Sloth is working…")
        await expect(tab.bubble("TAKE YOUR TIME")).to_have_count(1)
        await expect(working).to_be_hidden()
        said = await spoken(page)
        assert said.count("Sloth is working…") == 1, said

        await bot_leaves(server, page, "Keeper")
        ended = "This conversation has ended: Keeper left."
        await expect(page.locator(".banner-ended")).to_have_text(ended)
        for _ in range(2):
            await page.locator(TOGGLE).click()
        await expect(page.locator(".banner-ended")).to_have_text(ended)
        said = await spoken(page)
        assert said.count(ended) == 1, said
        # (the name in "Keeper (left)" is isolated too; "(left)" is the page's)
        subtitle = page.locator(".subtitle")
        await expect(subtitle).to_contain_text("Keeper (left)")
        await expect(subtitle.locator("bdi", has_text="Keeper")).to_have_text("Keeper")


async def test_a_text_over_the_limit_is_alerted_once(make_settings, open_tab) -> None:
    """Crossing the 4,000 characters is alerted once; the count under the box follows each
    keystroke without being read out, and it describes the box (which is marked invalid).
    The line was an alert, rewritten, and read, at each keystroke."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", [])
        page = tab.page
        box = page.locator("#composer-input")
        error = page.locator(".composer-error")
        await page.evaluate(LISTEN)
        await box.focus()
        await page.keyboard.insert_text("a" * 4000)
        await page.keyboard.type("bcd")
        await expect(error).to_contain_text("4,003 characters")
        await expect(box).to_have_attribute("aria-invalid", "true")
        await expect(box).to_have_accessible_description(re.compile(r"too long.*4,003 characters"))
        said = await spoken(page)
        assert len([text for text in said if "too long" in text]) == 1, said

        await page.keyboard.press("Backspace")
        await page.keyboard.press("Backspace")
        await page.keyboard.press("Backspace")
        await expect(error).to_be_empty()
        await expect(box).not_to_have_attribute("aria-invalid", "true")
        await page.keyboard.type("!")  # over again: said again
        await expect(error).to_contain_text("4,001 characters")
        said = await spoken(page)
        assert len([text for text in said if "too long" in text]) == 2, said


async def join(base_url: str, conversation_id: str, nickname: str, open_tab) -> tuple[Tab, str]:
    """``nickname`` joins over REST from a context of their own; their tab and the
    conversation's API URL."""
    url = f"{base_url}/api/chat/conversations/{conversation_id}"
    person = await open_tab(base_url)
    assert (await person.context.request.post(f"{url}/join/", data={"nickname": nickname})).ok
    return person, url


CLUB = "نادي!"

RTL_BOTS = {
    "صدى": {"module": "tertulia.bots.builtin", "class": "UpperCaseEchoBot"},
    "Manager": {
        "module": "tertulia.bots.builtin",
        "class": "PreSelectManagerBot",
        "kwargs": {"bots": ["صدى"]},
    },
}


async def test_right_to_left_names_are_isolated(make_settings, open_tab) -> None:
    """With people named "سارة!" and "דוד", a bot named "صدى" and a conversation named
    "نادي!", every name and text they supplied is laid out on its own, right to left: in
    the header (the title, and the list of names, built of elements), the sender's label,
    the panel, "صدى joined", "Replying to سارة!" and its snippet, a quote's name, a file's
    name, a bot's options, the lobby; the tab's title isolates the name with U+2068/U+2069.
    They were laid out with the text around them: "ECHO, 3 · דוד ,سارة online"."""
    settings = make_settings(bots=RTL_BOTS, manager="Manager")
    async with live_server(settings) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        await tab.start_conversation("alice", ["صدى"], name=CLUB)
        conversation_id = await page.evaluate(CONVERSATION_ID)
        sara, url = await join(server.base_url, conversation_id, "سارة!", open_tab)
        await join(server.base_url, conversation_id, "דוד", open_tab)
        said = await sara.context.request.post(
            f"{url}/messages/", data={"type": "T", "text": "مرحبا!", "local_id": "s1"}
        )
        assert said.ok
        filed = await sara.context.request.post(
            f"{url}/messages/",
            multipart={
                "type": "A",
                "local_id": "s2",
                "file": {"name": "تقرير!.txt", "mimeType": "text/plain", "buffer": b"notes"},
            },
        )
        assert filed.ok

        async def isolated(where: Any, text: str) -> None:
            await expect(where).to_have_count(1)
            assert await where.evaluate(ISOLATED, text), (await where.inner_html(), text)

        await expect(page).to_have_title(f"\u2068{CLUB}\u2069 · Tertulia")
        await isolated(page.locator("#chat-title"), CLUB)
        subtitle = page.locator(".subtitle")
        await expect(subtitle).to_contain_text("דוד")
        for name in ("صدى", "سارة!", "דוד"):
            await isolated(subtitle, name)
        greeting = tab.bubble("Choose a bot:").first
        await isolated(greeting.get_by_role("button", name="صدى"), "صدى")
        hello = tab.bubble("مرحبا!", mine=False)
        await isolated(hello.locator(".sender"), "سارة!")
        await isolated(page.locator("#participants li.person", has_text="سارة!"), "سارة!")
        await isolated(page.locator(".system-line", has_text="صدى joined"), "صدى")
        await isolated(page.locator("li.msg.type-A .file-name"), "تقرير!.txt")

        await hello.hover()
        await hello.locator("button.reply").click()
        preview = page.locator(".reply-preview")
        await expect(preview).to_contain_text("Replying to سارة!")
        await isolated(preview.locator(".reply-name"), "سارة!")
        await isolated(preview.locator(".reply-snippet"), "مرحبا!")
        await tab.send("أهلا")
        await isolated(tab.bubble("أهلا", mine=True).locator(".quote-name"), "سارة!")

        lobby = await open_tab(server.base_url)
        await lobby.page.goto("/")
        await isolated(lobby.page.locator(".room-name"), CLUB)
        await isolated(lobby.page.locator("label.bot-chip", has_text="صدى"), "صدى")


async def test_names_cut_off_can_be_read_in_full(make_settings, open_tab) -> None:
    """The conversation's title, a room's name in the lobby, a file about to be sent and a
    participant's name carry their whole text as a tooltip (where the space cuts them)."""
    long_name = "A conversation about the books we read over the long winter"[:50]
    file_name = "the minutes of the meeting of the twelfth of December.txt"
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        await tab.start_conversation("alice", ["ECHO"], name=long_name)
        await expect(page.locator("#chat-title")).to_have_attribute("title", long_name)
        person = page.locator("#participants li.person", has_text="ECHO").locator(".person-name")
        await expect(person).to_have_attribute("title", "ECHO")
        files = [{"name": file_name, "mimeType": "text/plain", "buffer": b"minutes"}]
        await page.set_input_files("input[type=file]", files=files)
        await expect(page.locator(".staged-name")).to_have_attribute("title", file_name)

        lobby = await open_tab(server.base_url)
        await lobby.page.goto("/")
        await expect(lobby.page.locator(".room-name")).to_have_attribute("title", long_name)


async def test_the_lobby_keeps_the_focus_on_a_room_as_the_list_changes(
    make_settings, open_tab
) -> None:
    """With the keyboard on "Join Alpha", people joining Alpha and Beta (the list is read
    again every 5 s) leave the focus where it is, on the same button: the whole list was
    rebuilt, and the focus fell to the page's body."""
    async with live_server(make_settings()) as server:
        for name in ("Alpha", "Beta"):
            owner = await open_tab(server.base_url)
            await owner.start_conversation(f"owner of {name}", [], name=name)
        rooms = await (
            await owner.context.request.get(f"{server.base_url}/api/chat/conversations/")
        ).json()
        ids = {room["name"]: room["id"] for room in rooms["results"]}
        tab = await open_tab(server.base_url)
        page = tab.page
        await page.goto("/")
        join_alpha = page.get_by_role("button", name="Join Alpha")
        await join_alpha.focus()
        button = await join_alpha.element_handle()
        alpha = page.locator("li.room", has_text="Alpha")
        beta = page.locator("li.room", has_text="Beta")
        await expect(alpha).to_contain_text("1 participant")

        await join(server.base_url, ids["Beta"], "bob", open_tab)
        await expect(beta).to_contain_text("2 participants")
        assert await button.evaluate("el => el === document.activeElement")
        await join(server.base_url, ids["Alpha"], "carol", open_tab)
        await expect(alpha).to_contain_text("2 participants")
        assert await button.evaluate("el => el === document.activeElement")
        await expect(join_alpha).to_be_focused()


FORMATS = """async () => {
  const { formatDateTime, formatTime, formatDay } = await import("/static/js/i18n.js");
  const when = new Date("2026-12-07T16:51:00Z");
  const later = new Date("2027-01-02T12:00:00Z");
  return [formatTime(when), formatDateTime(when), formatDay(when, later)];
}"""


async def test_dates_and_times_follow_the_browsers_region(make_settings, open_tab) -> None:
    """A British browser gets English with British dates and times ("16:51", "Monday, 7
    December 2026"), in the messages too: they were American ("4:51 PM", "Monday,
    December 7, 2026"), the interface's language alone choosing them."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url, locale="en-GB", timezone_id="UTC")
        page = tab.page
        await tab.start_conversation("alice", ["ECHO"])
        assert await page.evaluate(FORMATS) == [
            "16:51",
            "Monday, 7 December 2026 at 16:51",
            "Monday, 7 December 2026",
        ]
        await tab.send("what time is it?")
        shown = tab.bubble("what time is it?", mine=True).locator("time")
        await expect(shown).to_have_text(re.compile(r"^\d\d:\d\d$"))


NUMBERS = """async () => {
  const { formatNumber, formatSize } = await import("/static/js/i18n.js");
  return [formatNumber(1234567), formatSize(2500000)];
}"""


async def test_numbers_follow_the_browsers_region_as_dates_do(make_settings, open_tab) -> None:
    """Counts and sizes are grouped as the person's region groups them, as dates are: an
    Indian English browser gets "12,34,567" (they followed the interface's language
    alone: "1,234,567")."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url, locale="en-IN")
        await tab.page.goto("/")
        number, size = await tab.page.evaluate(NUMBERS)
        assert number == "12,34,567"
        assert size.startswith("2.4") or size.startswith("2.5"), size


SNIPPETS = """async () => {
  const { snippet } = await import("/static/js/text.js");
  const family = "\\u{1F468}\\u200D\\u{1F469}\\u200D\\u{1F467}";
  return [
    snippet({ type: "T", text: "a".repeat(78) + "\\u{1F600} end" }, 80),
    snippet({ type: "T", text: "a".repeat(118) + family + " end" }),
    snippet({ type: "T", text: "\\u{1F600}".repeat(120) }),
  ];
}"""

WELL_FORMED = "texts => texts.every((text) => text.isWellFormed())"


async def test_a_shortened_quote_keeps_its_characters_whole(make_settings, open_tab) -> None:
    """A text cut short for a quote, a reply being written, an announcement or the saved
    conversation ends with whole characters (an emoji, a family of them) and "…": it was
    cut in UTF-16 units, leaving half an emoji (a lone surrogate)."""
    text = "a" * 118 + "\N{GRINNING FACE} end"
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        await tab.start_conversation("alice", [])
        conversation_id = await page.evaluate(CONVERSATION_ID)
        await page.evaluate(LISTEN)
        bob, url = await join(server.base_url, conversation_id, "bob", open_tab)
        data = {"type": "T", "text": text, "local_id": "b1"}
        assert (await bob.context.request.post(f"{url}/messages/", data=data)).ok
        bubble = tab.bubble(text, mine=False)
        await expect(bubble).to_have_count(1)
        await bubble.hover()
        await bubble.locator("button.reply").click()
        snippet = page.locator(".reply-snippet")
        await expect(snippet).to_have_text("a" * 118 + "\N{GRINNING FACE}…")
        await page.wait_for_function("() => window.spoken.some((t) => t.startsWith('bob:'))")
        said = [line for line in await spoken(page) if line.startswith("bob:")]
        assert await page.evaluate(WELL_FORMED, said), said
        assert said == ["bob: " + "a" * 118 + "\N{GRINNING FACE}…"]

        cut = await page.evaluate(SNIPPETS)
        assert await page.evaluate(WELL_FORMED, cut)
        family = "\N{MAN}\u200d\N{WOMAN}\u200d\N{GIRL}"
        assert cut == [
            "a" * 78 + "\N{GRINNING FACE}…",
            "a" * 118 + family + "…",
            "\N{GRINNING FACE}" * 120,
        ]


async def test_screen_readers_hear_each_thing_once_and_whole(make_settings, open_tab) -> None:
    """A message's time is read once (it was read in the hidden "name, time:" before the
    text and again from the visible time); a bot's message says it is a bot's; the open
    participants panel on a phone is named by its heading ("Participants", not
    "Participants Close"); the lobby's error about the name describes the field."""
    settings = make_settings(bots=PRESELECT, manager="Manager")
    async with live_server(settings) as server:
        tab = await open_tab(server.base_url, viewport={"width": 360, "height": 740})
        page = tab.page
        await page.goto("/")
        await page.locator("input[name=bot]").first.wait_for()
        await page.get_by_role("button", name="Start the conversation").click()
        nickname = page.locator("#nickname")
        await expect(nickname).to_have_attribute("aria-invalid", "true")
        await expect(nickname).to_have_accessible_description("Please enter your name.")
        await page.fill("#nickname", "alice")
        await page.get_by_role("button", name="Start the conversation").click()
        await page.locator("#composer-input").wait_for()

        greeting = tab.bubble("Choose a bot:", mine=False)
        await expect(greeting).to_have_count(1)
        time = await greeting.locator("time").text_content()
        read = await greeting.locator(".bubble").evaluate(
            "el => [...el.querySelectorAll(':scope > :not([aria-hidden=true])')]"
            ".map((part) => part.textContent).join('')"
        )
        assert read.count(time) == 1, read
        assert read.startswith("Manager, a bot: "), read

        await page.locator(TOGGLE).click()
        await expect(page.get_by_role("complementary")).to_have_accessible_name("Participants")
