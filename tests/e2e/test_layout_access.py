"""The page for people who zoom in, enlarge the text or need contrast (web client QA,
layout): a short screen keeps room for the messages, the text follows the browser's font
size, error notices, texts being sent and the reply button stand out in either theme, long
names read whole."""

from __future__ import annotations

import pytest

from e2e.browser import expect, one_text_a_minute, png
from support.server import live_server

pytestmark = pytest.mark.asyncio(loop_scope="session")

LAYOUT = """() => {
  const box = (selector) => document.querySelector(selector).getBoundingClientRect();
  const list = box(".scroller");
  return {
    viewport: innerHeight,
    page: document.documentElement.scrollHeight,
    list: list.height,
    // (how much of the list shows with the message box in sight)
    listShown: Math.max(0, Math.min(list.bottom, innerHeight) - Math.max(list.top, 0)),
    header: box(".topbar").height,
    headerTop: box(".topbar").top,
    composer: box(".composer").height,
    composerBottom: box(".composer").bottom,
    listScrolls: document.querySelector(".scroller").scrollHeight >
      document.querySelector(".scroller").clientHeight,
  };
}"""
"""A page script: the heights (CSS px) of the conversation's parts, and where they are."""

CONTRAST = """el => {
  // WCAG's contrast of an element's colour (its text, or an icon's fill) as painted against
  // its background as painted: each element's background laid over what is under it, and
  // each element's opacity fading all of it (what it holds too) into what is under it.
  const rgba = (color) => {
    const [r, g, b, a = 1] = (color.match(/[\\d.]+/g) ?? []).map(Number);
    return [r, g, b, a];
  };
  const over = ([r, g, b, a], under) => [r, g, b].map((v, i) => v * a + under[i] * (1 - a));
  const chain = [];
  for (let node = el; node; node = node.parentElement) chain.unshift(node);
  const paint = (i, under, ink) => {
    if (i === chain.length) return ink ? over(ink, under) : under;
    const style = getComputedStyle(chain[i]);
    const inside = paint(i + 1, over(rgba(style.backgroundColor), under), ink);
    const opacity = Number(style.opacity);
    return inside.map((v, k) => v * opacity + under[k] * (1 - opacity));
  };
  const luminance = (rgb) => {
    const [r, g, b] = rgb.map((v) => {
      const c = v / 255;
      return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const white = [255, 255, 255];
  const [l1, l2] = [
    luminance(paint(0, white, rgba(getComputedStyle(el).color))),
    luminance(paint(0, white, null)),
  ];
  return (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
}"""
"""A page script: an element's contrast ratio (WCAG) with what is under it."""

WHOLE = "el => el.scrollWidth <= el.clientWidth && el.scrollHeight <= el.clientHeight"
"""A page script: whether an element shows its text whole (no ellipsis, no line cut)."""

ONE_LINE = (
    "el => el.getBoundingClientRect().height < 1.5 * parseFloat(getComputedStyle(el).lineHeight)"
)
"""A page script: whether an element's text takes one line."""


async def _reply_to_my_text(tab) -> None:
    """Send a text and start replying to it."""
    await tab.send("hello")
    mine = tab.bubble("hello", mine=True)
    await expect(mine).to_have_count(1)
    await mine.hover()
    await mine.locator("button.reply").click()
    await expect(tab.page.locator(".reply-preview")).to_be_visible()


SHORT = {
    # (1280x720 at 400 %, 1280x1024 at 400 %, 1280x720 at 200 %, 1280x900 at 200 %)
    "320x180": ({"width": 320, "height": 180}, False, 0, False, False),
    "320x256 reply, 6 lines": ({"width": 320, "height": 256}, True, 6, False, False),
    "640x360 reply, 8 lines": ({"width": 640, "height": 360}, True, 8, False, False),
    "640x450 reply, file, too long": ({"width": 640, "height": 450}, True, 0, True, True),
}


