"""Plain (synchronous) SDK callbacks run in worker threads, not on the bot's event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from external.fakes import TIMEOUT, PersonFactory, SettingsFactory, bot_id, external_bot
from support.server import live_server
from support.waiting import until
from tertulia.client import BotApp, ChatMessage, Conversation, websocket_base

BLOCK = 5.0  # seconds the blocking callback waits for its gate at most


async def test_a_blocking_plain_callback_holds_up_only_its_own_conversation(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A plain ``on_message`` blocks in alice's conversation: the bot answers bob in his
    meanwhile, while alice's next message waits for the blocked one; the callbacks run off
    the event loop's thread, and send with ``send_from_thread``."""
    app = BotApp("http://127.0.0.1:1", backoff=(0.02, 0.2))
    gate = threading.Event()
    blocked = threading.Event()
    released: list[bool] = []
    loop_thread = threading.get_ident()
    seen: list[tuple[str, str]] = []
    on_loop: list[bool] = []

    @app.on_message
    def answer(conversation: Conversation, message: ChatMessage) -> None:
        on_loop.append(threading.get_ident() == loop_thread)
        seen.append((conversation.conversation_id, message.text or ""))
        if message.text == "block":
            blocked.set()
            released.append(gate.wait(BLOCK))
        conversation.send_from_thread(f"echo: {message.text}", quote=message)

    try:
        async with app.running() as trigger_url:
            settings = make_settings(bots={"Ext": external_bot(trigger_url)})
            async with live_server(settings) as server:
                app.ws_url = websocket_base(server.base_url)
                alice, bob = people(server), people(server)
                ext_ids = []
                for person, name in ((alice, "alice"), (bob, "bob")):
                    created = await person.create(nickname=name, bots=["Ext"])
                    assert created.status_code == 201, created.text
                    ext_ids.append(bot_id(created.json(), "Ext"))
                for person in (alice, bob):
                    await until(lambda p=person: p.conversation_id in app.conversations)
                    conversation = app.conversations[person.conversation_id or ""]
                    await asyncio.wait_for(conversation.wait_connected(), TIMEOUT)
                alice_socket = await alice.connect(after=0)
                bob_socket = await bob.connect(after=0)

                block = await alice_socket.message(local_id=await alice_socket.say("block"))
                await until(blocked.is_set)
                after = await alice_socket.message(local_id=await alice_socket.say("after"))
                hi = await bob_socket.message(local_id=await bob_socket.say("hi"))
                answer_to_bob = await bob_socket.message(
                    sender_id=ext_ids[1], quoted_message_id=hi["id"]
                )
                assert answer_to_bob["text"] == "echo: hi"
                assert (alice.conversation_id, "after") not in seen  # (waits for "block")

                gate.set()
                first = await alice_socket.message(sender_id=ext_ids[0])
                second = await alice_socket.message(sender_id=ext_ids[0])
                assert (first["quoted_message_id"], first["text"]) == (block["id"], "echo: block")
                assert (second["quoted_message_id"], second["text"]) == (after["id"], "echo: after")
                assert released == [True]
                assert on_loop == [False, False, False]
                await app.aclose()
    finally:
        gate.set()


async def test_send_from_thread_refuses_the_event_loops_thread() -> None:
    """``send_from_thread`` on the event loop's own thread would wait for itself: refused."""
    app = BotApp("ws://127.0.0.1:1", backoff=(5.0, 5.0))
    conversation = app.join("c", "b", "s")
    try:
        with pytest.raises(RuntimeError, match=r"await conversation\.send"):
            conversation.send_from_thread("hi")
        local_id = await asyncio.to_thread(conversation.send_from_thread, "from a thread")
        assert conversation.pending == [local_id]
    finally:
        await app.aclose()
