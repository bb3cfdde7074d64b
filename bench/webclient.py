"""The web client in a busy conversation: how soon a page shows what arrives.

Run by hand: ``.venv/bin/python -m bench.webclient [--messages 1000,3000] [--compare PATH]``.
Needs Debian's Chromium (``/usr/bin/chromium``, or ``--chromium PATH``) and Playwright
(``requirements/dev.txt``).

For each size N, Tertulia starts on SQLite (rate limits off), a person opens a conversation
without bots in headless Chromium, and another person joins over the protocol and sends N
texts back to back on his WebSocket. Measured in the page against the same wall clock the
sender reads: when each row is added to the message list (a MutationObserver) and when its
text is first painted (the browser's Element Timing):

- ``burst``: seconds from the first text sent until the Nth text is on the screen;
- ``one more``: then, with N rows shown, milliseconds from sending one more text until its
  row is in the page and until it is on the screen (the median of ``--singles`` texts,
  each awaited before the next is sent; and the worst on the screen). What a person sees is
  the second: a row added between frames waits for the next paint anyway.

Rows that never showed are counted (``missing``). With ``--compare PATH`` another checkout's
Tertulia (its ``src``, web client included, say a ``git worktree`` of an earlier commit)
takes turns with this one's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.client import Api, Counters, Socket, close_all
from bench.servers import ServerSpec, Target, running_server, tertulia_checkouts

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WAIT_MS = 600_000
"""How long the page may take to show a burst (the client before 2026-12 took 26 s for 3,000)."""
POLL_MS = 50
"""How often the wait for a row looks (the figures are the page's own timestamps; polling
every frame, Playwright's default, would take frames' time from the page measured)."""

WATCH_ROWS = """() => {
  // text -> Date.now() when its row was added to the list, and when it was first painted
  window.benchAdded = new Map();
  window.benchPainted = new Map();
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries())
      window.benchPainted.set(entry.identifier, performance.timeOrigin + entry.renderTime);
  }).observe({ type: "element", buffered: true });
  new MutationObserver((records) => {
    const now = Date.now();
    for (const record of records)
      for (const node of record.addedNodes) {
        const element = node.querySelector?.(".text");
        const text = element?.textContent?.trim();
        if (!text || window.benchAdded.has(text)) continue;
        window.benchAdded.set(text, now);
        element.setAttribute("elementtiming", text); // Element Timing reports its paint
      }
  }).observe(document.querySelector("ol.messages"), { childList: true });
}"""


def wall_ms() -> float:
    """The wall clock in milliseconds, as the page's ``Date.now()`` reads it."""
    return time.time() * 1000


async def _open_conversation(browser: Any, target: Target) -> Any:
    """A person's page in a new conversation without bots; returns the page."""
    context = await browser.new_context(
        base_url=f"http://127.0.0.1:{target.port}",
        viewport={"width": 1100, "height": 760},
        locale="en-US",
    )
    page = await context.new_page()
    await page.goto("/")
    await page.fill("#nickname", "reader")
    for checkbox in await page.locator("input[name=bot]").all():
        await checkbox.set_checked(False)
    await page.get_by_role("button", name="Start the conversation").click()
    await page.locator("#composer-input").wait_for()
    await page.evaluate(WATCH_ROWS)
    return page


async def _times(page: Any, which: str, texts: list[str]) -> list[float | None]:
    """When each text's row was added (``which="Added"``) or painted (``"Painted"``)."""
    script = f"texts => texts.map(t => window.bench{which}.get(t) ?? null)"
    return list(await page.evaluate(script, texts))


async def _painted(page: Any, text: str) -> None:
    await page.wait_for_function(
        "text => window.benchPainted.has(text)", arg=text, timeout=WAIT_MS, polling=POLL_MS
    )


async def measure(
    browser: Any, spec: ServerSpec, workdir: Path, messages: int, singles: int
) -> dict[str, float]:
    """One run at one size; returns the figures."""
    async with running_server(spec, workdir) as target:
        page = await _open_conversation(browser, target)
        conversation_id = await page.evaluate("sessionStorage.getItem('tertulia.conversation')")
        http = target.http()
        sender = None
        try:
            member = await Api(http).join(conversation_id, "writer")
            sender = await Socket.open(target.ws_base, member, Counters())
            texts = [f"burst {n}" for n in range(messages)]
            started = wall_ms()
            for text in texts:
                await sender.send_text(text)
            await _painted(page, texts[-1])
            added = await _times(page, "Added", texts)
            (burst_painted,) = await _times(page, "Painted", texts[-1:])
            in_page, on_screen = [], []
            for n in range(singles):
                text = f"single {n}"
                sent = wall_ms()
                await sender.send_text(text)
                await _painted(page, text)
                (row_added,) = await _times(page, "Added", [text])
                (row_painted,) = await _times(page, "Painted", [text])
                if row_added is None or row_painted is None:  # painted means added
                    raise RuntimeError(f"{text!r}: painted {row_painted}, added {row_added}")
                in_page.append(row_added - sent)
                on_screen.append(row_painted - sent)
        finally:
            if sender is not None:
                await close_all([sender])
            await http.aclose()
            await page.context.close()
    assert burst_painted is not None
    return {
        "burst_s": (burst_painted - started) / 1000,
        "missing": float(sum(1 for time_ in added if time_ is None)),
        "added_p50_ms": statistics.median(in_page),
        "painted_p50_ms": statistics.median(on_screen),
        "painted_max_ms": max(on_screen),
    }


async def run(args: argparse.Namespace) -> None:
    from playwright.async_api import async_playwright

    sizes = [int(size) for size in args.messages.split(",")]
    checkouts = tertulia_checkouts(args.compare)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(args.chromium), args=CHROMIUM_ARGS
        )
        try:
            with tempfile.TemporaryDirectory(prefix="bench-webclient-") as tmp:
                for size in sizes:
                    for run_index in range(args.runs):
                        for label, spec in checkouts:
                            workdir = Path(tmp) / f"{label}-{size}-{run_index}"
                            got = await measure(browser, spec, workdir, size, args.singles)
                            print(
                                f"{label}: {size} texts: burst {got['burst_s']:.2f} s"
                                f" (missing {got['missing']:.0f}); one more at {size} rows:"
                                f" in the page p50 {got['added_p50_ms']:.1f} ms,"
                                f" on screen p50 {got['painted_p50_ms']:.1f} ms"
                                f" max {got['painted_max_ms']:.1f} ms",
                                flush=True,
                            )
        finally:
            await browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", default="1000,3000", help="burst sizes, comma-separated")
    parser.add_argument("--singles", type=int, default=20, help="texts sent one at a time after")
    parser.add_argument("--runs", type=int, default=1, help="runs per size (and checkout)")
    parser.add_argument("--compare", type=Path, help="another checkout to take turns with")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    args = parser.parse_args(argv)
    if not args.chromium.exists():
        print(f"{args.chromium} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
