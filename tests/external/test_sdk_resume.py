"""The SDK's resume after a drop, when nothing had arrived on the socket before it."""

from __future__ import annotations

import asyncio

import pytest

from external.fakes import (
    TIMEOUT,
    PersonFactory,
    SettingsFactory,
    bot_id,
    external_bot,
)
from support.proxy import ProxyFactory
from support.server import live_server
from support.waiting import until
from tertulia.client import BotApp, ChatMessage, Conversation, websocket_base
from tertulia.client import conversation as conversation_module


async def test_drop_before_any_message_loses_nothing(
    make_settings: SettingsFactory, people: PersonFactory, proxy_to: ProxyFactory
) -> None:
    """A quiet bot (no greeting) whose socket drops before anything was said still gets, once
    back, what people said while it was away, and answers it once."""
    app = BotApp("http://127.0.0.1:1", backoff=(0.05, 0.2))
    seen: list[str] = []

    @app.on_message
    async def echo(conversation: Conversation, message: ChatMessage) -> None:
        seen.append(message.text or "")
        await conversation.send(f"echo: {message.text}", quote=message)

    async with app.running() as trigger_url:
        settings = make_settings(bots={"Ext": external_bot(trigger_url)})
        async with live_server(settings) as server:
            proxy = await proxy_to(server.port)
            app.ws_url = websocket_base(f"http://127.0.0.1:{proxy.listen_port}")
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["Ext"])
            ext_id = bot_id(created.json(), "Ext")
            assert alice.conversation_id is not None
            await until(lambda: alice.conversation_id in app.conversations)
            conversation = app.conversations[alice.conversation_id]
            await asyncio.wait_for(conversation.wait_connected(), TIMEOUT)
            await asyncio.wait_for(server.registry.runner.idle(), TIMEOUT)

            proxy.refusing = True
            proxy.drop()
            await until(lambda: not conversation.connected)
            said = await alice.post(type="T", text="anyone there?", local_id="q1")
            assert said.status_code == 201, said.text
            proxy.refusing = False

            socket = await alice.connect(after=0)
            answer = await socket.message(sender_id=ext_id, quoted_message_id=said.json()["id"])
            assert answer["text"] == "echo: anyone there?"
            assert seen == ["anyone there?"]
            await app.aclose()


async def test_a_slow_handler_bounds_the_inbox_and_loses_nothing(
    make_settings: SettingsFactory, people: PersonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bot's handler stalls while people say a lot: the client stops reading once its
    inbox is full (the socket's back-pressure reaches the server, which may drop it; the
    client then resumes), so its memory stays bounded; once the handler goes on it gets
    every message, in order, once."""
    monkeypatch.setattr(conversation_module, "INBOX", 5)
    app = BotApp("http://127.0.0.1:1", backoff=(0.05, 0.2))
    gate = asyncio.Event()
    seen: list[str] = []
    largest = 0

    @app.on_message
    async def slow(conversation: Conversation, message: ChatMessage) -> None:
        nonlocal largest
        largest = max(largest, conversation._inbox.qsize())
        await gate.wait()
        seen.append(message.text or "")

    async with app.running() as trigger_url:
        settings = make_settings(bots={"Ext": external_bot(trigger_url)})
        async with live_server(settings) as server:
            app.ws_url = websocket_base(server.base_url)
            alice = people(server)
            await alice.create(nickname="alice", bots=["Ext"])
            assert alice.conversation_id is not None
            await until(lambda: alice.conversation_id in app.conversations)
            conversation = app.conversations[alice.conversation_id]
            await asyncio.wait_for(conversation.wait_connected(), TIMEOUT)
            texts = [f"m{i}" for i in range(40)]
            for text in texts:
                assert (await alice.post(type="T", text=text)).status_code == 201
            await until(lambda: conversation._inbox.full())
            gate.set()
            await until(lambda: seen[-1:] == ["m39"], timeout=20)
    assert [t for t in seen if t.startswith("m")] == texts
    assert largest <= 5
