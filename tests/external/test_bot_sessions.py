"""A bot's session opens its own conversation and nothing else (PROTOCOL 6.3, 9 #42),
holds while its socket is open, and outlives the conversation's end (PROTOCOL 4.4)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from external.fakes import (
    PersonFactory,
    Recorder,
    SettingsFactory,
    as_bot,
    bot_id,
    expiry,
    external_bot,
    room_with_ext,
    serve,
)
from support.server import live_server
from support.waiting import until
from tertulia.domain.times import utcnow


async def test_bot_session_cannot_reach_another_conversation(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """With the trigger's session: its own conversation 200 / socket open; another one
    REST 403 (read and write) and the socket refused."""
    triggers = Recorder()
    async with serve(triggers) as trigger_url:
        settings = make_settings(bots={"Ext": external_bot(trigger_url)})
        async with live_server(settings) as server:
            alice, bob = people(server), people(server)
            assert (await alice.create(nickname="alice", bots=["Ext"])).status_code == 201
            assert (await bob.create(nickname="bob", bots=["Ext"])).status_code == 201
            received = [r.json() for r in await triggers.wait_for(2)]
            mine = next(t for t in received if t["conversation_id"] == alice.conversation_id)
            cookie = {"Cookie": f"sessionid={mine['session']}"}

            async with httpx.AsyncClient(base_url=f"{server.base_url}/api/chat") as client:
                own = f"/conversations/{alice.conversation_id}/messages/"
                other = f"/conversations/{bob.conversation_id}/messages/"
                assert (await client.get(own, headers=cookie)).status_code == 200
                assert (await client.get(other, headers=cookie)).status_code == 403
                text = {"type": "T", "text": "intruder"}
                assert (await client.post(other, json=text, headers=cookie)).status_code == 403
                seen = await client.get(f"/conversations/{bob.conversation_id}/", headers=cookie)
                assert seen.json()["my_participant_id"] is None  # rooms on: visible, not a member
            history = (await bob.history()).json()["results"]
            assert "intruder" not in [m.get("text") for m in history]

            ws = server.ws_url
            async with connect(
                f"{ws}/ws/chat/{alice.conversation_id}/", additional_headers=cookie
            ) as socket:
                assert "state" in orjson.loads(await socket.recv())
            with pytest.raises(InvalidStatus) as refused:
                async with connect(
                    f"{ws}/ws/chat/{bob.conversation_id}/", additional_headers=cookie
                ):
                    pass
            assert refused.value.response.status_code == 403


async def test_a_silent_bot_keeps_its_session_while_its_socket_is_open(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """An external bot whose socket stays open while it says nothing for longer than
    ``bot_session_max_age`` (a conversation quiet overnight) still answers the next
    message: its answer is stored, its socket stays open, its session holds for REST too
    (QA A1: only what the bot sent renewed it; the answer was refused with 4403, lost)."""
    async with room_with_ext(make_settings, people, bot_session_max_age=2) as made:
        (trigger,) = await made.recorder.wait_for(1)
        room = await made.alice.connect(after=0)
        bot = as_bot(made.server, people, trigger)
        socket = await bot.connect()
        await socket.state()
        hello = await room.message(local_id=await room.say("hello"))
        await socket.message(id=hello["id"])  # (frames reach it; it sends none)
        assert bot.session is not None
        lapse = await expiry(made.server, bot.session)

        def lapsed() -> bool:  # the silence outlasts the session's lifetime as handed
            return utcnow() > lapse + timedelta(seconds=1)

        await until(lapsed)
        asked = await room.message(local_id=await room.say("are you still there?"))
        await socket.message(id=asked["id"])
        await socket.say("yes", quoted_message_id=asked["id"])
        answer = await room.message(sender_id=made.ext, quoted_message_id=asked["id"])
        assert answer["text"] == "yes"
        assert (await bot.history()).status_code == 200


async def test_the_other_bots_keep_their_sessions_when_a_required_bot_leaves(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A required bot leaving ends the conversation, which keeps accepting messages
    (PROTOCOL 4.4, 9.4): only the leaving bot's session ends; another external bot's
    holds, on its open socket (looked at again meanwhile) and for REST, and its answer is
    stored (QA A3: every bot's session was ended; the next answer, 4403, lost)."""
    recorder = Recorder()
    async with serve(recorder) as url:
        bots = {"Req": external_bot(url, required=True), "Ext": external_bot(url)}
        settings = make_settings(bots=bots, bot_session_max_age=2)
        async with live_server(settings) as server:
            alice = people(server)
            created = (await alice.create(nickname="alice", bots=["Req", "Ext"])).json()
            req, ext = bot_id(created, "Req"), bot_id(created, "Ext")
            triggers = {t.json()["bot_participant_id"]: t for t in await recorder.wait_for(2)}
            room = await alice.connect(after=0)
            required, other = (as_bot(server, people, triggers[i]) for i in (req, ext))
            leaving = await required.connect()
            await leaving.state()
            staying = await other.connect()
            await staying.state()
            await leaving.close()
            await room.message(
                event="conversation-ended", additional_metadata={"participant_id": req}
            )
            ended = utcnow()

            def looked_at() -> bool:  # the staying bot's session is due to be looked at again
                return utcnow() > ended + timedelta(seconds=1.5)

            await until(looked_at)
            asked = await room.message(local_id=await room.say("still here?"))
            await staying.message(id=asked["id"])
            await staying.say("STILL HERE?", quoted_message_id=asked["id"])
            answer = await room.message(sender_id=ext, quoted_message_id=asked["id"])
            assert answer["text"] == "STILL HERE?"
            assert (await other.history()).status_code == 200
            assert (await required.history()).status_code == 403, "the leaving bot's ended"
