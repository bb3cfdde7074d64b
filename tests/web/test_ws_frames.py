"""Frames over the socket: joined and state on connect, echo and answers, error frames
(PROTOCOL 4.2, 4.3, 5.1, 5.7; A.2 #15-#17)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from support.blab import Frame, Person, Socket
from support.server import LiveServer

PersonFactory = Callable[[LiveServer], Person]
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")


def _joined(participant_id: str | None) -> Callable[[Frame], bool]:
    def match(frame: Frame) -> bool:
        message = frame.get("message", {})
        return bool(
            message.get("event") == "participant-joined"
            and message["additional_metadata"] == {"participant_id": participant_id}
        )

    return match


async def _bob(server: LiveServer, alice: Person, people: PersonFactory) -> Person:
    bob = people(server)
    assert alice.conversation_id is not None
    assert (await bob.join(alice.conversation_id, nickname="bob")).status_code == 200
    return bob


async def _sent_by(person: Person) -> list[str]:
    """Texts of the stored messages ``person`` sent (bots may still be answering)."""
    results = (await person.history(limit=1000)).json()["results"]
    return [m["text"] for m in results if m.get("sender_id") == person.participant_id]


async def test_connect_publishes_one_joined_then_state(
    server: LiveServer, alice: Person, people: PersonFactory
) -> None:
    """A human's connect sends everyone one participant-joined for them, then a full state."""
    bob = await _bob(server, alice, people)
    bob_socket = await bob.connect()
    await bob_socket.wait_for(_joined(bob.participant_id))
    await bob_socket.state()

    socket = await alice.connect()
    joined = await socket.wait_for(_joined(alice.participant_id))
    assert joined["message"]["type"] == "S"
    assert joined["message"]["sent_by_human"] is False
    assert TIME.match(joined["message"]["time"])
    state = await socket.state()
    names = {(p["name"], p["type"]) for p in state["participants"]}
    assert names == {("alice", "H"), ("ECHO", "B"), ("bob", "H")}
    assert all(set(p) >= {"id", "name", "type"} for p in state["participants"])

    seen = await bob_socket.wait_for(_joined(alice.participant_id))
    await bob_socket.state()
    await bob_socket.sync()
    await socket.sync()
    for frames in (bob_socket.frames, socket.frames):
        assert sum(_joined(alice.participant_id)(f) for f in frames) == 1
    after = bob_socket.frames[bob_socket.frames.index(seen) + 1 :]
    assert "state" in next(f for f in after if "state" in f or "message" in f)


async def test_message_is_echoed_then_echo_bot_answers(alice: Person) -> None:
    """A text comes back to its sender first (same local_id), then ECHO's reply quoting it."""
    socket = await alice.connect()
    await socket.send({"type": "T", "text": "hello", "local_id": "abc"})
    mine = await socket.message(local_id="abc")
    assert mine["sender_id"] == alice.participant_id
    assert mine["sent_by_human"] is True
    assert mine["text"] == "hello"
    assert mine["type"] == "T"
    assert mine["options"] == []
    assert TIME.match(mine["time"])
    answer = await socket.message(quoted_message_id=mine["id"])
    assert answer["text"] == "HELLO"
    assert answer["sent_by_human"] is False
    assert answer["sender_id"] != alice.participant_id
    messages = socket.messages()
    assert messages.index(mine) < messages.index(answer)
    assert mine["seq"] < answer["seq"]


async def test_duplicate_local_id_is_resent_to_the_sender_only(
    server: LiveServer, alice: Person, people: PersonFactory
) -> None:
    """A repeated local_id stores nothing, re-sends the stored message to the sender alone,
    and does not run the bots again."""
    bob = await _bob(server, alice, people)
    bob_socket = await bob.connect()
    socket = await alice.connect()
    await socket.send({"type": "T", "text": "once", "local_id": "dup"})
    first = await socket.message(local_id="dup")
    await socket.message(quoted_message_id=first["id"])
    await bob_socket.message(quoted_message_id=first["id"])
    await socket.send({"type": "T", "text": "twice?", "local_id": "dup"})
    again = await socket.message(local_id="dup")
    assert again["id"] == first["id"]
    assert again["text"] == "once"
    frames = await socket.sync()
    assert not [f for f in frames if f.get("message", {}).get("quoted_message_id") == first["id"]]
    frames = await bob_socket.sync()
    assert not [f for f in frames if f.get("message", {}).get("id") == first["id"]]
    assert not [f for f in frames if f.get("message", {}).get("quoted_message_id") == first["id"]]
    assert await _sent_by(alice) == ["once", "sync marker"]


