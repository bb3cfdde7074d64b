"""Resume without loss: ``?after=N`` replays every visible message with seq > N, in order,
then continues live with no gap and no duplicate (issue 2; PROTOCOL 4.4)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from support.blab import Frame, Person, Socket
from support.bots import bot_person
from support.server import LiveServer, live_server
from tertulia.settings import Settings

PersonFactory = Callable[[LiveServer], Person]
SettingsFactory = Callable[..., Settings]


def _seqs(frames: list[Frame]) -> list[int]:
    return [f["message"]["seq"] for f in frames if "message" in f]


async def _bob(server: LiveServer, alice: Person, people: PersonFactory) -> tuple[Person, Socket]:
    bob = people(server)
    assert alice.conversation_id is not None
    assert (await bob.join(alice.conversation_id, nickname="bob")).status_code == 200
    socket = await bob.connect()
    await socket.state()
    return bob, socket


async def _exchange(socket: Socket, text: str) -> tuple[Frame, Frame]:
    """Say ``text`` and wait for its echo and ECHO's answer."""
    local_id = await socket.say(text)
    mine = await socket.message(local_id=local_id)
    answer = await socket.message(quoted_message_id=mine["id"])
    return mine, answer


async def test_resume_replays_what_arrived_while_away(
    server: LiveServer, alice: Person, people: PersonFactory
) -> None:
    """Messages sent while a client was away come first, in seq order, then live ones."""
    _, bob_socket = await _bob(server, alice, people)
    socket = await alice.connect()
    await _exchange(socket, "before")
    last_seen = max(_seqs(socket.frames))
    await socket.close()

    away, away_answer = await _exchange(bob_socket, "while you were away")
    posted = await alice.post(type="T", text="from another device", local_id="rest-1")
    assert posted.status_code == 201, posted.text

    socket = await alice.connect(after=last_seen)
    replayed = await socket.message(quoted_message_id=posted.json()["id"])
    seqs = _seqs(socket.frames)
    assert seqs == list(range(last_seen + 1, replayed["seq"] + 1))
    ids = [f["message"]["id"] for f in socket.frames if "message" in f]
    assert away["id"] in ids
    assert away_answer["id"] in ids
    assert posted.json()["id"] in ids
    assert len(ids) == len(set(ids))

    live, _ = await _exchange(bob_socket, "live again")
    await socket.message(id=live["id"])
    await socket.sync()
    seqs = _seqs(socket.frames)
    assert seqs == list(range(last_seen + 1, last_seen + 1 + len(seqs)))


@pytest.mark.parametrize("name", ["after", "copies_after"])
@pytest.mark.parametrize("value", ["abc", "-1", "1e400", "%C2%B2", "9" * 5000, ""])
async def test_an_after_that_is_not_a_whole_number_is_refused(
    alice: Person, name: str, value: str
) -> None:
    """``?after=`` or ``?copies_after=`` that is not a whole number from 0 (a sign, an
    exponent, other digits than ASCII, too long to convert, empty): the handshake is
    refused, HTTP 400 with the JSON body of any invalid input, naming the parameter.
    Before, the socket opened as without it: a client's mistake quietly skipped the replay
    it had asked for (``-1`` replayed nothing where it read as "everything")."""
    url = f"{alice.ws_url}/ws/chat/{alice.conversation_id}/?{name}={value}"
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, additional_headers={"Cookie": f"sessionid={alice.session}"})
    response = refused.value.response
    assert response.status_code == 400
    body = json.loads(response.body or b"")
    assert body["code"] == "invalid"
    assert body["detail"].startswith(f"Invalid {name}: ")
    # (the same socket with a good number opens)
    socket = await alice.connect(**{name: 0} if name == "after" else {})
    await socket.wait_for(lambda f: "message" in f)


async def test_after_zero_replays_the_whole_conversation(alice: Person) -> None:
    """``?after=0`` starts with conversation-created and misses nothing."""
    socket = await alice.connect(after=0)
    first = await socket.wait_for(lambda f: "message" in f)
    assert first["message"]["event"] == "conversation-created"
    assert first["message"]["seq"] == 1
    frames = await socket.sync()
    seqs = _seqs(socket.frames)
    assert seqs == list(range(1, len(seqs) + 1))
    assert [f for f in frames if "message" in f][-1]["message"]["event"] == "participant-joined"


