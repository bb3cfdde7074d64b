"""A bot's session opens its own conversation and nothing else (PROTOCOL 6.3, 9 #42)."""

from __future__ import annotations

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from external.fakes import PersonFactory, Recorder, SettingsFactory, external_bot, serve
from support.server import live_server


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
