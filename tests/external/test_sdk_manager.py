"""An SDK bot under a manager: its answers are never echoed to it (PROTOCOL 7.1), and still
settle, without being sent again and again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from external.fakes import TIMEOUT, PersonFactory, SettingsFactory, bot_id, external_bot
from support.blab import Person, Socket
from support.bots import bot_person
from support.proxy import Proxy, ProxyFactory
from support.server import LiveServer, live_server
from support.waiting import until
from tertulia.client import BotApp, ChatMessage, Conversation, websocket_base
from tertulia.client import conversation as conversation_module


@dataclass
class Managed:
    """A conversation of alice with the SDK bot "Ext" under the socket manager "Boss"."""

    server: LiveServer
    proxy: Proxy
    alice: Socket
    boss: Socket
    ext_id: str
    conversation: Conversation

    async def ask(self, text: str) -> dict[str, object]:
        """alice says ``text``; the manager redirects it to Ext; Ext's answer (as the
        manager gets it, unapproved)."""
        said = await self.alice.message(local_id=await self.alice.say(text))
        await self.boss.message(id=said["id"])
        await self.boss.say(
            "",
            quoted_message_id=said["id"],
            command=json.dumps({"action": "redirect", "bots": ["Ext"]}),
        )
        return await self.boss.message(
            sender_id=self.ext_id, quoted_message_id=said["id"], approved=False
        )


def answering_bot() -> BotApp:
    app = BotApp("http://127.0.0.1:1", backoff=(0.02, 0.2))

    @app.on_message
    async def echo(conversation: Conversation, message: ChatMessage) -> None:
        await conversation.send(f"echo: {message.text}", quote=message)

    return app


@asynccontextmanager
async def managed(
    app: BotApp,
    make_settings: SettingsFactory,
    people: PersonFactory,
    proxy_to: ProxyFactory,
    **overrides: Any,
) -> AsyncIterator[Managed]:
    async with app.running() as trigger_url:
        settings = make_settings(
            **overrides,
            manager="Boss",
            bots={
                "Ext": external_bot(trigger_url),
                "Boss": {"module": "support.bots", "class": "SilentBot"},
            },
        )
        async with live_server(settings) as server:
            proxy = await proxy_to(server.port)
            app.ws_url = websocket_base(f"http://127.0.0.1:{proxy.listen_port}")
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["Ext"])
            assert created.status_code == 201, created.text
            ext_id = bot_id(created.json(), "Ext")
            assert alice.conversation_id is not None
            boss: Person = await bot_person(
                server, alice.conversation_id, bot_id(created.json(), "Boss")
            )
            try:
                boss_socket = await boss.connect()
                await boss_socket.state()
                alice_socket = await alice.connect(after=0)
                await until(lambda: alice.conversation_id in app.conversations)
                conversation = app.conversations[alice.conversation_id]
                await asyncio.wait_for(conversation.wait_connected(), TIMEOUT)
                yield Managed(server, proxy, alice_socket, boss_socket, ext_id, conversation)
            finally:
                await app.aclose()
                await boss.close()


async def test_answers_under_a_manager_settle_without_a_reconnect(
    make_settings: SettingsFactory, people: PersonFactory, proxy_to: ProxyFactory
) -> None:
    """The manager gets each answer and the bot gets no echo of it: the answers still
    leave ``pending`` while the socket stays open, and none is stored twice."""
    app = answering_bot()
    async with managed(app, make_settings, people, proxy_to) as room:
        connections = room.proxy.accepted
        answers = [await room.ask(f"q{i}") for i in range(5)]
        assert [a["text"] for a in answers] == [f"echo: q{i}" for i in range(5)]
        await until(lambda: room.conversation.pending == [])
        assert room.proxy.accepted == connections  # (on the same socket: no reconnection)


async def test_an_approved_answer_sent_again_after_a_drop_settles(
    make_settings: SettingsFactory,
    people: PersonFactory,
    proxy_to: ProxyFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An answer still pending when the socket drops, approved meanwhile (so it has a
    ``seq`` older than what the bot saw since): sent again after the reconnect, the server
    repeats it, and that repeat settles it, though its ``seq`` is old."""
    monkeypatch.setattr(conversation_module, "PROBE_AFTER", 3600.0)
    app = answering_bot()
    async with managed(app, make_settings, people, proxy_to) as room:
        answer = await room.ask("hello")
        assert room.conversation.pending == [answer["local_id"]]
        await room.boss.say(
            "", quoted_message_id=answer["id"], command=json.dumps({"action": "approve"})
        )
        approved = await room.alice.message(id=answer["id"])
        # Something the bot sees, numbered after the approved answer.
        bob = people(room.server)
        joined = await bob.join(room.conversation.conversation_id, nickname="bob")
        assert joined.status_code == 200, joined.text
        await bob.connect(after=0)
        await until(lambda: (room.conversation.last_seq or 0) > approved["seq"])

        connections = room.proxy.accepted
        room.proxy.drop()
        await until(lambda: room.conversation.pending == [])
        assert room.proxy.accepted == connections + 1
        await room.alice.sync()
        shown = [m for m in room.alice.messages() if m.get("sender_id") == room.ext_id]
        assert [m["id"] for m in shown] == [answer["id"]]


