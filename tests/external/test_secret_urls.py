"""URLs that carry secrets (a token in the query, a user and password) never reach the
logs or the stored delivery errors: an operator's log shipper is no place for them."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from external.fakes import (
    PersonFactory,
    Recorder,
    SettingsFactory,
    bot_id,
    external_bot,
    serve,
    webhook_bot,
)
from support.bots import watch_logs
from support.managers import delivery_rows
from support.process import free_port
from support.server import live_server
from tertulia.bots.external.urls import shown
from tertulia.logs import QUIET_LIBRARIES, configure_logging

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


@pytest.mark.parametrize("kind", ["webhook", "trigger"])
async def test_successful_calls_to_secret_urls_leave_no_secret_in_the_log(
    make_settings: SettingsFactory,
    people: PersonFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    """With the server's own logging (JSON, INFO), a call that succeeds is not logged with
    its URL's password or token by the HTTP libraries (httpx logs every request at INFO)."""
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", "s")
    levels = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    recorder = Recorder()  # answers an empty 200, as a bot that says nothing
    try:
        async with serve(recorder) as base:
            url = base.replace("//", f"//bot:{PASSWORD}@") + f"/hook?code={TOKEN}"
            spec = webhook_bot(url) if kind == "webhook" else external_bot(url)
            settings = make_settings(bots={"Hook": {**spec, "retries": 0}})
            configure_logging("json", "INFO")
            async with live_server(settings) as server:
                alice = people(server)
                created = await alice.create(nickname="alice", bots=["Hook"])
                assert created.status_code == 201, created.text
                socket = await alice.connect()
                await socket.message(local_id=await socket.say("ping"))
                await recorder.wait_for(1)
                await server.registry.runner.idle()
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    written = capsys.readouterr().err
    assert recorder.requests[0].headers["authorization"].startswith("Basic ")
    assert "127.0.0.1" in written  # (the server logged; uvicorn says where it listens)
    assert TOKEN not in written
    assert PASSWORD not in written
