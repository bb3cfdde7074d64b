"""Real local servers for the external-bot tests: any ASGI app on port 0, a request
recorder, and a TCP proxy that can cut connections (a network drop, not a mock)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from sqlalchemy import select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from support.blab import Person
from support.server import LiveServer, live_server
from tertulia.serving import serving
from tertulia.settings import Settings
from tertulia.storage.tables import sessions

SettingsFactory = Callable[..., Settings]
PersonFactory = Callable[[LiveServer], Person]
TIMEOUT = 10.0


@asynccontextmanager
async def serve(app: ASGIApp, *, lifespan: str = "off") -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 at a free port until the block ends; yields its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        loop="asyncio",
        log_config=None,
        access_log=False,
        lifespan=lifespan,
        timeout_graceful_shutdown=2,
    )
    async with serving(uvicorn.Server(config)) as port:
        yield f"http://127.0.0.1:{port}"


@dataclass
class Recorded:
    """One HTTP request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Recorder:
    """ASGI middleware that keeps every HTTP request (then passes it on, if there is an app).

    Without an app it answers an empty 200, like BLAB's bot library does to a trigger.
    """

    app: ASGIApp | None = None
    requests: list[Recorded] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if self.app is not None:
                await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append(Recorded(scope["method"], scope["path"], headers, body))
        self._arrived.set()
        if self.app is None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def wait_for(self, count: int, timeout: float = TIMEOUT) -> list[Recorded]:
        """The first ``count`` requests, once they have arrived."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.requests[:count]


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def bot_id(created: dict[str, Any], name: str) -> str:
    """The participant id of the bot called ``name`` in a create response."""
    return str(next(p["id"] for p in created["participants"] if p["name"] == name))


def external_bot(url: str, **fields: Any) -> dict[str, Any]:
    """A ``bots`` entry for a BLAB WebSocket-triggered bot at ``url``."""
    return {
        "module": "tertulia.bots.external",
        "class": "WebSocketExternalBot",
        "args": [url],
        **fields,
    }


def webhook_bot(url: str, **fields: Any) -> dict[str, Any]:
    """A ``bots`` entry for a webhook bot at ``url``, its secret in ``TEST_WEBHOOK_SECRET``."""
    return {
        "module": "tertulia.bots.external",
        "class": "WebhookBot",
        "args": [url, "TEST_WEBHOOK_SECRET"],
        **fields,
    }


def completion(text: str, *, model: str, number: int = 1) -> dict[str, Any]:
    """An OpenAI chat completion answering ``text``, as a fake model sends it."""
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
    }


def as_bot(server: LiveServer, people: PersonFactory, trigger: Recorded | dict[str, Any]) -> Person:
    """A client with the session a trigger handed the bot (a bot program's, BLAB's kind):
    ``trigger`` is the recorded trigger, or its body."""
    body = trigger.json() if isinstance(trigger, Recorded) else trigger
    bot = people(server)
    bot.http.cookies.set("sessionid", body["session"], domain="127.0.0.1")
    bot.conversation_id = body["conversation_id"]
    bot.participant_id = body["bot_participant_id"]
    return bot


async def expiry(server: LiveServer, key: str) -> Any:
    """When the session ``key`` lapses, as stored."""
    async with server.registry.db.read() as conn:
        found = await conn.execute(select(sessions.c.expires_at).where(sessions.c.key == key))
        return found.scalar_one()


@dataclass
class BotRoom:
    """alice's conversation with the WebSocket bot ``Ext`` on a live server; the bot's
    triggers go to ``recorder``."""

    server: LiveServer
    alice: Person
    created: dict[str, Any]
    recorder: Recorder

    @property
    def ext(self) -> str:
        """The bot's participant id."""
        return bot_id(self.created, "Ext")


@asynccontextmanager
async def room_with_ext(
    make_settings: SettingsFactory,
    people: PersonFactory,
    *,
    recorder: Recorder | None = None,
    ext: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[BotRoom]:
    """A server with one WebSocket bot ``Ext`` (its spec's fields ``ext``), and alice's
    conversation with it, created; ``settings`` are the server's others."""
    recorder = recorder or Recorder()
    async with serve(recorder) as url:
        bots = {"Ext": external_bot(url, **(ext or {}))}
        async with live_server(make_settings(bots=bots, **settings)) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["Ext"])
            assert created.status_code == 201, created.text
            yield BotRoom(server, alice, created.json(), recorder)
