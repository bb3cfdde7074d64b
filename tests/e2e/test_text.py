"""How the web client lays out what people write: links, right-to-left scripts, and the
saved conversation's file name (web QA of 2026-12-07)."""

from __future__ import annotations

import re

import pytest

from e2e.browser import expect
from support.server import live_server

pytestmark = pytest.mark.asyncio(loop_scope="session")

LINKS = """async (texts) => {
  const { richText } = await import("/static/js/text.js");
  return texts.map((text) => {
    const p = document.createElement("p");
    p.append(richText(text));
    return [[...p.querySelectorAll("a")].map((a) => a.getAttribute("href")), p.textContent];
  });
}"""


async def test_a_link_keeps_the_brackets_it_opens_and_leaves_the_sentence_its_own(
    make_settings, open_tab
) -> None:
    """A closing bracket that closes one in the link belongs to it (Wikipedia's titles);
    one that closes a bracket of the sentence, and the sentence's punctuation, do not.
    Every ")" was cut, so a click opened a page that does not exist."""
    wiki = "https://en.wikipedia.org/wiki/Python_(programming_language)"
    texts = {
        f"see {wiki}": [wiki],
        f"see {wiki}.": [wiki],
        f"(see {wiki})": [wiki],
        "(see https://a.example/x), then": ["https://a.example/x"],
        "https://a.example/q?a[1]=2] and https://b.example/{x}}": [
            "https://a.example/q?a[1]=2",
            "https://b.example/{x}",
        ],
        'say "https://a.example/"!': ["https://a.example/"],
        "just text (no link)": [],
    }
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.page.goto("/")
        found = await tab.page.evaluate(LINKS, list(texts))
    for (text, links), (hrefs, shown) in zip(texts.items(), found, strict=True):
        assert hrefs == links, text
        assert shown == text, "the text itself is all there, links or not"


async def test_a_right_to_left_text_is_laid_out_right_to_left(make_settings, open_tab) -> None:
    """An Arabic or Hebrew message, its quote and the text being typed are laid out right
    to left, each by its own script (``dir="auto"``): "!" ended up at the wrong end."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        arabic = "مرحبا بكم!"
        await tab.send(arabic)
        mine = tab.bubble(arabic, mine=True).locator(".text")
        await expect(mine).to_have_count(1)
        direction = "(el) => getComputedStyle(el).direction"
        assert await mine.evaluate(direction) == "rtl"
        answer = tab.page.locator("li.msg.theirs:not(.pending)").last
        await expect(answer.locator(".quote-text")).to_have_text(arabic)
        assert await answer.locator(".quote-text").evaluate(direction) == "rtl"
        await tab.send("and hello")
        english = tab.bubble("and hello", mine=True).locator(".text")
        await expect(english).to_have_count(1)
        assert await english.evaluate(direction) == "ltr"
        await tab.page.fill("#composer-input", "שלום")
        assert await tab.page.locator("#composer-input").evaluate(direction) == "rtl"


async def test_the_saved_conversation_is_named_with_the_persons_own_date(
    make_settings, open_tab
) -> None:
    """At 19:00 on 6 December in Honolulu (05:00 UTC on the 7th) the file is named with
    the 6th, the date its own "Saved" line gives: it was named with UTC's date."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url, timezone_id="Pacific/Honolulu")
        await tab.page.clock.set_fixed_time("2026-12-07T05:00:00Z")
        await tab.start_conversation("alice", ["ECHO"], name="Book club")
        async with tab.page.expect_download() as waiting:
            await tab.page.get_by_role(
                "button", name="Save the conversation as a text file"
            ).click()
        saved = await waiting.value
    assert saved.suggested_filename == "Book club 2026-12-06.txt"
    assert re.search(r"December 6, 2026", (await saved.path()).read_text(encoding="utf-8"))


async def test_a_name_is_counted_in_characters_as_the_server_counts_it(
    make_settings, open_tab
) -> None:
    """The lobby's name fields count characters (code points), not UTF-16 units: thirty
    emoji are thirty characters, and the server takes them whole (a ``maxlength`` of 50
    cut them at 25, without a word). A name over 50 is refused on the page, with a line
    that says so, and nothing is sent."""
    emoji = "\U0001f600" * 30
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        await page.goto("/")
        await page.locator("input[name=bot]").first.wait_for()
        await page.fill("#nickname", "x" * 51)
        await page.get_by_role("button", name="Start the conversation").click()
        error = page.locator(".form-error")
        await expect(error).to_have_text(
            "Your name is too long: 51 characters, and the limit is 50."
        )
        await expect(page.locator("#nickname")).to_have_attribute("aria-invalid", "true")
        await page.fill("#nickname", "alice")
        await page.fill("#conversation-name", "\U0001f600" * 51)
        await page.get_by_role("button", name="Start the conversation").click()
        await expect(error).to_have_text(
            "The conversation's name is too long: 51 characters, and the limit is 50."
        )
        await expect(page.locator("#nickname")).not_to_have_attribute("aria-invalid", "true")
        await page.fill("#nickname", f"  {emoji}\x85")
        await page.fill("#conversation-name", emoji)
        async with page.expect_response("**/api/chat/conversations/") as waiting:
            await page.get_by_role("button", name="Start the conversation").click()
        created = await (await waiting.value).json()
        await page.locator("#composer-input").wait_for()
    assert created["name"] == emoji
    assert [p["name"] for p in created["participants"] if p["type"] == "H"] == [emoji]


async def test_a_text_that_shows_nothing_is_not_sent(make_settings, open_tab) -> None:
    """A text of only invisible characters (a zero-width space, a joiner, the Hangul
    filler, a lone combining mark) is not sent, as an empty one is not: it became an empty
    bubble, to everyone (web client QA of 2026-12-07, noticed). With a letter it goes."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        page = tab.page
        for nothing in ("\u200b", " \u200d\u200b ", "\u3164", "\u0301", "\u2800\n\u200b"):
            await tab.send(nothing)
        await tab.send("\u200bvisible")
        await expect(tab.bubble("\u200bvisible", mine=True)).to_have_count(1)
        await expect(tab.bubble("\u200bVISIBLE", mine=False)).to_have_count(1)
        # (all that was sent: the one text, and ECHO's answer)
        await expect(page.locator("li.msg")).to_have_count(2)
