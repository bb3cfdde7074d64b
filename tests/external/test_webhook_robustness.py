"""Webhook bots against endpoints that misbehave: redirects, endless answers, secret URLs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from external.fakes import TIMEOUT, PersonFactory, SettingsFactory, bot_id, serve, webhook_bot
from support.blab import Socket
from support.bots import watch_logs
from support.managers import delivery_rows
from support.server import LiveServer, live_server
from tertulia.cli import delete
from tertulia.errors import ConfigurationError
from tertulia.web.app import create_app

SECRET = "webhook-test-secret"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)


def human_text(body: dict[str, Any]) -> bool:
    return bool(body["message"].get("sent_by_human"))


async def talking_to_hook(server: LiveServer, people: PersonFactory) -> tuple[Socket, str]:
    """alice in a new conversation with ``Hook``, connected: her socket and the bot's id."""
    alice = people(server)
    created = await alice.create(nickname="alice", bots=["Hook"])
    assert created.status_code == 201, created.text
    return await alice.connect(), bot_id(created.json(), "Hook")


async def test_redirect_is_not_taken_for_an_answer(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """An endpoint that answers 307 (moved) has not handled the delivery: it fails, loudly,
    rather than counting as done with nothing shown."""
    moved: list[dict[str, Any]] = []
    asked = asyncio.Event()

    async def hook(request: Request) -> Response:
        body = await request.json()
        if not human_text(body):
            return Response(status_code=204)
        asked.set()
        return RedirectResponse("/moved", status_code=307)

    async def new_home(request: Request) -> Response:
        moved.append(await request.json())
        return JSONResponse({"messages": [{"type": "T", "text": "from the new home"}]})

    app = Starlette(
        routes=[
            Route("/hook", hook, methods=["POST"]),
            Route("/moved", new_home, methods=["POST"]),
        ]
    )
    with watch_logs() as logs:
        async with serve(app) as base:
            settings = make_settings(bots={"Hook": webhook_bot(f"{base}/hook", retries=0)})
            async with live_server(settings) as server:
                socket, hook_id = await talking_to_hook(server, people)
                await socket.message(local_id=await socket.say("ping"))
                await asyncio.wait_for(asked.wait(), TIMEOUT)
                await asyncio.wait_for(server.registry.runner.idle(), TIMEOUT)
                failed = [
                    e
                    for e in logs.entries
                    if e.get("event") == "bot delivery failed for good"
                    and e.get("participant_id") == hook_id
                ]
                assert len(failed) == 1, [e.get("event") for e in logs.entries]
                assert "307" in failed[0]["error"]
                assert moved == []  # the signed body is not sent on to another address


async def test_endless_answer_is_cut_short(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """An endpoint whose answer never ends (or is huge) is not read into memory until the
    bot's time limit: the answer is dropped at a size cap, said once in the log, and the
    bot's next delivery is handled as usual."""
    sent = 0
    stopped = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = b'{"messages": [' + b" " * 65536
        try:
            while True:
                sent += len(chunk)
                yield chunk
                await asyncio.sleep(0)
        finally:
            stopped.set()

    async def hook(request: Request) -> Response:
        body = await request.json()
        if not human_text(body):
            return Response(status_code=204)
        if body["message"]["text"] == "flood":
            return StreamingResponse(endless(), media_type="application/json")
        reply = {"type": "T", "text": "fine", "quoted_message_id": body["message"]["id"]}
        return JSONResponse({"messages": [reply]})

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with watch_logs() as logs:
        async with serve(app) as base:
            settings = make_settings(bots={"Hook": webhook_bot(f"{base}/hook", retries=0)})
            async with live_server(settings) as server:
                socket, hook_id = await talking_to_hook(server, people)
                await socket.message(local_id=await socket.say("flood"))
                toobig = await logs.wait_for(
                    lambda e: e.get("event") == "webhook answer too large", timeout=5
                )
                assert toobig["log_level"] == "error"
                await asyncio.wait_for(stopped.wait(), 5)
                assert sent < 64 * 1024 * 1024

                asked = await socket.message(local_id=await socket.say("and now?"))
                reply = await socket.message(sender_id=hook_id, quoted_message_id=asked["id"])
                assert reply["text"] == "fine"


async def test_a_webhook_that_keeps_failing_gets_one_session_not_one_per_attempt(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """Each attempt at a webhook that has failed from the start (503) sends the bot's
    session; a failed attempt's state is dropped, so every attempt used to make a new
    session (rows piling up for a day during an outage). They now share one."""
    seen: list[str] = []

    async def hook(request: Request) -> Response:
        body = await request.json()
        if human_text(body):
            seen.append(body["session"])
        return Response(status_code=503)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve(app) as base:
        settings = make_settings(bots={"Hook": webhook_bot(f"{base}/hook", retries=1)})
        async with live_server(settings) as server:
            socket, _ = await talking_to_hook(server, people)
            await socket.message(local_id=await socket.say("one"))
            await socket.message(local_id=await socket.say("two"))
            await asyncio.wait_for(server.registry.runner.idle(), TIMEOUT)
    assert len(seen) == 4  # two deliveries, two attempts each
    assert len(set(seen)) == 1


BAD_ANSWERS: dict[str, tuple[Response, str]] = {
    "refuse": (Response(status_code=403), "webhook refused the delivery"),
    "not json": (
        Response(b"fine, thanks", media_type="text/plain"),
        "webhook answer is not JSON; ignored",
    ),
    "bare": (
        JSONResponse({"type": "T", "text": "no wrapper"}),
        "webhook answer has no messages; ignored",
    ),
    "list": (
        JSONResponse([{"type": "T", "text": "no wrapper"}]),
        "webhook answer has no messages; ignored",
    ),
    "scalar": (JSONResponse({"messages": 5}), "webhook answer's messages is not a list; ignored"),
    "entry": (JSONResponse({"messages": [5]}), "webhook answer is not an object; skipped"),
    "refused": (
        JSONResponse({"messages": [{"type": "T", "text": "x" * 100_000}]}),
        "webhook answer refused",
    ),
}


async def test_every_webhook_log_line_names_the_bot_and_the_conversation(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """Two webhook bots on one host: each log line about an answer says which bot (its URL
    alone is shortened to the host), in which conversation; an answer without the
    ``messages`` wrapper (an object, a list) is said, not silently dropped."""

    async def hook(request: Request) -> Response:
        body = await request.json()
        if not human_text(body):
            return Response(status_code=204)
        return BAD_ANSWERS[body["message"]["text"]][0]

    async def quiet(request: Request) -> Response:
        return Response(status_code=204)

    app = Starlette(
        routes=[Route("/hook", hook, methods=["POST"]), Route("/other", quiet, methods=["POST"])]
    )
    with watch_logs() as logs:
        async with serve(app) as base:
            bots = {
                "Hook": webhook_bot(f"{base}/hook", retries=0),
                "Other": webhook_bot(f"{base}/other", retries=0),
            }
            settings = make_settings(bots=bots)
            async with live_server(settings) as server:
                alice = people(server)
                created = await alice.create(nickname="alice", bots=["Hook", "Other"])
                assert created.status_code == 201, created.text
                hook_id = bot_id(created.json(), "Hook")
                socket = await alice.connect()
                for text in BAD_ANSWERS:
                    await socket.message(local_id=await socket.say(text))
                await asyncio.wait_for(server.registry.runner.idle(), TIMEOUT)

    webhook = [e for e in logs.entries if str(e.get("event", "")).startswith("webhook ")]
    assert {e["event"] for e in webhook} == {event for _, event in BAD_ANSWERS.values()}
    for entry in webhook:
        assert entry.get("bot") == "Hook", entry
        assert entry.get("conversation_id") == alice.conversation_id, entry
        assert entry.get("participant_id") == hook_id, entry
        assert entry["log_level"] in ("warning", "error"), entry
    bare = [e for e in webhook if e["event"] == "webhook answer has no messages; ignored"]
    assert sorted(e["answer"] for e in bare) == ["a JSON list", "an object without messages"]


def test_a_webhook_whose_secret_is_unset_stops_the_server_from_starting(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app is not built with a webhook bot that could sign nothing: a configuration
    error naming the bot and the variable (not one failed delivery per message, retried,
    with the bot shown as working meanwhile); arguments that do not fit, too."""
    monkeypatch.delenv("TEST_WEBHOOK_SECRET")
    settings = make_settings(bots={"Hook": webhook_bot("http://127.0.0.1:18141/hook")})
    with pytest.raises(ConfigurationError) as raised:
        create_app(settings)
    assert raised.value.detail == (
        "bot 'Hook': webhook secret variable 'TEST_WEBHOOK_SECRET' is unset or empty"
    )
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    bad = {**webhook_bot("http://127.0.0.1:18141/hook"), "kwargs": {"timeuot": 5}}
    with pytest.raises(ConfigurationError, match=r"^bot 'Hook': WebhookBot takes args"):
        create_app(make_settings(bots={"Hook": bad}))
    for value, reason in (
        ("5", "Input should be a valid number"),
        (0, "Input should be greater than 0"),
        (float("nan"), "Input should be a finite number"),
    ):
        timed = {**webhook_bot("http://127.0.0.1:18141/hook"), "kwargs": {"timeout": value}}
        with pytest.raises(ConfigurationError) as typed:
            create_app(make_settings(bots={"Hook": timed}))
        assert typed.value.detail == f"bot 'Hook': WebhookBot: timeout = {value!r}: {reason}"
    create_app(make_settings(bots={"Hook": webhook_bot("http://127.0.0.1:18141/hook")}))


async def test_a_webhook_too_slow_is_said_to_be_slow_not_unreachable(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A webhook that takes the request but does not answer within the bot's ``timeout``:
    the delivery's error says so (before: "cannot reach …: ReadTimeout: ", sending the
    operator to look at the network)."""
    never = asyncio.Event()

    async def hook(request: Request) -> Response:
        await never.wait()  # (until the server's shutdown cancels it)
        return Response(status_code=204)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve(app) as base:
        spec = webhook_bot(f"{base}/hook", retries=0, kwargs={"timeout": 0.2})
        async with live_server(make_settings(bots={"Hook": spec})) as server:
            socket, hook_id = await talking_to_hook(server, people)
            await socket.message(local_id=await socket.say("hello?"))
            await asyncio.wait_for(server.registry.runner.idle(), TIMEOUT)
            errors = [row.last_error for row in await delivery_rows(server, hook_id)]
    assert any(e and e.endswith("did not answer within 0.2 s (ReadTimeout)") for e in errors), (
        errors
    )


@pytest.mark.parametrize("then", ["answers", "fails"])
async def test_a_webhook_whose_conversation_is_deleted_meanwhile_is_left_alone(
    make_settings: SettingsFactory, people: PersonFactory, then: str
) -> None:
    """``tertulia delete`` while the endpoint works on a delivery: its late answer, or its
    failure, ends the delivery with one info line (``conversation deleted; delivery
    dropped``). The endpoint is not called again: before, a failed attempt was retried,
    sending the deleted conversation's text and participants to the bot twice more, and
    ended as an error; a late answer was a warning, ``webhook answer refused``."""
    calls: list[dict[str, Any]] = []
    asked, release = asyncio.Event(), asyncio.Event()

    async def hook(request: Request) -> Response:
        body = await request.json()
        if not human_text(body):
            return Response(status_code=204)
        calls.append(body)
        asked.set()
        await release.wait()
        if then == "fails":
            return Response(status_code=500)
        return JSONResponse({"messages": [{"type": "T", "text": "too late"}]})

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with watch_logs() as logs:
        async with serve(app) as base:
            settings = make_settings(bots={"Hook": webhook_bot(f"{base}/hook", retries=3)})
            async with live_server(settings) as server:
                alice = people(server)
                created = await alice.create(nickname="alice", bots=["Hook"])
                assert created.status_code == 201, created.text
                hook_id = bot_id(created.json(), "Hook")
                await (await alice.connect()).say("ping")
                await asyncio.wait_for(asked.wait(), TIMEOUT)
                assert await asyncio.to_thread(delete, settings, [alice.conversation_id]) == 0
                release.set()
                dropped = await logs.wait_for(
                    lambda e: e["event"] == "conversation deleted; delivery dropped"
                )
                assert dropped["participant_id"] == hook_id
                await asyncio.wait_for(server.registry.runner.idle(), TIMEOUT)
    assert len(calls) == 1
    events = [e["event"] for e in logs.entries]
    assert "webhook answer refused" not in events
    assert "bot delivery failed for good" not in events
    assert logs.errors() == []