async def test_resume_during_a_burst_has_no_gap_and_no_duplicate(
    server: LiveServer, alice: Person, people: PersonFactory
) -> None:
    """Reconnecting while messages keep flowing yields each seq exactly once, in order."""
    _, bob_socket = await _bob(server, alice, people)
    socket = await alice.connect()
    await _exchange(socket, "start")
    last_seen = max(_seqs(socket.frames))
    await socket.close()

    local_ids = [f"burst-{i}" for i in range(30)]

    async def burst() -> None:
        for local_id in local_ids:
            await bob_socket.say("burst", local_id=local_id)
            await asyncio.sleep(0)

    sending = asyncio.create_task(burst())
    socket = await alice.connect(after=last_seen)
    await sending
    for local_id in local_ids:
        await bob_socket.message(local_id=local_id)
    await socket.sync()
    seqs = _seqs(socket.frames)
    assert seqs == list(range(last_seen + 1, last_seen + 1 + len(seqs)))
    received = {m.get("local_id") for m in socket.messages()}
    assert set(local_ids) <= received


async def test_second_socket_with_after_replays_instead_of_latest(
    server: LiveServer, alice: Person
) -> None:
    """A second tab with ``?after=N`` gets exactly the messages after N, then live ones."""
    first = await alice.connect()
    mine, answer = await _exchange(first, "one")
    second = await alice.connect(after=mine["seq"])
    replayed = await second.wait_for(lambda f: "message" in f)
    assert replayed["message"]["id"] == answer["id"]
    await second.sync()
    seqs = _seqs(second.frames)
    assert seqs == list(range(mine["seq"] + 1, mine["seq"] + 1 + len(seqs)))


async def test_message_approved_while_away_is_replayed_with_its_new_seq(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A bot answer the manager approves later gets its seq then, and reaches a client that
    resumes after having been away; unapproved messages never reach people."""
    settings = make_settings(
        manager="Boss",
        bots={
            "ECHO": {"module": "tertulia.bots.builtin", "class": "UpperCaseEchoBot"},
            "Boss": {"module": "support.bots", "class": "SilentBot"},
        },
    )
    async with live_server(settings) as server:
        alice = people(server)
        created = await alice.create(nickname="alice", bots=["ECHO"])
        assert created.status_code == 201, created.text
        boss_id = next(p["id"] for p in created.json()["participants"] if p["name"] == "Boss")
        assert alice.conversation_id is not None
        boss = await bot_person(server, alice.conversation_id, boss_id)
        try:
            manager = await boss.connect()
            await manager.state()
            socket = await alice.connect()
            local_id = await socket.say("hello")
            hello = await socket.message(local_id=local_id)
            await manager.message(id=hello["id"])

            await manager.send(
                {
                    "type": "T",
                    "text": "",
                    "local_id": "redirect-1",
                    "quoted_message_id": hello["id"],
                    "command": json.dumps({"action": "redirect", "bots": ["ECHO"]}),
                }
            )
            echo_id = next(p["id"] for p in created.json()["participants"] if p["name"] == "ECHO")
            answer = await manager.message(
                quoted_message_id=hello["id"], sender_id=echo_id, approved=False
            )
            assert "seq" not in answer
            frames = await socket.sync()
            assert answer["id"] not in {f["message"]["id"] for f in frames if "message" in f}
            last_seen = max(_seqs(socket.frames))
            await socket.close()

            await manager.send(
                {
                    "type": "T",
                    "text": "",
                    "local_id": "approve-1",
                    "quoted_message_id": answer["id"],
                    "command": json.dumps({"action": "approve"}),
                }
            )
            approved = await manager.message(id=answer["id"], approved=True)
            assert approved["seq"] > last_seen

            socket = await alice.connect(after=last_seen)
            replayed = await socket.message(id=answer["id"])
            assert replayed["seq"] == approved["seq"]
            assert replayed["text"] == "HELLO"
            assert replayed["time"] == answer["time"]
            await socket.sync()
            seqs = _seqs(socket.frames)
            assert seqs == list(range(last_seen + 1, last_seen + 1 + len(seqs)))
            senders = {m.get("sender_id") for m in socket.messages()}
            assert boss_id not in senders
        finally:
            await boss.close()


async def test_replay_longer_than_the_send_queue(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A replay far longer than the socket's queue is sent whole; the socket stays open."""
    async with live_server(make_settings(ws_send_queue=10)) as server:
        alice = people(server)
        assert (await alice.create(nickname="alice", bots=[])).status_code == 201
        for i in range(40):
            response = await alice.post(type="T", text=f"offline {i}", local_id=f"p{i}")
            assert response.status_code == 201, response.text
        socket = await alice.connect(after=0)
        await socket.sync()
        seqs = _seqs(socket.frames)
        assert seqs == list(range(1, len(seqs) + 1))
        texts = [m.get("text") for m in socket.messages()]
        assert [t for t in texts if t and t.startswith("offline")] == [
            f"offline {i}" for i in range(40)
        ]
