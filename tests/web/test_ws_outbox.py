"""A socket's outgoing queue: order, superseded state frames, overflow."""

from __future__ import annotations

import asyncio
from typing import Any

from tertulia.realtime.broker import Event
from tertulia.web.ws import Outbox

EVERYONE = frozenset({"humans", "bots"})


class Peer:
    """Stands in for a WebSocket: records what was sent, can be told to stall."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def send_text(self, text: str) -> None:
        await self.flowing.wait()
        self.sent.append(text)


def outbox(peer: Peer, size: int = 10) -> Outbox:
    box = Outbox(peer, frozenset({"humans", "p:me"}), size)  # type: ignore[arg-type]
    box.start("test-sender")
    return box


async def drained(box: Outbox) -> None:
    async with asyncio.timeout(5):
        while box.pending:
            await asyncio.sleep(0)
        await asyncio.sleep(0)


async def test_a_newer_state_replaces_one_not_sent_yet() -> None:
    """While the peer stalls, state frames collapse into the latest; messages keep order."""
    peer = Peer()
    box = outbox(peer)
    peer.flowing.clear()
    box.deliver(Event(EVERYONE, "m1"))
    await asyncio.sleep(0)  # the sender takes m1 and blocks on the stalled peer
    for frame in ("s1", "m2", "s2", "s3", "m3", "s4"):
        box.deliver(Event(EVERYONE, frame, supersedes=frame.startswith("s")))
    peer.flowing.set()
    await drained(box)
    # s1 took the newest content (s4); m2 and m3 still come after a state naming everyone.
    assert peer.sent == ["m1", "s4", "m2", "m3"]
    assert box.sender is not None
    box.sender.cancel()


async def test_a_state_already_taken_is_not_rewritten() -> None:
    """Once the sender took a state frame, a newer one is queued after what follows it."""
    peer = Peer()
    box = outbox(peer)
    box.deliver(Event(EVERYONE, "s1", supersedes=True))
    await drained(box)
    box.deliver(Event(EVERYONE, "m1"))
    box.deliver(Event(EVERYONE, "s2", supersedes=True))
    await drained(box)
    assert peer.sent == ["s1", "m1", "s2"]
    assert box.sender is not None
    box.sender.cancel()


async def test_frames_for_others_are_skipped_and_a_full_queue_drops_the_socket() -> None:
    """Frames not addressed to the socket's tags are ignored; overflow stops the sender."""
    peer = Peer()
    peer.flowing.clear()
    box = outbox(peer, size=2)
    box.deliver(Event(frozenset({"manager"}), "not mine"))
    for n in range(4):
        box.deliver(Event(EVERYONE, f"m{n}"))
        await asyncio.sleep(0)
    assert box.overflowed
    sender: Any = box.sender
    await asyncio.gather(sender, return_exceptions=True)
    assert sender.cancelled()
    assert peer.sent == []
