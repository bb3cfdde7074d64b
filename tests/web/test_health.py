"""``GET /health``: a load balancer's or a supervisor's question, whether this process can
serve, answered by its database and its broker (web/health.py)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from support.environment import POSTGRES_URL, REDIS_URL, require_service
from support.proxy import ProxyFactory
from support.server import LiveServer, live_server
from support.waiting import until
from tertulia.settings import Settings

SettingsFactory = Callable[..., Settings]


async def health(server: LiveServer) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        return await http.get("/health")


def through(url: str, port: int) -> str:
    """``url`` with its port replaced (to go through a proxy)."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.hostname}:{port}").geturl()


async def test_a_serving_process_is_healthy(make_settings: SettingsFactory) -> None:
    """200 with each part's state, never cached; HEAD and the trailing slash answer too."""
    async with live_server(make_settings()) as server:
        response = await health(server)
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}
        assert response.headers["cache-control"] == "no-store"
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            assert (await http.head("/health")).status_code == 200
            assert (await http.get("/health/")).status_code == 200


@pytest.mark.parametrize(
    ("part", "database"), [("database", "postgresql"), ("broker", "sqlite")], indirect=["database"]
)
async def test_a_part_cut_off_is_503_until_it_is_back(
    part: str, make_settings: SettingsFactory, database: Any, proxy_to: ProxyFactory
) -> None:
    """PostgreSQL or Redis unreachable (its connections cut, new ones refused): 503 naming
    that part, and nothing of the reason (the body is public); 200 again once it is back."""
    service, url = ("PostgreSQL", POSTGRES_URL) if part == "database" else ("Redis", REDIS_URL)
    require_service(service, url)
    proxy = await proxy_to(urlsplit(url).port or 0)
    settings = make_settings(**{f"{part}_url": through(url, proxy.listen_port)})
    async with live_server(settings) as server:
        assert (await health(server)).status_code == 200
        proxy.refusing = True
        proxy.drop()
        response = await health(server)
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "database": "ok",
            "broker": "ok",
            part: "unavailable",
        }
        proxy.refusing = False
        await until(lambda: _healthy(server))


async def _healthy(server: LiveServer) -> bool:
    return (await health(server)).status_code == 200


async def test_a_probe_past_its_time_that_fails_later_leaves_no_unread_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A probe given up on (a database that holds the connection without answering) that
    ends with an error later is not reported by asyncio as "Task exception was never
    retrieved", once per probe of a monitor (operators' QA)."""
    from tertulia.web import health

    monkeypatch.setattr(health, "HEALTH_TIMEOUT", 0.01)
    loop = asyncio.get_running_loop()
    unread: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: unread.append(context))
    released = asyncio.Event()

    async def holds_then_fails() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await released.wait()  # (the connection ends only once the outage does)
            raise RuntimeError("the database cannot be reached") from None

    assert await health._check("database", holds_then_fails()) is False
    assert len(health._abandoned) == 1
    released.set()
    await until(lambda: not health._abandoned)  # (ended, and no longer referenced)
    gc.collect()
    assert unread == []
