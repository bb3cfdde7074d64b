"""The API's documentation pages (Swagger UI and ReDoc) work on a server with no way out:
their scripts and styles come from the server itself, not from a CDN."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from e2e.browser import expect
from support.server import live_server

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _offline_page(open_tab: Any, base_url: str) -> tuple[Any, list[str]]:
    """A tab whose requests to any other host are aborted, and listed unless they are for
    an image (ReDoc's "API docs by Redocly" link shows its logo from Redocly's CDN; the
    page works without it)."""
    tab = await open_tab(base_url)
    here = urlsplit(base_url).netloc
    elsewhere: list[str] = []

    async def only_here(route: Any) -> None:
        if urlsplit(route.request.url).netloc == here:
            await route.continue_()
        else:
            if route.request.resource_type != "image":
                elsewhere.append(route.request.url)
            await route.abort()

    await tab.page.route("**/*", only_here)
    return tab.page, elsewhere


async def test_swagger_ui_renders_the_api_offline(make_settings, open_tab) -> None:
    async with live_server(make_settings()) as server:
        page, elsewhere = await _offline_page(open_tab, server.base_url)
        await page.goto("/api/chat/_docs/")
        await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Tertulia")
        operation = page.locator(".opblock-summary-path", has_text="/api/chat/conversations/")
        await expect(operation.first).to_be_visible()
        assert elsewhere == []


async def test_redoc_renders_the_api_offline(make_settings, open_tab) -> None:
    async with live_server(make_settings()) as server:
        page, elsewhere = await _offline_page(open_tab, server.base_url)
        await page.goto("/api/chat/_docs/redoc/")
        await expect(page.locator("h1", has_text="Tertulia")).to_be_visible()
        assert elsewhere == []
