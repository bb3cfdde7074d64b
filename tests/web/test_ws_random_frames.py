"""Seeded random frames on one socket: whatever arrives, the sender gets one answer per
frame (its stored message or an error frame, never ``internal``) and the socket stays open
(the definition of done: bad input gets a clear error, never a dropped connection).

The conversation has no bot, so each frame brings exactly one ``message`` or ``error``
frame back to its sender; ``state`` frames may arrive between them and are skipped. The
seed is fixed: a failure reproduces, and the frame that caused it is in the assertion.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

from support.blab import Frame
from support.junk import MESSAGE_FIELDS, SEED, json_value
from support.rest import PersonFactory
from support.server import LiveServer

FRAMES = 300
FIELDS = (*MESSAGE_FIELDS, "file", "event", "seq", "id", "sender_id")


def _frame(rnd: random.Random) -> str | bytes:
    """A text frame (JSON or not) or, now and then, a binary one; never empty."""
    kind = rnd.random()
    if kind < 0.05:
        return b'{"type": "T", "text": "binary"}'
    if kind < 0.15:
        return rnd.choice(["{", "null", "[]", "1", '"x"', "{}{}", "\u0000", '{"type":"T"'])
    if kind < 0.25:
        return json.dumps(json_value(rnd, FIELDS))  # (json: integers beyond 64 bits too)
    data: dict[str, Any] = {}
    if kind < 0.6:  # mostly a text message, with odd extra fields
        data = {"type": "T", "text": rnd.choice(["hi", "é" * 10, "", "x" * 4000, None])}
    for field in rnd.sample(FIELDS, rnd.randint(0, 4)):
        data[field] = json_value(rnd, FIELDS)
    return json.dumps(data)


def _answer(frame: Frame) -> bool:
    return "message" in frame or "error" in frame


async def test_random_frames_each_get_one_answer_and_the_socket_stays_open(
    server: LiveServer, people: PersonFactory
) -> None:
    person = people(server)
    assert (await person.create(nickname="fuzz", name="fuzz", bots=[])).status_code == 201
    socket = await person.connect()
    await socket.sync()  # the greeting frames are in
    rnd = random.Random(SEED)
    outcomes: Counter[str] = Counter()
    for _ in range(FRAMES):
        sent = _frame(rnd)
        await socket.connection.send(sent)
        reply = await socket.wait_for(_answer)
        if "error" in reply:
            code = reply["error"]["code"]
            assert code != "internal", (sent, reply)
            outcomes[code] += 1
        else:
            assert reply["message"]["sender_id"] == person.participant_id, (sent, reply)
            outcomes["stored"] += 1
    # Nothing more than one answer per frame, and the socket still works.
    late = await socket.sync()
    assert not [f for f in late if _answer(f)], late
    # The frames reached both sides of the rules (a test that only saw errors proves less).
    assert outcomes["stored"] >= 20, outcomes
    assert len(outcomes) >= 4, outcomes
