"""The LLM bot against a local server speaking the OpenAI chat-completions API."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from external.fakes import TIMEOUT, PersonFactory, SettingsFactory, bot_id, completion, serve
from support.bots import watch_logs
from support.server import live_server
from tertulia.errors import ConfigurationError
from tertulia.web.app import create_app

KEY = "sk-test-key"


class FakeLLM:
    """``POST /v1/chat/completions``: the first ``failures`` requests get ``status`` (with a
    short ``Retry-After``), the rest a completion numbered by the request."""

    def __init__(self, failures: int = 0, status: int = 429) -> None:
        self.failures = failures
        self.status = status
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append((dict(request.headers), body))
        if len(self.requests) <= self.failures:
            return JSONResponse(
                {"error": {"message": "try later", "type": "rate_limit"}},
                status_code=self.status,
                headers={"retry-after-ms": "20", "retry-after": "1"},
            )
        number = len(self.requests)
        return JSONResponse(completion(f"answer {number}", model=body["model"], number=number))


def llm_bot(base_url: str, **fields: Any) -> dict[str, Any]:
    kwargs = {
        "base_url": f"{base_url}/v1",
        "model": "test-model",
        "api_key_env": "TEST_LLM_KEY",
        "system_prompt": "Be brief.",
        "context_messages": 4,
        "temperature": 0.2,
        "max_tokens": 50,
        "timeout": 5,
        "max_retries": 2,
    }
    kwargs.update(fields.pop("kwargs", {}))
    return {
        "module": "tertulia.bots.external",
        "class": "OpenAIChatBot",
        "kwargs": kwargs,
        **fields,
    }


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", KEY)


async def test_llm_bot_retries_a_429_then_answers_with_context(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A 429 with Retry-After is retried; the answer quotes the question; the next prompt holds
    the earlier turns (people as user, bots as assistant)."""
    llm = FakeLLM(failures=1, status=429)
    async with serve(llm.app) as base:
        settings = make_settings(bots={"LLM": llm_bot(base)})
        async with live_server(settings) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["LLM"])
            llm_id = bot_id(created.json(), "LLM")
            socket = await alice.connect()

            asked = await socket.message(local_id=await socket.say("hi there"))
            reply = await socket.message(sender_id=llm_id, quoted_message_id=asked["id"])
            assert reply["text"] == "answer 2"
            assert len(llm.requests) == 2
            headers, body = llm.requests[1]
            assert headers["authorization"] == f"Bearer {KEY}"
            assert body["model"] == "test-model"
            assert body["temperature"] == 0.2
            assert body["max_tokens"] == 50
            assert body["messages"] == [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi there"},
            ]

            again = await socket.message(local_id=await socket.say("and again?"))
            second = await socket.message(sender_id=llm_id, quoted_message_id=again["id"])
            assert second["text"] == "answer 3"
            assert llm.requests[2][1]["messages"] == [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi there"},
                {"role": "assistant", "content": "answer 2"},
                {"role": "user", "content": "and again?"},
            ]


async def test_llm_bot_failing_for_good_posts_nothing(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """5xx on every try: retried by the client, then one clear error line and no answer."""
    llm = FakeLLM(failures=1000, status=503)
    settings_fields = {"retries": 0, "kwargs": {"max_retries": 1}}
    with watch_logs() as logs:
        async with serve(llm.app) as base:
            settings = make_settings(bots={"LLM": llm_bot(base, **settings_fields)})
            async with live_server(settings) as server:
                alice = people(server)
                created = await alice.create(nickname="alice", bots=["LLM"])
                llm_id = bot_id(created.json(), "LLM")
                socket = await alice.connect()
                await socket.message(local_id=await socket.say("anyone?"))

                failed = await logs.wait_for(lambda e: e.get("event") == "LLM request failed")
                assert failed["log_level"] == "error"
                assert failed["status"] == 503
                assert failed["participant_id"] == llm_id
                assert failed["conversation_id"] == alice.conversation_id
                await logs.wait_for(
                    lambda e: (
                        e.get("event") == "bot delivery failed for good"
                        and e.get("participant_id") == llm_id
                    )
                )
                assert len(llm.requests) == 2
                await socket.sync()
                assert not [m for m in socket.messages() if m.get("sender_id") == llm_id]
                history = (await alice.history()).json()["results"]
                assert not [m for m in history if m.get("sender_id") == llm_id]


async def test_llm_bot_ignores_what_people_did_not_say(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """System events and other bots' messages never reach the LLM."""
    llm = FakeLLM()
    async with serve(llm.app) as base:
        bots = {
            "ECHO": {"module": "tertulia.bots.builtin", "class": "UpperCaseEchoBot"},
            "LLM": llm_bot(base),
        }
        async with live_server(make_settings(bots=bots)) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["ECHO", "LLM"])
            llm_id = bot_id(created.json(), "LLM")
            socket = await alice.connect()
            asked = await socket.message(local_id=await socket.say("hello"))
            await socket.message(sender_id=llm_id, quoted_message_id=asked["id"])
            if "HELLO" not in [m.get("text") for m in socket.messages()]:
                await socket.message(text="HELLO")
            await asyncio.wait_for(server.registry.runner.idle(), TIMEOUT)
            assert len(llm.requests) == 1


def test_an_llm_bot_whose_key_is_unset_stops_the_server_from_starting(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a webhook's secret: a configuration error naming the bot and the variable at the
    start (not one failed delivery per message, retried, with the bot shown as working
    meanwhile); arguments that do not fit (no ``model``) or of the wrong type too (each
    delivery would fail on them); no key needed, none asked."""
    monkeypatch.delenv("TEST_LLM_KEY")
    settings = make_settings(bots={"Llm": llm_bot("http://127.0.0.1:18142")})
    with pytest.raises(ConfigurationError) as raised:
        create_app(settings)
    assert raised.value.detail == "bot 'Llm': LLM API key variable 'TEST_LLM_KEY' is unset or empty"
    keyless = llm_bot("http://127.0.0.1:18142", kwargs={"api_key_env": ""})
    create_app(make_settings(bots={"Llm": keyless}))
    monkeypatch.setenv("TEST_LLM_KEY", KEY)
    unnamed = llm_bot("http://127.0.0.1:18142")
    del unnamed["kwargs"]["model"]
    with pytest.raises(ConfigurationError, match=r"^bot 'Llm': OpenAIChatBot takes kwargs model"):
        create_app(make_settings(bots={"Llm": unnamed}))
    for name, value, reason in (
        ("temperature", "hot", "Input should be a valid number"),
        ("context_messages", "10", "Input should be a valid integer"),
        ("api_key_env", 5, "Input should be a valid string"),
        ("timeout", -5, "Input should be greater than 0"),
    ):
        wrong = llm_bot("http://127.0.0.1:18142", kwargs={name: value})
        with pytest.raises(ConfigurationError) as typed:
            create_app(make_settings(bots={"Llm": wrong}))
        assert typed.value.detail == f"bot 'Llm': OpenAIChatBot: {name} = {value!r}: {reason}"
    create_app(make_settings(bots={"Llm": llm_bot("http://127.0.0.1:18142")}))
