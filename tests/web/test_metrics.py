"""``GET /metrics`` with ``metrics = true``: what a process counts, in Prometheus's text
format (tertulia/metrics.py, web/metrics.py). The counters are the process's, shared by the
tests that ran in it before: each test compares two scrapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.blab import Person
from support.bots import bots_with
from support.server import LiveServer, live_server
from support.waiting import until
from tertulia.settings import Settings

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)
SettingsFactory = Callable[..., Settings]
PersonFactory = Callable[[LiveServer], Person]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(server: LiveServer) -> Samples:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "no-store"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_a_conversation_is_counted(make_settings: SettingsFactory, people: Any) -> None:
    """A conversation with ECHO: one more conversation, every stored message (as many as
    its history holds), the socket while it is open, and ECHO's calls with their times;
    the process's own metrics are there too."""
    async with live_server(make_settings(metrics=True)) as server:
        before = await scrape(server)
        assert "process_resident_memory_bytes" in {name for name, _ in before}
        alice = people(server)
        assert (await alice.create(nickname="alice", bots=["ECHO"])).status_code == 201
        socket = await alice.connect()
        open_now = await scrape(server)
        assert grew(before, open_now, "tertulia_websockets_open") == 1
        await socket.say("hi")
        await socket.message(text="HI")

        async def echo_counted() -> bool:
            now = await scrape(server)
            return grew(before, now, "tertulia_bot_calls_total", bot="ECHO", outcome="ok") >= 1

        await until(echo_counted)
        after = await scrape(server)
        history = (await alice.history()).json()["results"]
        assert grew(before, after, "tertulia_conversations_created_total") == 1
        assert grew(before, after, "tertulia_messages_stored_total") == len(history)
        calls = sum(
            grew(before, after, "tertulia_bot_calls_total", bot="ECHO", outcome=outcome)
            for outcome in ("ok", "error", "timeout")
        )
        assert grew(before, after, "tertulia_bot_call_seconds_count", bot="ECHO") == calls
        await socket.close()

        async def closed() -> bool:
            return grew(before, await scrape(server), "tertulia_websockets_open") == 0

        await until(closed)


async def test_a_failing_bot_is_counted(make_settings: SettingsFactory, people: Any) -> None:
    """A bot that raises: its call counts as an error and, no retry left, its delivery as
    failed for good."""
    bots = bots_with("Boom", "RaisingBot", retries=0)
    async with live_server(make_settings(metrics=True, bots=bots)) as server:
        before = await scrape(server)
        alice = people(server)
        assert (await alice.create(nickname="alice", bots=["Boom"])).status_code == 201
        assert (await alice.post(type="T", text="hi", local_id="h1")).status_code == 201

        async def failed() -> bool:
            now = await scrape(server)
            return grew(before, now, "tertulia_bot_deliveries_failed_total", bot="Boom") == 1

        await until(failed)
        after = await scrape(server)
        assert grew(before, after, "tertulia_bot_calls_total", bot="Boom", outcome="error") == 1


async def test_off_unless_asked_for(make_settings: SettingsFactory) -> None:
    """Without ``metrics = true`` there is no such page (what it tells is for operators)."""
    async with (
        live_server(make_settings()) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        response = await http.get("/metrics")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"


async def test_http_requests_are_counted_by_method_and_status(
    make_settings: SettingsFactory, people: Any
) -> None:
    """Every HTTP request counts once, by its method and the status it was answered with
    (the refusals of the middlewares and the error handlers too), and is timed."""
    async with live_server(make_settings(metrics=True)) as server:
        before = await scrape(server)
        alice = people(server)
        assert (await alice.create(nickname="alice")).status_code == 201
        assert (await alice.post(type="Q", text="hi")).status_code == 400
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            assert (await http.get("/api/chat/conversations/nobody/")).status_code in (403, 404)
            assert (await http.request("PROPFIND", "/health")).status_code == 405
        after = await scrape(server)
    assert grew(before, after, "tertulia_http_requests_total", method="POST", status="201") == 1
    assert grew(before, after, "tertulia_http_requests_total", method="POST", status="400") == 1
    assert grew(before, after, "tertulia_http_requests_total", method="other", status="405") == 1
    counted = sum(
        value(after, name, **dict(labels)) - value(before, name, **dict(labels))
        for name, labels in after
        if name == "tertulia_http_requests_total"
    )
    # (the first scrape is counted once it is answered: in the second, not the first)
    timed = grew(before, after, "tertulia_http_request_seconds_count")
    assert counted == timed == 5


async def test_websocket_closes_are_counted_by_code(
    make_settings: SettingsFactory, people: Any
) -> None:
    """A socket that ends counts once, by its close code: the client's, or the server's."""
    async with live_server(make_settings(metrics=True)) as server:
        before = await scrape(server)
        alice = people(server)
        assert (await alice.create(nickname="alice")).status_code == 201
        socket = await alice.connect()
        await socket.close()

        async def counted() -> bool:
            now = await scrape(server)
            return grew(before, now, "tertulia_websockets_closed_total", code="1000") == 1

        await until(counted)