BAD_FRAMES: list[tuple[Any, str]] = [
    ("   ", "not_json"),
    ("not json", "not_json"),
    ("[1,2]", "not_object"),
    ('"text"', "not_object"),
    ({"type": "Z", "text": "x", "local_id": "z1"}, "invalid"),
    ({"type": "S", "text": "x", "local_id": "s1"}, "invalid"),
    ({"text": "no type", "local_id": "n1"}, "invalid"),
    ({"type": "T", "text": "x" * 4001, "local_id": "long"}, "invalid"),
    ({"type": "T", "text": "x", "quoted_message_id": "zzz", "local_id": "q1"}, "invalid"),
    ({"type": "T", "text": "x", "options": [{"o": 1}], "local_id": "o1"}, "invalid"),
    ({"type": "i", "text": "no file", "local_id": "f1"}, "invalid"),
]


async def test_bad_frames_get_errors_and_the_socket_stays_open(alice: Person) -> None:
    """Each bad frame is answered with an error frame naming its local_id; nothing is stored."""
    socket = await alice.connect()
    await socket.state()
    for frame, code in BAD_FRAMES:
        await socket.send(frame)
        error = await socket.error()
        assert error["code"] == code, frame
        assert error["detail"], frame
        expected_local_id = frame.get("local_id") if isinstance(frame, dict) else None
        assert error["local_id"] == expected_local_id, frame
    frames = await socket.sync()
    assert not [f for f in frames if "error" in f]
    assert await _sent_by(alice) == ["sync marker"]


async def test_an_error_frames_detail_is_always_a_text(alice: Person) -> None:
    """``detail`` is a text a person can read, for every code; field errors are under
    ``errors`` (field -> texts), as the REST body has them (it used to be that object)."""
    socket = await alice.connect()
    await socket.state()
    await socket.send({"type": "Z", "text": "x", "local_id": "z1"})
    error = await socket.error()
    assert error == {
        "code": "invalid",
        "detail": 'type: "Z" is not a valid choice.',
        "local_id": "z1",
        "errors": {"type": ['"Z" is not a valid choice.']},
    }
    await socket.send("not json")
    error = await socket.error()
    assert isinstance(error["detail"], str)
    assert "errors" not in error
    for frame, _ in BAD_FRAMES:
        await socket.send(frame)
        error = await socket.error()
        assert isinstance(error["detail"], str), frame
        assert error["detail"], frame
        assert isinstance(error.get("errors", {}), dict), frame


@pytest.mark.parametrize(
    ("frame", "local_id"),
    [
        ('{"type": "T", "text": "\\ud83d", "local_id": "half"}', "half"),
        ('{"type": "T", "text": "x", "local_id": "nan", "extra": NaN}', "nan"),
        ('{"type": "T", "text": 1e999, "local_id": "huge"}', "huge"),
        ('{"type": "T", "text": "\\ud83d", "local_id": 5}', None),
    ],
    ids=["lone surrogate", "NaN", "infinite number", "no string local_id"],
)
async def test_a_frame_that_is_not_strict_json_is_refused_with_its_local_id(
    alice: Person, frame: str, local_id: str | None
) -> None:
    """A browser writes half an emoji as a lone surrogate escape; NaN and 1e999 are not
    JSON either. The error says why, and names the message, so the client knows which one
    was refused. (Found by QA: it said "must be a JSON object", with no local_id.)"""
    socket = await alice.connect()
    await socket.send(frame)
    error = await socket.error()
    assert error["code"] == "not_json"
    assert error["detail"].startswith("Not valid JSON: ")
    assert error["local_id"] == local_id
    assert await _sent_by(alice) == []


async def test_binary_and_empty_frames_leave_the_socket_open(alice: Person) -> None:
    """A binary frame gets an error frame, an empty text frame is ignored; the socket works."""
    socket = await alice.connect()
    await socket.connection.send(b"\x00\x01")
    assert (await socket.error())["code"] == "binary"
    await socket.connection.send("")
    frames = await socket.sync()
    assert not [f for f in frames if "error" in f]


async def test_oversized_frame_closes_with_1009(
    server: LiveServer, alice: Person, people: PersonFactory
) -> None:
    """A frame over ws_max_message closes that socket with 1009; other sockets go on."""
    bob = await _bob(server, alice, people)
    bob_socket = await bob.connect()
    socket = await alice.connect()
    await socket.state()
    await socket.say("x" * (server.settings.ws_max_message + 1))
    with pytest.raises(ConnectionClosed) as closed:
        await socket.wait_for(lambda f: False)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    await bob_socket.sync()


async def test_every_visible_message_carries_an_increasing_seq(alice: Person) -> None:
    """Messages to people carry seq, strictly increasing along a socket's stream."""
    socket: Socket = await alice.connect()
    for text in ("one", "two", "three"):
        local_id = await socket.say(text)
        mine = await socket.message(local_id=local_id)
        await socket.message(quoted_message_id=mine["id"])
    seqs = [m["seq"] for m in socket.messages()]
    assert seqs == sorted(set(seqs))
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