@pytest.mark.parametrize("case", SHORT.values(), ids=SHORT.keys())
async def test_a_short_screen_keeps_room_for_the_messages(make_settings, open_tab, case) -> None:
    """On a short screen (400 % or 200 % zoom, a phone on its side) the message list keeps
    40 % of the height at least, whatever the message box holds (a reply, lines, a file, an
    error): the whole page scrolls instead, header and message box with it; with the box in
    sight, a good part of the list is too."""
    viewport, reply, lines, picked, too_long = case
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url, viewport=viewport)
        page = tab.page
        await tab.start_conversation("alice", [])
        if reply:
            await _reply_to_my_text(tab)
        if lines:
            await page.fill("#composer-input", "\n".join(f"line {n}" for n in range(lines)))
        if picked:
            poster = {"name": "poster.png", "mimeType": "image/png", "buffer": png(40, 40)}
            await page.set_input_files("input[type=file]", files=[poster])
            await expect(page.locator(".staged-file")).to_have_count(1)
        if too_long:
            await page.fill("#composer-input", "word " * 1000)
            await expect(page.locator(".composer-error")).to_contain_text("too long")

        layout = await page.evaluate(LAYOUT)
        assert layout["list"] >= 0.4 * layout["viewport"], layout
        await page.locator("#composer-input").scroll_into_view_if_needed()
        layout = await page.evaluate(LAYOUT)
        assert layout["listShown"] >= 0.3 * layout["viewport"], layout
        # Everything is reached by scrolling the page.
        await page.evaluate("scrollTo(0, 0)")
        await expect(page.locator(".topbar")).to_be_in_viewport(ratio=1)


USUAL = {"1280x800": {"width": 1280, "height": 800}, "360x640": {"width": 360, "height": 640}}


@pytest.mark.parametrize("viewport", USUAL.values(), ids=USUAL.keys())
async def test_a_usual_screen_keeps_header_and_message_box_in_place(
    make_settings, open_tab, viewport
) -> None:
    """On a laptop's or a phone's screen the page itself never scrolls: the header stays at
    the top, the message box at the bottom (with a reply and a draft of six lines in it),
    and the list between them scrolls."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url, viewport=viewport)
        page = tab.page
        await tab.start_conversation("alice", [])
        await tab.send("\n".join(f"a long message, line {n}" for n in range(40)))
        await expect(page.locator("li.msg.mine:not(.pending)")).to_have_count(1)
        await _reply_to_my_text(tab)
        await page.fill("#composer-input", "\n".join(f"line {n}" for n in range(6)))

        layout = await page.evaluate(LAYOUT)
        assert layout["page"] <= layout["viewport"], layout
        assert layout["headerTop"] == 0, layout
        assert abs(layout["composerBottom"] - layout["viewport"]) <= 1, layout
        assert layout["listScrolls"], layout
        assert layout["list"] >= 0.25 * layout["viewport"], layout


async def test_the_text_follows_the_browsers_font_size(make_settings, open_tab) -> None:
    """With the browser's font size set to 24 px (instead of 16 px), messages, names and
    the message box are 24 px too (names in proportion), as the rest of the page is."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        # What the browser's settings do (Settings > Appearance > Font size).
        devtools = await tab.context.new_cdp_session(page)
        await devtools.send("Page.setFontSizes", {"fontSizes": {"standard": 24, "fixed": 20}})
        await tab.start_conversation("alice", ["ECHO"])
        await tab.send("hello")
        answer = tab.bubble("HELLO", mine=False)
        await expect(answer).to_have_count(1)

        size = "el => getComputedStyle(el).fontSize"
        assert await answer.locator(".text").evaluate(size) == "24px"
        assert await tab.bubble("hello", mine=True).locator(".text").evaluate(size) == "24px"
        assert await page.locator("#composer-input").evaluate(size) == "24px"
        assert await answer.locator(".sender").evaluate(size) == "19.2px"  # (0.8 of it)
        assert await page.locator("#chat-title").evaluate(size) == "25.2px"  # (1.05 of it)


async def test_an_error_notice_reads_in_either_theme(make_settings, open_tab) -> None:
    """An error notice's text stands at 4.5:1 at least on its background, its icons at 3:1,
    in the light theme and the dark one (the dark theme's light red was 2.3:1 under white)."""
    async with one_text_a_minute(make_settings, open_tab) as tab:
        page = tab.page
        await tab.send("second")
        notice = page.locator(".notice-error")
        await expect(notice).to_contain_text("too fast")
        for scheme in ("light", "dark"):
            await page.emulate_media(color_scheme=scheme)
            text = await notice.locator(".notice-text").evaluate(CONTRAST)
            assert text >= 4.5, (scheme, text)
            for icon in await notice.locator("svg").all():
                assert await icon.evaluate(CONTRAST) >= 3, scheme


