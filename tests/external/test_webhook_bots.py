"""Webhook bots: signed deliveries, answers inline or later over REST, stable retries."""

from __future__ import annotations

import ast
import asyncio
import hashlib
import hmac
import re
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from external.fakes import TIMEOUT, PersonFactory, SettingsFactory, bot_id, serve, webhook_bot
from support.managers import delivery_rows
from support.server import live_server
from tertulia.bots.runner import delivery_id
from tertulia.client import DELIVERY_HEADER, SIGNATURE_HEADER, post_message, verify_signature

SECRET = "webhook-test-secret"
Answer = Callable[[dict[str, Any], int], Awaitable[Response]]


class FakeWebhook:
    """A bot's endpoint: checks every signature, keeps the deliveries, answers with ``answer``
    (called with the delivery body and how many times this delivery id has been seen)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.deliveries: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.raw: list[bytes] = []
        self.bad_signatures = 0
        self.arrived = asyncio.Event()
        self.app = Starlette(routes=[Route("/hook", self.endpoint, methods=["POST"])])

    async def endpoint(self, request: Request) -> Response:
        raw = await request.body()
        signature = request.headers.get(SIGNATURE_HEADER)
        if not verify_signature(SECRET, raw, signature):
            self.bad_signatures += 1
            return Response(status_code=401)
        expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert signature == f"sha256={expected}"
        body = orjson.loads(raw)
        self.deliveries.append((dict(request.headers), body))
        self.raw.append(raw)
        self.arrived.set()
        seen = sum(
            1
            for h, _ in self.deliveries
            if h[DELIVERY_HEADER.lower()] == request.headers[DELIVERY_HEADER]
        )
        return await self.answer(body, seen)

    def human(self) -> list[tuple[dict[str, str], dict[str, Any]]]:
        """The deliveries of messages people sent."""
        return [(h, b) for h, b in self.deliveries if b["message"]["sent_by_human"]]

    async def wait_human(self, count: int) -> list[tuple[dict[str, str], dict[str, Any]]]:
        async with asyncio.timeout(TIMEOUT):
            while len(self.human()) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.human()


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)


async def test_webhook_answers_inline_and_retries_keep_the_delivery_id(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A signed delivery per message; a 503 is retried with the same delivery id; the inline
    answer is shown once, quoting the question."""

    async def answer(body: dict[str, Any], seen: int) -> Response:
        message = body["message"]
        if not message["sent_by_human"]:
            return Response(status_code=204)
        if seen == 1:
            return Response(status_code=503)
        reply = {
            "type": "T",
            "text": f"pong to {message['text']}",
            "quoted_message_id": message["id"],
        }
        return JSONResponse({"messages": [reply]})

    hook = FakeWebhook(answer)
    async with serve(hook.app) as base:
        settings = make_settings(bots={"Hook": webhook_bot(f"{base}/hook", retries=2)})
        async with live_server(settings) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["Hook"])
            hook_id = bot_id(created.json(), "Hook")
            socket = await alice.connect()
            asked = await socket.message(local_id=await socket.say("ping"))
            reply = await socket.message(sender_id=hook_id, quoted_message_id=asked["id"])
            assert reply["text"] == "pong to ping"

            (first, body), (second, again) = hook.human()
            assert first[DELIVERY_HEADER.lower()] == second[DELIVERY_HEADER.lower()]
            assert body == again
            assert body["delivery_id"] == first[DELIVERY_HEADER.lower()]
            (row,) = [
                r
                for r in await delivery_rows(server, hook_id)
                if r.kind == "message" and r.payload["id"] == asked["id"]
            ]
            # the id an internal bot gets as conversation_info.delivery_id
            assert body["delivery_id"] == delivery_id(hook_id, row.pk)
            assert first["content-type"] == "application/json"
            assert body["conversation_id"] == alice.conversation_id
            assert body["bot_participant_id"] == hook_id
            assert body["message"]["id"] == asked["id"]
            assert body["message"]["text"] == "ping"
            assert {p["name"] for p in body["participants"]} == {"alice", "Hook"}
            assert body["session"]
            assert hook.bad_signatures == 0
            assert all(b["message"].get("sender_id") != hook_id for _, b in hook.deliveries)

            await socket.sync()
            replies = [m for m in socket.messages() if m.get("sender_id") == hook_id]
            assert len(replies) == 1


