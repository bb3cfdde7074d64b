"""The web client's files as the server serves them (no browser needed)."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import httpx
import pytest

from support.server import LiveServer

STATIC = Path(__file__).resolve().parents[2] / "src" / "tertulia" / "web" / "static"
IMPORT = re.compile(r"""^import\s[^;]*?from\s+"(\.{1,2}/[^"]+)";""", re.MULTILINE | re.DOTALL)


def _module_graph(entry: str) -> list[str]:
    """Every module reachable from ``entry`` (a path under /static/), by its imports."""
    seen: list[str] = []
    todo = [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        source = (STATIC / path).read_text(encoding="utf-8")
        base = posixpath.dirname(path)
        for target in IMPORT.findall(source):
            todo.append(posixpath.normpath(posixpath.join(base, target)))
    return seen


async def test_the_page_and_every_module_are_served(server: LiveServer) -> None:
    """``/`` is the client's page; it and every module it imports come from /static/."""
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="/static/app.js">' in page.text
        assert (await client.head("/")).status_code == 200

        modules = _module_graph("app.js")
        assert len(modules) > 10
        for module in modules:
            response = await client.get(f"/static/{module}")
            assert response.status_code == 200, module
            assert "javascript" in response.headers["content-type"], module
        for asset in ("style.css", "icon.svg"):
            assert (await client.get(f"/static/{asset}")).status_code == 200
        # The JSON API is where it was.
        assert (await client.get("/api/chat/bots/")).json()["results"]


async def test_the_client_is_revalidated_on_every_use(server: LiveServer) -> None:
    """Every file of the client says ``no-cache`` (the browser asks again each time, and a
    file that did not change costs a 304): after an upgrade no browser runs an old module
    beside new ones, as a heuristic freshness (a tenth of a file's age) would allow."""
    files = [*(f"/static/{module}" for module in _module_graph("app.js")), "/static/style.css"]
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        assert (await client.get("/")).headers["cache-control"] == "no-cache"  # (1 KB, resent)
        for path in files:
            response = await client.get(path)
            assert response.headers["cache-control"] == "no-cache", path
            again = await client.get(path, headers={"If-None-Match": response.headers["etag"]})
            assert again.status_code == 304, path
            assert again.headers["cache-control"] == "no-cache", path


@pytest.mark.parametrize("path", ["/", "/static/index.html"])
async def test_the_page_allows_only_its_own_code(server: LiveServer, path: str) -> None:
    """The page's Content-Security-Policy runs only the server's scripts and styles, talks
    only to its own origin, and may not be framed; media may come from elsewhere (external
    files are http(s) addresses). Every browser test fails on anything it blocks. The same
    page at its static address has the same headers (security QA: it had none, and could
    be framed)."""
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        page = await client.get(path)
        script = await client.get("/static/app.js")
    assert page.status_code == 200
    assert script.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in script.headers  # (a page's header only)
    header = page.headers["content-security-policy"]
    policy = {
        name: value.strip()
        for name, _, value in (part.strip().partition(" ") for part in header.split(";"))
        if name
    }
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    host = server.base_url.removeprefix("http://")
    assert policy["connect-src"] == f"'self' ws://{host} wss://{host}"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
