"""The LLM bot's prompt stays within what a model with a modest context window accepts."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from external.fakes import PersonFactory, SettingsFactory, bot_id, completion, serve
from support.bots import watch_logs
from support.server import live_server

KEY = "sk-test-key"
WINDOW = 20_000  # characters the fake model accepts in one prompt


class SmallModel:
    """An OpenAI-compatible endpoint that refuses, as vLLM or OpenAI do, a prompt over its
    context window (400), and answers the rest."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        size = sum(len(turn["content"]) for turn in body["messages"])
        if size > WINDOW:
            error = {
                "message": f"This model's maximum context length is {WINDOW}; you asked {size}",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            }
            return JSONResponse({"error": error}, status_code=400)
        number = len(self.requests)
        return JSONResponse(completion(f"ok {number}", model=body["model"], number=number))


def small_llm(base: str) -> dict[str, Any]:
    """A ``bots`` entry for the LLM bot on the fake model at ``base``: no retries of its own
    or the runner's, so each message is one request."""
    return {
        "module": "tertulia.bots.external",
        "class": "OpenAIChatBot",
        "retries": 0,
        "kwargs": {
            "base_url": f"{base}/v1",
            "model": "small",
            "api_key_env": "TEST_LLM_KEY",
            "timeout": 5,
            "max_retries": 0,
        },
    }


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", KEY)


async def test_long_messages_do_not_overflow_the_prompt(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """People paste long texts (up to the 4000-character limit each): the context is cut to
    a character budget, oldest turns first, so the model keeps answering."""
    model = SmallModel()
    async with serve(model.app) as base:
        spec = small_llm(base)
        async with live_server(make_settings(bots={"LLM": spec})) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["LLM"])
            llm_id = bot_id(created.json(), "LLM")
            socket = await alice.connect()
            for n in range(6):
                text = f"{n} " + "long text " * 390
                asked = await socket.message(local_id=await socket.say(text))
                answer = await socket.message(sender_id=llm_id, quoted_message_id=asked["id"])
                assert answer["text"].startswith("ok ")
            last = model.requests[-1]["messages"]
            assert last[-1]["content"].startswith("5 ")
            assert len(last) > 2  # still some context, the newest turns
            previous = f"ok {len(model.requests) - 1}"
            assert last[-2] == {"role": "assistant", "content": previous}


MALFORMED: list[Any] = [
    b"<html>bad gateway</html>",  # not JSON at all
    {"choices": [{"index": 0, "message": None, "finish_reason": "stop"}]},
    {"choices": [{"index": 0, "message": {"role": "assistant", "content": 42}}]},
    ["not", "an", "object"],
]


async def test_malformed_answers_are_failures_said_once(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A model (or a proxy before it) answers 200 with something that is no completion: the
    delivery fails with one ``LLM answer unreadable`` line naming the model, not a raw
    traceback; the bot answers the next message once the model is well again."""
    answers = list(MALFORMED)

    async def chat(request: Request) -> Response:
        await request.json()
        if answers:
            bad = answers.pop(0)
            if isinstance(bad, bytes):
                return Response(bad, media_type="application/json")
            return JSONResponse(bad)
        return JSONResponse(completion("well again", model="small"))

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    with watch_logs() as logs:
        async with serve(app) as base:
            spec = small_llm(base)
            async with live_server(make_settings(bots={"LLM": spec})) as server:
                alice = people(server)
                created = await alice.create(nickname="alice", bots=["LLM"])
                llm_id = bot_id(created.json(), "LLM")
                socket = await alice.connect()
                for n in range(len(MALFORMED)):
                    await socket.message(local_id=await socket.say(f"try {n}"))
                asked = await socket.message(local_id=await socket.say("and now"))
                answer = await socket.message(sender_id=llm_id, quoted_message_id=asked["id"])
                assert answer["text"] == "well again"
    unreadable = [e for e in logs.entries if e.get("event") == "LLM answer unreadable"]
    assert len(unreadable) == len(MALFORMED)
    assert all(e.get("model") == "small" for e in unreadable)
    failures = [e["error"] for e in logs.entries if e.get("event") == "bot call failed"]
    assert len(failures) == len(MALFORMED)
    assert all(error.startswith("LLMFailed: ") for error in failures), failures


async def test_a_retry_after_a_failure_halfway_sends_the_same_answer(
    make_settings: SettingsFactory, people: PersonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer longer than a message goes out in pieces; storing the second fails once
    (the database, say). The retry sends the rest of the same answer, not the rest of a new
    completion (the model is asked once): people see one answer, whole."""
    calls: list[int] = []

    async def chat(request: Request) -> Response:
        await request.json()
        calls.append(1)
        text = ("A" if len(calls) == 1 else "B") * 5000
        return JSONResponse(completion(text, model="small", number=len(calls)))

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    async with serve(app) as base:
        spec = {**small_llm(base), "retries": 1}
        async with live_server(make_settings(bots={"LLM": spec})) as server:
            registry = server.registry
            send = registry.send_from_bot
            sent = 0

            async def fails_once(*args: Any, **kwargs: Any) -> Any:
                nonlocal sent
                sent += 1
                if sent == 2:
                    raise RuntimeError("storing failed once")
                return await send(*args, **kwargs)

            monkeypatch.setattr(registry, "send_from_bot", fails_once)
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["LLM"])
            llm_id = bot_id(created.json(), "LLM")
            socket = await alice.connect()
            await socket.message(local_id=await socket.say("tell me a long story"))
            await registry.runner.idle()
            history = (await alice.history()).json()["results"]
    pieces = [m["text"] for m in history if m.get("sender_id") == llm_id]
    assert len(calls) == 1
    assert sorted(pieces, key=len, reverse=True) == ["A" * 4000, "A" * 1000]
