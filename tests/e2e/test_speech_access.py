"""What a screen reader is told, and how names, dates and texts are shown: the web client's
accessibility and i18n QA round."""

from __future__ import annotations

import re

import pytest

from e2e.browser import expect
from support.server import live_server

pytestmark = pytest.mark.asyncio(loop_scope="session")

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
