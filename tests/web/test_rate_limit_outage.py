"""Rate limits kept in Redis while Redis is unreachable: requests are neither refused with
a 500 nor left hanging; the limits fall back to this process's own counters (ratelimit.py)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from support.environment import REDIS_URL, require_service
from support.rest import PersonFactory, SettingsFactory, call
from support.server import LiveServer, live_server
from tertulia.web.ratelimit import RateLimits

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def closed_port() -> int:
    """A local port nothing listens on (connections to it are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def cut_limits_off_redis(server: LiveServer) -> None:
    """The rate limits' Redis connections break, and new ones are refused (a Redis restart
    or outage as the limits see it; the broker's own connections are left alone)."""
    limits: RateLimits = server.app.state.services.rate_limits
    pool = limits._pool
    assert pool is not None
    pool.connection_kwargs["port"] = closed_port()
    await pool.disconnect()


@pytest.fixture
async def server(make_settings: SettingsFactory) -> AsyncIterator[LiveServer]:
    """A live server whose broker, and so rate limits, are in Redis."""
    require_service("Redis", REDIS_URL)
    rules = {"create": "3/minute", "join": "100/minute", "handshake": "100/minute"}
    async with live_server(
        make_settings(broker_url=REDIS_URL, rate_limits={**rules, "message": "100/minute"})
    ) as running:
        yield running


async def test_requests_are_served_while_redis_limits_are_down(
    server: LiveServer, people: PersonFactory
) -> None:
    """Create, join, post and a WebSocket handshake all work with the limits' Redis gone:
    never a 500 (nor an HTTP 500 on the handshake)."""
    await cut_limits_off_redis(server)
    alice = people(server)
    created = await alice.create(nickname="alice", bots=[])
    assert created.status_code == 201, created.text
    assert alice.conversation_id is not None
    rejoined = await alice.join(alice.conversation_id)
    assert rejoined.status_code == 200, rejoined.text
    posted = await alice.post(type="T", text="hello")
    assert posted.status_code == 201, posted.text
    socket_ = await alice.connect()
    await socket_.state()


async def test_limits_still_apply_per_process_while_redis_is_down(
    server: LiveServer, people: PersonFactory
) -> None:
    """Failing over is deliberate, not open: this process counts on its own meanwhile."""
    await cut_limits_off_redis(server)
    statuses = []
    for _ in range(4):
        response = await call(server, "POST", "/api/chat/conversations/", json={})
        statuses.append(response.status_code)
    assert statuses == [201, 201, 201, 429]


async def test_the_wait_is_the_whole_window_when_redis_cannot_say(server: LiveServer) -> None:
    """``retry_after`` asked of Redis while it is away (before any hit has failed over):
    the rule's whole window, at once, rather than an error or a guess too short."""
    await cut_limits_off_redis(server)
    limits: RateLimits = server.app.state.services.rate_limits
    assert await limits.retry_after("message", "somebody") == 60
