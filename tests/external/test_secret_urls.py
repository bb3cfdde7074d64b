"""URLs that carry secrets (a token in the query, a user and password) never reach the
logs or the stored delivery errors: an operator's log shipper is no place for them."""

from __future__ import annotations

from typing import Any

import pytest

from external.fakes import PersonFactory, SettingsFactory, bot_id
from support.bots import watch_logs
from support.managers import delivery_rows
from support.process import free_port
from support.server import live_server
from tertulia.bots.external.urls import shown

TOKEN = "tok-3141592653"
PASSWORD = "pw-2718281828"


def test_shown_urls_keep_where_and_drop_secrets() -> None:
    assert shown(f"https://bot:{PASSWORD}@hooks.example.com:8443/h?code={TOKEN}#x") == (
        "https://hooks.example.com:8443/…?…"
    )
    assert shown(f"https://hooks.slack.com/services/T0/B0/{TOKEN}") == "https://hooks.slack.com/…"
    assert shown("http://127.0.0.1/") == "http://127.0.0.1/"
    assert shown("http://[::1/broken") == "(an invalid URL)"


@pytest.mark.parametrize("kind", ["webhook", "trigger"])
async def test_unreachable_secret_urls_are_logged_without_their_secrets(
    make_settings: SettingsFactory, people: PersonFactory, monkeypatch: Any, kind: str
) -> None:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", "s")
    url = f"http://bot:{PASSWORD}@127.0.0.1:{free_port()}/hook?code={TOKEN}"
    if kind == "webhook":
        spec = {"module": "tertulia.bots.external", "class": "WebhookBot"}
        spec["args"] = [url, "TEST_WEBHOOK_SECRET"]
    else:
        spec = {"module": "tertulia.bots.external", "class": "WebSocketExternalBot"}
        spec["args"] = [url]
    with watch_logs() as logs:
        settings = make_settings(bots={"Hook": {**spec, "retries": 0}})
        async with live_server(settings) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["Hook"])
            assert created.status_code == 201, created.text
            hook_id = bot_id(created.json(), "Hook")
            socket = await alice.connect()
            await socket.message(local_id=await socket.say("ping"))
            await server.registry.runner.idle()
            rows = await delivery_rows(server, hook_id)
    failed = [r for r in rows if r.status == "failed"]
    assert failed
    assert all("127.0.0.1" in (r.last_error or "") for r in failed)
    said = repr([logs.entries, [r.last_error for r in rows]])
    assert "127.0.0.1" in said
    assert TOKEN not in said
    assert PASSWORD not in said
