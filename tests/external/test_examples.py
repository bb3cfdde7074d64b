"""The example bots of ``examples/`` work as their docstrings say, and the SDK's public names."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import tertulia.bots.external
import tertulia.client
from external.fakes import PersonFactory, SettingsFactory, bot_id, external_bot, serve
from support.server import live_server
from tertulia.client import websocket_base

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_example_echo_bot(make_settings: SettingsFactory, people: PersonFactory) -> None:
    """examples/echo_bot.py greets and repeats what people say."""
    bot = load("echo_bot").bot
    async with bot.running() as trigger_url:
        settings = make_settings(bots={"Echo": external_bot(trigger_url)})
        async with live_server(settings) as server:
            bot.ws_url = websocket_base(server.base_url)
            alice = people(server)
            echo_id = bot_id((await alice.create(bots=["Echo"])).json(), "Echo")
            socket = await alice.connect(after=0)
            await socket.message(sender_id=echo_id, text="Hi! I repeat what you say.")
            asked = await socket.message(local_id=await socket.say("hello"))
            answer = await socket.message(sender_id=echo_id, quoted_message_id=asked["id"])
            assert answer["text"] == "You said: hello"
            await bot.aclose()


def walkthrough_client() -> str:
    """docs/bots.md's step 5 of the SDK walkthrough (a person saying hello), unindented."""
    docs = (EXAMPLES.parent / "docs" / "bots.md").read_text()
    step = docs[docs.index("5. **Talk to it.**") :]
    block = re.search(r"```python\n(.*?)^\s*```", step, flags=re.DOTALL | re.M)
    assert block is not None
    return textwrap.dedent(block.group(1))


async def test_the_walkthrough_talks_to_the_example_echo_bot(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """The SDK walkthrough's client, as docs/bots.md shows it, gets the example bot's
    answer and ends: it used to say hello before the bot had connected (a bot's first
    connection starts after the messages stored), so no answer came, and it never ended."""
    bot = load("echo_bot").bot
    client = walkthrough_client()
    assert client.rstrip().endswith("asyncio.run(main())")
    async with bot.running() as trigger_url:
        settings = make_settings(bots={"Echo": external_bot(trigger_url)})
        async with live_server(settings) as server:
            bot.ws_url = websocket_base(server.base_url)
            host = server.base_url.split("://", 1)[1]
            code = client.replace("127.0.0.1:8000", host).replace("asyncio.run(main())", "")
            printed: list[str] = []
            namespace: dict[str, object] = {"print": printed.append}
            exec(compile(code, "docs/bots.md", "exec"), namespace)
            main = namespace["main"]
            assert callable(main)
            await asyncio.wait_for(main(), 10)
            await bot.aclose()
    # (the greeting and the hello race: the bot greets as it connects)
    assert sorted(printed[:2]) == ["Hi! I repeat what you say.", "hello"]
    assert printed[2:] == ["You said: hello"]


async def test_example_webhook_bot(
    make_settings: SettingsFactory, people: PersonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/webhook_bot.py answers inline with the text reversed."""
    monkeypatch.setenv("REVERSE_SECRET", "example-secret")
    example = load("webhook_bot")
    async with serve(example.app) as base:
        spec = {
            "module": "tertulia.bots.external",
            "class": "WebhookBot",
            "args": [f"{base}/hook", "REVERSE_SECRET"],
        }
        async with live_server(make_settings(bots={"Reverse": spec})) as server:
            alice = people(server)
            reverse_id = bot_id((await alice.create(bots=["Reverse"])).json(), "Reverse")
            socket = await alice.connect()
            asked = await socket.message(local_id=await socket.say("stressed"))
            answer = await socket.message(sender_id=reverse_id, quoted_message_id=asked["id"])
            assert answer["text"] == "desserts"


def test_public_names() -> None:
    """The SDK and the external bots export exactly these names."""
    assert sorted(tertulia.client.__all__) == sorted(
        [
            "BotApp",
            "ChatMessage",
            "Conversation",
            "DELIVERY_HEADER",
            "SIGNATURE_HEADER",
            "post_message",
            "sign",
            "verify_signature",
            "websocket_base",
        ]
    )
    assert sorted(tertulia.bots.external.__all__) == [
        "OpenAIChatBot",
        "WebSocketExternalBot",
        "WebhookBot",
    ]