async def test_a_text_being_sent_is_marked_without_fading(make_settings, open_tab) -> None:
    """A text not yet echoed has a dashed line inside its edge (and its clock and words),
    not a faded bubble: its text and status stand at 4.5:1 at least, in either theme (faded,
    3.6:1)."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        await tab.start_conversation("alice", [])
        await tab.context.set_offline(True)
        await expect(page.locator(".banner-connection")).to_be_visible()
        await tab.send("written offline")
        pending = page.locator("li.pending", has_text="written offline")
        await expect(pending.locator(".status-text")).to_have_text("Waiting for the connection…")

        for scheme in ("light", "dark"):
            await page.emulate_media(color_scheme=scheme)
            for part in (".text", ".status-text"):
                ratio = await pending.locator(part).evaluate(CONTRAST)
                assert ratio >= 4.5, (scheme, part, ratio)
        bubble = pending.locator(".bubble")
        assert await bubble.evaluate("el => getComputedStyle(el).outlineStyle") == "dashed"
        await tab.context.set_offline(False)
        await expect(tab.bubble("written offline", mine=True)).to_have_count(1)
        sent = tab.bubble("written offline").locator(".bubble")
        assert await sent.evaluate("el => getComputedStyle(el).outlineStyle") != "dashed"


async def test_the_reply_button_stands_out_on_a_touch_screen(make_settings, open_tab) -> None:
    """On a touch screen (no hover) every message's reply button shows, at 3:1 at least
    against the page in either theme (it was faded to 1.9:1)."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(
            server.base_url, has_touch=True, viewport={"width": 390, "height": 700}
        )
        page = tab.page
        assert await page.evaluate("matchMedia('(hover: none)').matches")
        await tab.start_conversation("alice", ["ECHO"])
        await tab.send("hello")
        answer = tab.bubble("HELLO", mine=False)
        await expect(answer).to_have_count(1)
        await page.locator("#composer-input").blur()
        for scheme in ("light", "dark"):
            await page.emulate_media(color_scheme=scheme)
            for row in (answer, tab.bubble("hello", mine=True)):
                ratio = await row.locator("button.reply svg").evaluate(CONTRAST)
                assert ratio >= 3, (scheme, ratio)


LONG_TITLE = "Clube de leitura das quintas-feiras à noite"
LONG_FILE = "ata-da-reuniao-de-marco-versao-final-revisada.txt"


async def test_long_names_read_whole_on_a_phone(make_settings, open_tab) -> None:
    """On a 360 px phone in Portuguese, long names wrap instead of ending in an ellipsis:
    the conversation's title (two lines), my name in the participants panel with its
    "(você)" in sight, a file's name before sending, and a room's name in the lobby; a
    file's size stays on one line."""
    async with live_server(make_settings()) as server:
        phone = {"width": 360, "height": 640}
        tab = await open_tab(server.base_url, locale="pt-BR", viewport=phone)
        page = tab.page
        await page.goto("/")
        await page.fill("#nickname", "Maria Aparecida dos Santos")
        await page.fill("#conversation-name", LONG_TITLE)
        await page.get_by_role("button", name="Começar a conversa").click()
        await page.locator("#composer-input").wait_for()

        title = page.locator("#chat-title")
        await expect(title).to_have_text(LONG_TITLE)
        assert await title.evaluate(WHOLE)

        await page.locator("button.people-toggle").click()
        me = page.locator("#participants li.person").first
        await expect(me).to_contain_text("Maria Aparecida dos Santos")
        await expect(me.locator(".you-tag")).to_be_in_viewport(ratio=1)
        assert await me.locator(".person-name").evaluate(WHOLE)
        await page.keyboard.press("Escape")

        minutes = {"name": LONG_FILE, "mimeType": "text/plain", "buffer": b"ata\n"}
        await page.set_input_files("input[type=file]", files=[minutes])
        staged = page.locator(".staged-file")
        await expect(staged.locator(".staged-size")).to_have_text("4 B")
        assert await staged.locator(".staged-name").evaluate(WHOLE)
        assert await staged.locator(".staged-size").evaluate(ONE_LINE)

        other = await open_tab(server.base_url, locale="pt-BR", viewport=phone)
        await other.page.goto("/")
        room = other.page.locator(".room-name", has_text=LONG_TITLE)
        await expect(room).to_have_count(1)
        assert await room.evaluate(WHOLE)


async def test_a_notice_on_a_short_screen_leaves_the_newest_messages_in_sight(
    make_settings, open_tab
) -> None:
    """At 320x180 (400 % zoom) a notice ("Connected again.") sits at the top, not 96 px up
    from the bottom, where it covered the middle of the screen and the newest messages."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url, viewport={"width": 320, "height": 180})
        page = tab.page
        await tab.start_conversation("alice", [])
        await tab.context.set_offline(True)
        await expect(page.locator(".banner-connection")).to_be_attached()
        await tab.context.set_offline(False)
        notice = page.locator(".notice", has_text="Connected again.")
        await expect(notice).to_be_visible()
        box = await notice.bounding_box()
        assert box is not None
        assert box["y"] <= 16, box  # (at the top: it was at 40-84 px, the middle)
