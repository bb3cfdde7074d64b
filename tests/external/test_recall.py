"""An external bot gone for good is triggered again when a person writes (PROTOCOL 6.3,
9.2 #22), and told where to resume so that it answers the message that called it back.

The bot here is a plain client of the protocol: the test reads each trigger's body and
connects with its session, as a bot program would.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from external.fakes import (
    TIMEOUT,
    PersonFactory,
    Recorder,
    SettingsFactory,
    as_bot,
    bot_id,
    external_bot,
    serve,
)
from support.blab import Socket
from support.managers import manager_client, message_deliveries
from support.server import LiveServer, live_server

ECHO = {"module": "tertulia.bots.builtin", "class": "UpperCaseEchoBot"}


async def settled(server: LiveServer, socket: Socket) -> None:
    """The frames a socket sent so far are handled (each in turn), and the deliveries they
    caused have run."""
    await socket.sync()
    await asyncio.wait_for(server.registry.runner.idle(), TIMEOUT)


async def test_a_required_bot_that_left_is_called_back_and_answers_what_called_it(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """The required bot's socket closes: left, conversation ended. alice writes: the bot is
    triggered again, with a new session and ``after`` the message before hers; its socket,
    saying nothing as BLAB's library does, starts there (her message first); it is
    announced as back, and her next message, while it is here, triggers nothing."""
    recorder = Recorder()
    async with serve(recorder) as url:
        settings = make_settings(bots={"Ext": external_bot(url, required=True)}, bot_recall=0.001)
        async with live_server(settings) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["Ext"])
            ext = bot_id(created.json(), "Ext")
            (first,) = await recorder.wait_for(1)
            # BLAB's keys, and where the bot's first socket starts (BLAB's library ignores it)
            assert first.json()["after"] == 2, "after the creation and the bot's joining"
            assert "copies_after" not in first.json(), "no manager: no copies"
            room = await alice.connect(after=0)
            bot = await as_bot(server, people, first).connect()
            await bot.state()
            await bot.close()
            await room.message(
                event="participant-left", additional_metadata={"participant_id": ext}
            )
            await room.message(event="conversation-ended")

            asked = await room.message(local_id=await room.say("anyone there?"))
            (_, second) = await recorder.wait_for(2)
            body = second.json()
            assert body["after"] == asked["seq"] - 1
            assert "copies_after" not in body, "no manager: no copies"
            assert body["session"] != first.json()["session"]

            # (as BLAB's library does: no ?after=; the server starts it where the recall said)
            back = await as_bot(server, people, second).connect()
            assert (await back.message(id=asked["id"]))["text"] == "anyone there?"
            joined = await room.message(event="participant-joined")
            assert joined["additional_metadata"] == {"participant_id": ext}

            await room.say("and now?")
            await settled(server, room)
            assert len(recorder.requests) == 2, "here: not triggered"


async def test_a_bot_that_came_and_left_is_called_back_at_once_within_the_period(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """The period after a trigger is for a bot on its way; once it has come, its trigger is
    answered. It leaves (its program restarts) soon after the creation: alice's next
    message calls it back at once, and it answers that message (before: not within
    ``bot_recall`` of the creation, and the message after it called the bot back with
    ``after`` just before itself: alice's first message was never answered)."""
    recorder = Recorder()
    async with serve(recorder) as url:
        settings = make_settings(bots={"Ext": external_bot(url)}, bot_recall=3600)
        async with live_server(settings) as server:
            alice = people(server)
            assert (await alice.create(nickname="alice", bots=["Ext"])).status_code == 201
            (first,) = await recorder.wait_for(1)
            room = await alice.connect(after=0)
            bot = await as_bot(server, people, first).connect()
            await bot.state()
            await bot.close()
            await room.message(event="participant-left")

            asked = await room.message(local_id=await room.say("two"))
            (_, second) = await recorder.wait_for(2)
            assert second.json()["after"] == asked["seq"] - 1
            back = await as_bot(server, people, second).connect()
            assert (await back.message(id=asked["id"]))["text"] == "two"


@pytest.mark.parametrize("recall", [3600, 0], ids=["within-the-period", "off"])
async def test_a_bot_that_does_not_come_is_not_triggered_at_each_message(
    make_settings: SettingsFactory, people: PersonFactory, recall: float
) -> None:
    """A bot that does not come (its program is down) costs one trigger per period, not
    one per message; with ``bot_recall = 0``, none but the first."""
    recorder = Recorder()
    async with serve(recorder) as url:
        settings = make_settings(bots={"Ext": external_bot(url)}, bot_recall=recall)
        async with live_server(settings) as server:
            alice = people(server)
            assert (await alice.create(nickname="alice", bots=["Ext"])).status_code == 201
            await recorder.wait_for(1)
            room = await alice.connect(after=0)
            for text in ("one", "two", "three"):
                await room.say(text)
            await settled(server, room)
            assert len(recorder.requests) == 1, "the creation's trigger only"


async def test_under_a_manager_the_recall_says_where_the_copies_stand(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A bot under a manager is called back with ``copies_after``, its last copy before the
    message that called it: the manager's redirect of that message, recorded while the
    bot is on its way, reaches it as it resumes."""
    recorder = Recorder()
    async with serve(recorder) as url:
        bots = {
            "Ext": external_bot(url),
            "Manager": {"module": "support.managers", "class": "SocketManager"},
        }
        settings = make_settings(bots=bots, manager="Manager", bot_recall=0.001)
        async with live_server(settings) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["Ext"])
            assert created.status_code == 201, created.text
            manager_person = await manager_client(server, people(server), created.json()["id"])
            manager = await manager_person.connect()
            (first,) = await recorder.wait_for(1)
            assert first.json()["copies_after"] == 0, "the first trigger: no copy before it"
            room = await alice.connect(after=0)
            bot = await as_bot(server, people, first).connect()
            await bot.state()

            one = await room.message(local_id=await room.say("one"))
            await redirect(manager, one["id"])
            copy = await bot.message(id=one["id"])
            await bot.close()
            await room.message(event="participant-left")

            two = await room.message(local_id=await room.say("two"))
            (_, second) = await recorder.wait_for(2)
            body = second.json()
            assert body["copies_after"] == copy["copy_seq"]
            assert body["after"] == two["seq"] - 1
            await redirect(manager, two["id"])
            await manager.message(quoted_message_id=two["id"], text="")

            back = await as_bot(server, people, second).connect()  # (saying nothing)
            assert (await back.message(id=two["id"]))["text"] == "two"
            assert [m["id"] for m in back.messages() if "copy_seq" in m] == [two["id"]]


async def redirect(manager: Socket, message_id: str) -> None:
    command: dict[str, Any] = {"action": "redirect", "bots": ["Ext"]}
    await manager.send(
        {
            "type": "T",
            "text": "",
            "quoted_message_id": message_id,
            "command": orjson.dumps(command).decode(),
        }
    )


async def test_internal_bots_are_never_called_back(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """ECHO has no socket, ever: it is no external bot, and gets no trigger's cue."""
    recorder = Recorder()
    async with serve(recorder) as url:
        bots = {"Ext": external_bot(url), "ECHO": ECHO}
        settings = make_settings(bots=bots, bot_recall=0.001)
        async with live_server(settings) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["Ext", "ECHO"])
            echo = bot_id(created.json(), "ECHO")
            await recorder.wait_for(1)
            room = await alice.connect(after=0)
            await room.say("hello")
            await settled(server, room)
            assert len(recorder.requests) >= 2, "Ext, which never came, is called back"
            cues = [
                d
                for d in await message_deliveries(server, echo)
                if "after" in (d.get("additional_metadata") or {})
            ]
            assert cues == []


async def test_after_a_restart_a_bot_that_does_not_reconnect_is_called_back_at_once(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """BLAB's library does not reconnect after the server's restart closed its socket: the
    first message after the restart calls it back, however long ``bot_recall``."""
    recorder = Recorder()
    async with serve(recorder) as url:
        settings = make_settings(bots={"Ext": external_bot(url)}, bot_recall=3600)
        async with live_server(settings) as server:
            alice = people(server)
            assert (await alice.create(nickname="alice", bots=["Ext"])).status_code == 201
            (first,) = await recorder.wait_for(1)
            bot = await as_bot(server, people, first).connect()
            await bot.state()
            session = alice.session
        async with live_server(settings) as server:
            again = people(server)
            again.http.cookies.set("sessionid", session or "", domain="127.0.0.1")
            again.conversation_id = alice.conversation_id
            room = await again.connect()
            asked = await room.message(local_id=await room.say("still there?"))
            (_, second) = await recorder.wait_for(2)
            assert second.json()["after"] == asked["seq"] - 1


async def test_a_recall_not_answered_keeps_its_resume_point(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """The bot came and went; its program is still down at the first recall: the next one
    starts it at the first message that called it, so it misses none written while it was
    away."""
    recorder = Recorder()
    async with serve(recorder) as url:
        settings = make_settings(bots={"Ext": external_bot(url)}, bot_recall=0.001)
        async with live_server(settings) as server:
            alice = people(server)
            assert (await alice.create(nickname="alice", bots=["Ext"])).status_code == 201
            (first,) = await recorder.wait_for(1)
            room = await alice.connect(after=0)
            bot = await as_bot(server, people, first).connect()
            await bot.state()
            await bot.close()
            await room.message(event="participant-left")
            one = await room.message(local_id=await room.say("one"))
            await recorder.wait_for(2)
            await room.message(local_id=await room.say("two"))
            third = await recorder.wait_for(3)
            assert third[2].json()["after"] == one["seq"] - 1
            back = await as_bot(server, people, third[2]).connect()
            assert (await back.message(id=one["id"]))["text"] == "one"


async def test_a_bot_back_after_a_restart_is_announced(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """The bot left (stored), the server restarted, the bot is called back: its return is
    announced, the transcript knowing it had left."""
    recorder = Recorder()
    async with serve(recorder) as url:
        settings = make_settings(bots={"Ext": external_bot(url)}, bot_recall=3600)
        async with live_server(settings) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["Ext"])
            ext = bot_id(created.json(), "Ext")
            (first,) = await recorder.wait_for(1)
            room = await alice.connect(after=0)
            bot = await as_bot(server, people, first).connect()
            await bot.state()
            await bot.close()
            await room.message(
                event="participant-left", additional_metadata={"participant_id": ext}
            )
            session = alice.session
        async with live_server(settings) as server:
            again = people(server)
            again.http.cookies.set("sessionid", session or "", domain="127.0.0.1")
            again.conversation_id = alice.conversation_id
            room = await again.connect()
            await room.say("back?")
            (_, second) = await recorder.wait_for(2)
            await as_bot(server, people, second).connect()
            joined = await room.message(event="participant-joined")
            assert joined["additional_metadata"] == {"participant_id": ext}


async def test_a_bot_back_within_the_grace_period_resumes_from_its_next_recall(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """Called back, the bot comes within ``presence_grace`` of its socket closing (its
    program restarted quickly): it is back, and the point the recall held is cleared. Gone
    again, the next recall starts it at the message that calls it (before: the point was
    kept, as the bot had not 'left'; the next recall gave the old point, and the bot
    answered again what it had answered: people saw its answer twice)."""
    recorder = Recorder()
    async with serve(recorder) as url:
        settings = make_settings(
            bots={"Ext": external_bot(url)}, bot_recall=0.001, presence_grace=30
        )
        async with live_server(settings) as server:
            alice = people(server)
            assert (await alice.create(nickname="alice", bots=["Ext"])).status_code == 201
            (first,) = await recorder.wait_for(1)
            room = await alice.connect(after=0)
            bot = await as_bot(server, people, first).connect()
            await bot.state()
            await bot.close()

            b = await room.message(local_id=await room.say("b"))
            second = (await recorder.wait_for(2))[1]
            assert second.json()["after"] == b["seq"] - 1
            back = await as_bot(server, people, second).connect()
            assert (await back.message(id=b["id"]))["text"] == "b"
            await back.close()

            c = await room.message(local_id=await room.say("c"))
            third = (await recorder.wait_for(3))[2]
            assert third.json()["after"] == c["seq"] - 1


async def test_a_bot_whose_trigger_failed_is_called_back_by_the_next_message(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """The bot's program is down when the conversation is created: its trigger fails for
    good. The next person's message calls it back at once, however long ``bot_recall``
    (before: the failed trigger counted as one on its way, and the messages until the
    period ran out were never answered), and it starts where the failed trigger would
    have: that message, and any before it, reach it."""
    recorder = Recorder()
    refusals = 1

    async def down_at_first(scope: Any, receive: Any, send: Any) -> None:
        nonlocal refusals
        status = 503 if refusals else 200
        refusals = max(refusals - 1, 0)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    recorder.app = down_at_first
    async with serve(recorder) as url:
        settings = make_settings(bots={"Ext": external_bot(url, retries=0)}, bot_recall=3600)
        async with live_server(settings) as server:
            alice = people(server)
            assert (await alice.create(nickname="alice", bots=["Ext"])).status_code == 201
            await recorder.wait_for(1)
            await asyncio.wait_for(server.registry.runner.idle(), TIMEOUT)
            room = await alice.connect(after=0)
            m1 = await room.message(local_id=await room.say("m1"))
            second = (await recorder.wait_for(2))[1]
            assert second.json()["after"] < m1["seq"]
            bot = await as_bot(server, people, second).connect()
            assert (await bot.message(id=m1["id"]))["text"] == "m1"


async def test_a_bot_on_its_way_answers_what_was_written_since_its_trigger(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """alice writes while the bot, triggered at the creation, is still on its way (BLAB's
    library builds its conversation first): its first socket, saying nothing, starts where
    its trigger went, as a call-back's does, so that message reaches it, once, and the next
    one too (before: it started live, and the first message was never answered)."""
    recorder = Recorder()
    async with serve(recorder) as url:
        settings = make_settings(bots={"Ext": external_bot(url)}, bot_recall=3600)
        async with live_server(settings) as server:
            alice = people(server)
            assert (await alice.create(nickname="alice", bots=["Ext"])).status_code == 201
            (first,) = await recorder.wait_for(1)
            room = await alice.connect(after=0)
            quick = await room.message(local_id=await room.say("quick question"))
            bot = await as_bot(server, people, first).connect()
            assert (await bot.message(id=quick["id"]))["text"] == "quick question"
            later = await room.message(local_id=await room.say("second question"))
            await bot.message(id=later["id"])
            said = [m["text"] for m in bot.messages() if m.get("sender_id") == alice.participant_id]
            assert said == ["quick question", "second question"]
            assert len(recorder.requests) == 1, "on its way: not called back"


async def test_an_answer_awaiting_an_absent_manager_calls_it_back_and_reaches_it(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """An external manager's program stops after redirecting alice's question; the bot's
    answer, stored waiting for approval, finds no socket of the manager: it calls the
    manager back, with ``after`` the last message people saw before the answer, so the
    manager's next socket (saying nothing, as BLAB's library does) is sent the answer
    first and approves it. Before, an answer did not call the manager back, and the next
    person's message called it back from after the manager's own *participant-left*,
    later than the answer: the answer was never sent to it, nor shown (manager QA 1)."""
    bots_recorder, manager_recorder = Recorder(), Recorder()
    async with serve(bots_recorder) as bots_url, serve(manager_recorder) as manager_url:
        bots = {"Ext": external_bot(bots_url), "Boss": external_bot(manager_url)}
        settings = make_settings(bots=bots, manager="Boss", bot_recall=3600)
        async with live_server(settings) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["Ext"])
            assert created.status_code == 201, created.text
            boss_id = bot_id(created.json(), "Boss")
            room = await alice.connect(after=0)
            (ext_trigger,) = await bots_recorder.wait_for(1)
            (boss_trigger,) = await manager_recorder.wait_for(1)
            ext = await as_bot(server, people, ext_trigger).connect()
            await ext.state()
            manager = await as_bot(server, people, boss_trigger).connect()
            await manager.state()

            asked = await room.message(local_id=await room.say("question"))
            await manager.message(id=asked["id"])
            await redirect(manager, asked["id"])
            await ext.message(id=asked["id"])
            await manager.close()
            await room.message(
                event="participant-left", additional_metadata={"participant_id": boss_id}
            )
            seen = max(m["seq"] for m in room.messages())

            await ext.send({"type": "T", "text": "answer", "quoted_message_id": asked["id"]})
            (_, again) = await manager_recorder.wait_for(2)
            assert again.json()["after"] == seen
            back = await as_bot(server, people, again).connect()  # (saying nothing)
            waiting = await back.message(text="answer")
            assert waiting["approved"] is False
            await back.send(
                {
                    "type": "T",
                    "text": "",
                    "quoted_message_id": waiting["id"],
                    "command": orjson.dumps({"action": "approve"}).decode(),
                }
            )
            shown = await room.message(text="answer")
            assert shown["id"] == waiting["id"]
