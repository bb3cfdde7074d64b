"""Helpers of the browser tests: a person's tab, a test image, Playwright's ``expect``."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.bots import bot_person
from support.server import live_server

try:
    from playwright.async_api import expect
except ImportError:  # the ``browser`` fixture skips (or, under CI, fails) with the reason
    expect = None

TIMEOUT_MS = 15_000
"""How long an action or expectation waits: generous, as the two cores are shared."""

if expect is not None:
    expect.set_options(timeout=TIMEOUT_MS)

CONVERSATION_ID = 'sessionStorage.getItem("tertulia.conversation")'
"""A page expression: the id of the conversation the page is in."""

ALL_IDS = """async () => {
  const id = sessionStorage.getItem("tertulia.conversation");
  const all = [];
  for (let page = 1; ; page++) {
    const r = await fetch(`/api/chat/conversations/${id}/messages/?page=${page}`);
    const body = await r.json();
    all.push(...body.results.map(m => m.id));
    if (!body.next) return all;
  }
}"""
"""A page script: the ids of the page's conversation's whole history, oldest first."""


@dataclass
class Tab:
    """One browser context (a person: own cookies and storage) with its page."""

    context: Any
    page: Any
    errors: list[str] = field(default_factory=list)

    async def start_conversation(self, nickname: str, bots: list[str], name: str = "") -> None:
        """Create a conversation from the lobby and wait for the conversation view."""
        page = self.page
        await page.goto("/")
        await page.fill("#nickname", nickname)
        if name:
            await page.fill("#conversation-name", name)
        await page.locator("input[name=bot]").first.wait_for()
        for checkbox in await page.locator("input[name=bot]").all():
            wanted = await checkbox.get_attribute("value") in bots
            await checkbox.set_checked(wanted)
        await page.get_by_role("button", name="Start the conversation").click()
        await page.locator("#composer-input").wait_for()

    async def send(self, text: str) -> None:
        await self.page.fill("#composer-input", text)
        await self.page.press("#composer-input", "Enter")

    def bubble(self, text: str, *, mine: bool | None = None) -> Any:
        """Confirmed (not pending) message rows whose text is exactly ``text``."""
        side = "" if mine is None else (".mine" if mine else ".theirs")
        return self.page.locator(f"li.msg{side}:not(.pending)").filter(
            has=self.page.locator(".text", has_text=re.compile(f"^{re.escape(text)}$"))
        )

    async def shot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(path))


async def bot_leaves(server: Any, page: Any, name: str) -> None:
    """The external bot ``name`` of the page's conversation connects once and leaves (a
    required one ends the conversation)."""
    conversation_id, bot_id = await page.evaluate(
        """async (name) => {
          const id = sessionStorage.getItem("tertulia.conversation");
          const body = await (await fetch(`/api/chat/conversations/${id}/`)).json();
          return [id, body.participants.find(p => p.name === name).id];
        }""",
        name,
    )
    bot = await bot_person(server, conversation_id, bot_id)
    try:
        socket = await bot.connect()
        await socket.state()
        await socket.close()
    finally:
        await bot.close()


def png(width: int, height: int) -> bytes:
    """A small PNG: a diagonal teal-to-amber gradient (made here; no image library needed)."""
    start, end = (15, 118, 110), (245, 158, 11)
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter type: none
        for x in range(width):
            mix = (x / max(1, width - 1) + y / max(1, height - 1)) / 2
            row += bytes(int(a + (b - a) * mix) for a, b in zip(start, end, strict=True))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


@asynccontextmanager
async def one_text_a_minute(
    make_settings: Callable[..., Any], open_tab: Callable[..., Awaitable[Tab]]
) -> AsyncIterator[Tab]:
    """A server taking one text a minute from a person, and a tab whose first text went:
    the next ones are refused as too fast."""
    async with live_server(make_settings(rate_limits={"message": "1/minute"})) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", [])
        await tab.send("first")
        await expect(tab.bubble("first", mine=True)).to_have_count(1)
        yield tab