async def test_a_burst_over_the_rate_limit_under_a_manager_is_stored_once_each(
    make_settings: SettingsFactory, people: PersonFactory, proxy_to: ProxyFactory
) -> None:
    """Answers refused as too fast wait and go again, and no answer to a later one settles
    them meanwhile: each reaches the manager, once, in order, and all settle."""
    app = BotApp("http://127.0.0.1:1", backoff=(0.02, 0.2))
    lines = [f"line {i}" for i in range(8)]

    @app.on_message
    async def burst(conversation: Conversation, message: ChatMessage) -> None:
        for line in lines:
            await conversation.send(line)

    limits = {"rate_limits": {"message": "3/second"}}
    async with managed(app, make_settings, people, proxy_to, **limits) as room:
        said = await room.alice.message(local_id=await room.alice.say("go"))
        await room.boss.message(id=said["id"])
        await room.boss.say(
            "",
            quoted_message_id=said["id"],
            command=json.dumps({"action": "redirect", "bots": ["Ext"]}),
        )
        got = [
            (await room.boss.message(sender_id=room.ext_id, text=line))["text"] for line in lines
        ]
        assert got == lines
        await until(lambda: room.conversation.pending == [])
        await room.boss.sync()
        from_ext = [m["text"] for m in room.boss.messages() if m.get("sender_id") == room.ext_id]
        assert from_ext == lines


async def test_a_copy_redirected_while_the_bot_is_away_is_answered_once_back(
    make_settings: SettingsFactory, people: PersonFactory, proxy_to: ProxyFactory
) -> None:
    """The manager redirects alice's message while the bot's socket is down: the bot
    resumes its copies (``?copies_after=``) and answers it, once."""
    app = answering_bot()
    async with managed(app, make_settings, people, proxy_to) as room:
        await room.ask("one")
        room.proxy.refusing = True
        room.proxy.drop()
        await room.alice.message(event="participant-left")
        said = await room.alice.message(local_id=await room.alice.say("two"))
        await room.boss.message(id=said["id"])
        await room.boss.say(
            "",
            quoted_message_id=said["id"],
            command=json.dumps({"action": "redirect", "bots": ["Ext"]}),
        )
        await room.boss.message(quoted_message_id=said["id"], text="")  # (recorded)
        room.proxy.refusing = False
        answer = await room.boss.message(
            sender_id=room.ext_id, quoted_message_id=said["id"], approved=False
        )
        assert answer["text"] == "echo: two"
        await room.boss.sync()
        answers = [
            m
            for m in room.boss.messages()
            if m.get("sender_id") == room.ext_id and m.get("quoted_message_id") == said["id"]
        ]
        assert [a["id"] for a in answers] == [answer["id"]], "answered once"
