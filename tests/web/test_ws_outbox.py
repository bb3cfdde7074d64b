"""A socket's outgoing queue: order, superseded state frames, overflow, a replay streamed a
batch at a time with live frames held meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tertulia.realtime.broker import Event
from tertulia.web.ws import Batch, Outbox

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


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not check():
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


async def test_a_sockets_own_state_is_not_replaced_by_a_broadcast_one() -> None:
    """A newcomer's own state frame (which alone tells it which bots are working) is sent
    even when a presence one for everyone comes before it was; that one follows it."""
    peer = Peer()
    box = outbox(peer)
    peer.flowing.clear()
    box.deliver(Event(EVERYONE, "m1"))
    await asyncio.sleep(0)  # the sender takes m1 and blocks on the stalled peer
    box.put_state("own, working", own=True)
    box.deliver(Event(EVERYONE, "s1", supersedes=True))
    box.deliver(Event(EVERYONE, "s2", supersedes=True))
    peer.flowing.set()
    await drained(box)
    assert peer.sent == ["m1", "own, working", "s2"]
    assert box.sender is not None
    box.sender.cancel()


async def test_an_opening_sockets_first_state_is_its_own() -> None:
    """A broadcast state (someone's presence) delivered while the socket is opening, before
    its own state was read, is dropped: the own one, read after it, is as new and carries
    what only it has (a bot's copy_seq, the working bots). Before, the broadcast one could
    come first, and a client reading its first state found no copy_seq. Once the own state
    is queued, a broadcast one follows it as before."""
    peer = Peer()
    box = outbox(peer)
    box.hold()  # (the endpoint's opening: subscribed, its first frames not written yet)
    box.deliver(Event(EVERYONE, "s-before", supersedes=True))
    box.put_state("own, copy_seq", own=True)
    box.deliver(Event(EVERYONE, "s-after", supersedes=True))
    box.put_first([])
    await drained(box)
    assert peer.sent == ["own, copy_seq", "s-after"]
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


async def test_a_replay_is_read_a_batch_at_a_time() -> None:
    """A replay's next batch is read once the last is written: while the peer stalls nothing
    more is read, and no more than one batch is ever built ahead of what was sent."""
    peer = Peer()
    box = outbox(peer)
    box.hold()
    built: list[int] = []  # frames read and not sent yet, as each further batch is read

    def batch(after: int) -> Batch:
        return [(seq, f"m{seq}") for seq in range(after + 1, min(after + 3, 8) + 1)]

    async def read(after: int) -> tuple[Batch, int | None]:
        built.append(after - len(peer.sent))
        found = batch(after)
        return found, found[-1][0] if len(found) == 3 else None

    peer.flowing.clear()
    box.put_first(batch(0), 3, read)
    for _ in range(10):
        await asyncio.sleep(0)
    assert built == []
    peer.flowing.set()
    await until(lambda: len(peer.sent) == 8)
    assert peer.sent == [f"m{seq}" for seq in range(1, 9)]
    assert built == [0, 0]
    assert box.sender is not None
    box.sender.cancel()


async def test_a_state_queued_during_a_replay_goes_before_its_next_batch() -> None:
    """A state frame queued while a replay streams (a newcomer's, say) goes before the next
    batch, which may name the newcomer; live frames held meanwhile follow the replay, less
    those it carried."""
    peer = Peer()
    box = outbox(peer)
    box.hold()
    reading, go = asyncio.Event(), asyncio.Event()

    async def read(after: int) -> tuple[Batch, int | None]:
        reading.set()
        await go.wait()
        return [(3, "m3"), (4, "m4")], None

    box.put_state("s1")
    box.put_first([(1, "m1"), (2, "m2")], 2, read)
    async with asyncio.timeout(5):
        await reading.wait()
    box.deliver(Event(EVERYONE, "s2", supersedes=True))
    box.deliver(Event(EVERYONE, "m4", seq=4))  # committed before the batch was read
    box.deliver(Event(EVERYONE, "m5", seq=5))
    go.set()
    await until(lambda: len(peer.sent) == 7)
    await drained(box)
    assert peer.sent == ["s1", "m1", "m2", "s2", "m3", "m4", "m5"]
    assert box.sender is not None
    box.sender.cancel()


async def test_live_frames_held_past_the_queue_size_drop_the_socket() -> None:
    """Live frames held while a replay is written count against the queue's size, but not
    those the replay has carried: one more and the socket is dropped as a slow reader."""
    peer = Peer()
    peer.flowing.clear()
    box = outbox(peer, size=3)
    box.hold()
    never = asyncio.Event()

    async def read(after: int) -> tuple[Batch, int | None]:
        if after == 4:
            await never.wait()  # the replay goes on
        return [(3, "m3"), (4, "m4")], 4

    box.put_first([(1, "m1"), (2, "m2")], 2, read)
    await asyncio.sleep(0)  # the sender takes the replay and stalls writing m1
    for seq in (2, 3, 4, 10):  # m2 is written already, m3 and m4 are held for now
        box.deliver(Event(EVERYONE, f"m{seq}", seq=seq))
    assert not box.overflowed
    peer.flowing.set()
    await until(lambda: len(peer.sent) == 4)  # m3 and m4 came with the replay
    for seq in (11, 12):
        box.deliver(Event(EVERYONE, f"m{seq}", seq=seq))
    assert not box.overflowed
    box.deliver(Event(EVERYONE, "m13", seq=13))
    assert box.overflowed
    sender: Any = box.sender
    await asyncio.gather(sender, return_exceptions=True)
    assert sender.cancelled()
    assert peer.sent == ["m1", "m2", "m3", "m4"]


async def test_frames_missed_before_the_sender_started_still_stop_it() -> None:
    """The broker says frames were missed while the socket was still subscribing (no
    sender yet): the sender stops as soon as it starts, so the socket is closed for its
    client to catch up, rather than left deaf to later outages too."""
    peer = Peer()
    box = Outbox(peer, frozenset({"humans"}), 10)  # type: ignore[arg-type]
    box.missed()
    sender = box.start("test-sender")
    await asyncio.gather(sender, return_exceptions=True)
    assert sender.cancelled()
    assert box.missed_events


async def test_copies_the_first_frames_carry_are_not_sent_again_live() -> None:
    """A redirected copy committed while a bot's socket read its missed ones is in both:
    the live one is dropped; later ones, and messages, go out."""
    peer = Peer()
    box = outbox(peer)
    box.hold()
    mine = frozenset({"p:me"})
    box.deliver(Event(mine, "copy 7", copy=7))  # held: committed as the socket subscribed
    box.deliver(Event(mine, "copy 8", copy=8))
    box.copies_upto = 7  # the missed copies read after subscribing: up to 7
    box.put_first([(0, "copy 6"), (0, "copy 7")])
    box.deliver(Event(mine, "copy 7", copy=7))  # (a later repeat is dropped too)
    box.deliver(Event(EVERYONE, "message 3", seq=3))
    await until(lambda: len(peer.sent) == 4)
    await drained(box)
    assert peer.sent == ["copy 6", "copy 7", "copy 8", "message 3"]
    assert box.sender is not None
    box.sender.cancel()


async def test_a_state_listing_fewer_participants_than_one_queued_is_dropped() -> None:
    """Participants are never removed: a state frame that lists fewer than one the socket
    has queued (its own, or a broadcast one) is older, and came late, crossing a newer one
    from another process on its way. It is dropped; one listing as many (a rename, a
    presence change) or more is sent, and a frame from a process that predates the count
    (none) too. Before, the older frame was sent last, and the client lost the newcomer."""
    peer = Peer()
    box = outbox(peer)
    box.hold()
    box.put_state("own: 2", own=True, listed=2)
    box.put_first([])
    await drained(box)
    box.deliver(Event(EVERYONE, "join: 3", supersedes=True, participants=3))
    await drained(box)
    box.deliver(Event(EVERYONE, "late: 2", supersedes=True, participants=2))
    box.deliver(Event(EVERYONE, "m1"))
    await drained(box)
    box.deliver(Event(EVERYONE, "rename: 3", supersedes=True, participants=3))
    await drained(box)
    box.deliver(Event(EVERYONE, "old process", supersedes=True))
    await drained(box)
    box.deliver(Event(EVERYONE, "join: 4", supersedes=True, participants=4))
    await drained(box)
    assert peer.sent == ["own: 2", "join: 3", "m1", "rename: 3", "old process", "join: 4"]
    assert box.sender is not None
    box.sender.cancel()
