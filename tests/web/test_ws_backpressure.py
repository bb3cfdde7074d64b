"""Back-pressure: a peer that stops reading is dropped without stalling anyone (PROTOCOL 4.5)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson

from support.blab import Frame, Person
from support.rest import not_reading, room_of_two
from support.server import LiveServer, live_server
from tertulia.settings import Settings

PersonFactory = Callable[[LiveServer], Person]
SettingsFactory = Callable[..., Settings]


def _left(participant_id: str | None) -> Callable[[Frame], bool]:
    def match(frame: Frame) -> bool:
        message = frame.get("message", {})
        return bool(
            message.get("event") == "participant-left"
            and message["additional_metadata"] == {"participant_id": participant_id}
        )

    return match


async def test_peer_that_does_not_read_is_dropped(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """When a socket's queue overflows it is closed and its participant leaves; the others'
    sockets carry on."""
    settings = make_settings(ws_send_queue=10, ws_max_message=256 * 1024)
    async with live_server(settings) as server:
        alice, watcher = await room_of_two(server, people)

        async with not_reading(server, alice):
            for i in range(200):
                local_id = await watcher.say(
                    f"{i}", options=[f"{j} " + "x" * 990 for j in range(100)]
                )
                await watcher.message(local_id=local_id)
                if any(_left(alice.participant_id)(f) for f in watcher.frames):
                    break
            else:
                raise AssertionError("the socket that does not read was never dropped")
            await watcher.sync()


def _answered(frames: list[Frame]) -> list[str]:
    """The local ids answered, in order: by the message's echo or by an error frame."""
    return [
        (f["message"] if "message" in f else f["error"]).get("local_id") or ""
        for f in frames
        if ("message" in f and f["message"].get("local_id")) or "error" in f
    ]


async def test_a_burst_from_a_client_that_reads_everything_is_answered_whole(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """(Chaos QA: 1,200 texts sent at once by a client reading every frame: its own queue
    filled with their answers faster than they were written, and it was closed 1013 as too
    slow after 86 echoes.) The socket's frames are read no faster than their answers are
    written: every text gets its answer (its echo, or the rate limit's error frame, which
    is made without a wait, so a burst of them filled the queue between two writes), and
    the socket stays open."""
    limits = {**make_settings().rate_limits, "message": "10/minute"}
    settings = make_settings(ws_send_queue=20, rate_limits=limits)
    async with live_server(settings) as server:
        alice = people(server)
        assert (await alice.create(nickname="alice", bots=[])).status_code == 201
        socket = await alice.connect()
        await socket.state()
        burst = [
            orjson.dumps({"type": "T", "text": f"t{i}", "local_id": f"b{i}"}).decode()
            for i in range(300)
        ]
        for frame in burst:  # (written at once: none waits for an answer)
            await socket.connection.send(frame)
        async with asyncio.timeout(30):
            while len(answered := _answered(socket.frames)) < 300:
                await socket.recv()
        assert answered == [f"b{i}" for i in range(300)]
        assert [f["error"]["code"] for f in socket.frames if "error" in f] == ["throttled"] * 290
