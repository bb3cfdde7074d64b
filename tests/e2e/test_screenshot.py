"""The README's picture: a conversation with text, an image, a quote and options."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from e2e.browser import expect, png
from e2e.test_chat import PRESELECT
from support.server import live_server

pytestmark = pytest.mark.asyncio(loop_scope="session")

README_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"


async def test_screenshot_of_a_conversation(make_settings, open_tab, tmp_path: Path) -> None:
    """Options, a quoted reply, an image and plain text render together.

    With TERTULIA_TEST_UPDATE_SCREENSHOT=1 the picture replaces the README's
    (``TERTULIA_TEST_UPDATE_SCREENSHOT=1 scripts/test tests/e2e/test_screenshot.py``); otherwise it
    goes to a temporary folder, so that running the tests leaves the work tree clean.
    """
    update = os.environ.get("TERTULIA_TEST_UPDATE_SCREENSHOT") == "1"
    screenshot = README_SCREENSHOT if update else tmp_path / "screenshot.png"
    settings = make_settings(bots=PRESELECT, manager="Manager")
    async with live_server(settings) as server:
        tab = await open_tab(server.base_url, viewport={"width": 1180, "height": 980})
        page = tab.page
        await tab.start_conversation("Ana", ["ECHO"], name="Tertulia demo")
        await expect(tab.bubble("Choose a bot:", mine=False)).to_have_count(1)

        # Before a bot is chosen, the manager answers anything with its greeting again.
        picture = {"name": "poster.png", "mimeType": "image/png", "buffer": png(360, 200)}
        await page.set_input_files("input[type=file]", files=[picture])
        await tab.send("Our new poster")
        image = page.locator("li.msg.mine.type-i:not(.pending) img")
        await expect(image).to_have_js_property("naturalWidth", 360)
        again = tab.bubble("Choose a bot:", mine=False).last
        await expect(again.locator(".quote")).to_contain_text("Our new poster")

        await again.get_by_role("button", name="ECHO").click()
        await expect(
            page.locator("li.msg.theirs .text", has_text="You are now talking")
        ).to_have_count(1)
        await tab.send("Hello! Can you read me?")
        await expect(tab.bubble("HELLO! CAN YOU READ ME?")).to_have_count(1)

        await page.mouse.move(1, 1)  # no hover effects in the picture
        await page.locator("#composer-input").blur()
        await page.wait_for_timeout(300)  # let the hover transitions end
        await tab.shot(screenshot)
    assert screenshot.stat().st_size > 10_000
