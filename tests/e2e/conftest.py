"""Browser tests: the web client in a real headless Chromium against a live server.

The browser is Debian's ``chromium`` package (``/usr/bin/chromium``, or
``TERTULIA_TEST_CHROMIUM``) driven by Playwright's async API; Playwright's own browser
download is not used. Where the browser or the Python package is missing the tests are
skipped, except with ``CI=true``, where that fails the run.

One browser serves the whole session (starting Chromium takes seconds); each test gets
fresh contexts (own cookies and storage), so tests share nothing but the process. The
tests run on the session's event loop, which the browser is bound to; each starts its own
server with :func:`support.server.live_server` on SQLite.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio

from e2e.browser import TIMEOUT_MS, Tab

CHROMIUM = Path(os.environ.get("TERTULIA_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    # A synthetic microphone, so that voice notes can be recorded for real.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements/dev.txt)"
    return None


@pytest.fixture
def database(tmp_path: Path) -> SimpleNamespace:
    """SQLite only: these tests are about the client; storage has its own suites."""
    return SimpleNamespace(
        url=f"sqlite+aiosqlite:///{tmp_path / 'tertulia.db'}", schema=None, kind="sqlite"
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    """One headless Chromium for the session."""
    reason = _missing()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: the browser tests are required)")
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


TabFactory = Callable[..., Awaitable[Tab]]


@pytest_asyncio.fixture(loop_scope="session")
async def open_tab(browser: Any) -> AsyncIterator[TabFactory]:
    """Open a tab on a server, as a new person; fails the test on any uncaught page error."""
    tabs: list[Tab] = []

    async def make(base_url: str, **options: Any) -> Tab:
        options.setdefault("viewport", {"width": 1100, "height": 760})
        options.setdefault("locale", "en-US")
        context = await browser.new_context(base_url=base_url, **options)
        context.set_default_timeout(TIMEOUT_MS)
        await context.add_init_script(WATCH_POLICY)
        page = await context.new_page()
        tab = Tab(context, page)
        page.on("pageerror", lambda error: tab.errors.append(str(error)))
        tabs.append(tab)
        return tab

    yield make
    for tab in tabs:
        for page in tab.context.pages:
            blocked = await page.evaluate("window.policyViolations ?? []")
            tab.errors.extend(f"content security policy: {what}" for what in blocked)
        await tab.context.close()
    errors = [error for tab in tabs for error in tab.errors]
    assert not errors, f"uncaught errors in the page: {errors}"


WATCH_POLICY = """
window.policyViolations = [];
document.addEventListener("securitypolicyviolation", (event) =>
  window.policyViolations.push(`${event.violatedDirective} blocked ${event.blockedURI}`));
"""
"""Collects what the page's Content-Security-Policy blocked: each is a test failure."""