async def test_webhook_answers_later_over_rest(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """The bot acknowledges at once and answers later over REST with the delivery's session,
    which is reused from one delivery to the next; a tampered body fails the signature."""

    async def answer(body: dict[str, Any], seen: int) -> Response:
        return Response(status_code=202)

    hook = FakeWebhook(answer)
    async with serve(hook.app) as base:
        settings = make_settings(bots={"Hook": webhook_bot(f"{base}/hook")})
        async with live_server(settings) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["Hook"])
            hook_id = bot_id(created.json(), "Hook")
            socket = await alice.connect()
            asked = await socket.message(local_id=await socket.say("what time is it?"))

            ((_, body),) = await hook.wait_human(1)
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                stored = await post_message(
                    client,
                    server.base_url,
                    body["conversation_id"],
                    body["session"],
                    {"type": "T", "text": "tea time", "quoted_message_id": body["message"]["id"]},
                )
            assert stored["sender_id"] == hook_id
            later = await socket.message(sender_id=hook_id, quoted_message_id=asked["id"])
            assert later["text"] == "tea time"

            await socket.message(local_id=await socket.say("and now?"))
            (_, first), (_, second) = await hook.wait_human(2)
            assert first["session"] == second["session"]
            assert first["delivery_id"] != second["delivery_id"]

            index = next(i for i, (_, b) in enumerate(hook.deliveries) if b == first)
            raw, header = hook.raw[index], hook.deliveries[index][0][SIGNATURE_HEADER.lower()]
            assert verify_signature(SECRET, raw, header)
            assert not verify_signature(SECRET, raw + b" ", header)
            assert not verify_signature("other secret", raw, header)
            assert not verify_signature(SECRET, raw, None)


def docs_later_snippet() -> str:
    """docs/bots.md's example of a message posted later, with its ``local_id``."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "bots.md").read_text()
    blocks = [
        textwrap.dedent(block)
        for block in re.findall(r"```python\n(.*?)^\s*```", docs, flags=re.DOTALL | re.M)
        if "later_local_id" in block
    ]
    assert len(blocks) == 1, "docs/bots.md shows one message posted later"
    return blocks[0]


async def test_the_docs_answer_later_runs_and_is_shown_once_when_repeated(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """docs/bots.md's snippet for answering later runs as written (its ``local_id`` fits
    the 32-character limit: the delivery id alone does not), and run twice, as a bot's own
    retry would, it is shown once."""

    async def answer(body: dict[str, Any], seen: int) -> Response:
        return Response(status_code=202)

    snippet = docs_later_snippet()
    hook = FakeWebhook(answer)
    async with serve(hook.app) as base:
        settings = make_settings(bots={"Hook": webhook_bot(f"{base}/hook")})
        async with live_server(settings) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["Hook"])
            hook_id = bot_id(created.json(), "Hook")
            socket = await alice.connect()
            await socket.message(local_id=await socket.say("later, please"))
            ((_, body),) = await hook.wait_human(1)
            assert len(body["delivery_id"]) > 32
            code = compile(
                snippet.replace("https://chat.example.com", server.base_url),
                "docs/bots.md",
                "exec",
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            )
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                for _ in range(2):
                    await eval(code, {"http": http, "body": body})  # raises on a 400
            later = await socket.message(sender_id=hook_id)
            assert later["text"] == "..."
            await socket.sync()
            assert [m for m in socket.messages() if m.get("sender_id") == hook_id] == [later]
