"""A channel's batches put back in seq order (realtime/ordering.py): what two processes
publish may reach Redis in another order than their commits numbered it."""

from __future__ import annotations

import asyncio

from tertulia.realtime.broker import Event
from tertulia.realtime.ordering import SeqOrder


def batch(*seqs: int | None, frame: str = "") -> list[Event]:
    return [Event(frozenset({"humans"}), frame or f"m{seq}", seq) for seq in seqs]


class Recorder:
    def __init__(self, wait: float = 10.0) -> None:
        self.frames: list[str] = []
        self.gaps: list[int] = []
        self.order = SeqOrder(self.hand_on, self.gaps.append, wait=wait)

    def hand_on(self, events: list[Event]) -> None:
        self.frames.extend(event.frame for event in events)


async def test_batches_in_order_pass_at_once() -> None:
    seen = Recorder()
    for seq in (5, 6, 7):
        seen.order.add(batch(seq))
    seen.order.add(batch(None, frame="state"))
    assert seen.frames == ["m5", "m6", "m7", "state"]
    assert seen.order.waiting == 0


async def test_a_batch_ahead_of_its_turn_waits_for_the_ones_before() -> None:
    """47 arrives before 46 (two processes' publishes crossed): 46 goes first. A batch
    without seq keeps its place after the batch it came after."""
    seen = Recorder()
    seen.order.add(batch(45))
    seen.order.add(batch(47))
    seen.order.add(batch(None, frame="state after 47"))
    seen.order.add(batch(48, 49))
    assert seen.frames == ["m45"]
    assert seen.order.waiting == 3
    seen.order.add(batch(46))
    assert seen.frames == ["m45", "m46", "m47", "state after 47", "m48", "m49"]
    assert seen.order.waiting == 0
    assert seen.order.last == 49


async def test_late_batches_in_any_order_come_out_in_order() -> None:
    seen = Recorder()
    seen.order.add(batch(1))
    for seq in (4, 3, 5, 2):
        seen.order.add(batch(seq))
    assert seen.frames == ["m1", "m2", "m3", "m4", "m5"]


async def test_the_same_seq_again_passes() -> None:
    """A message approved again is published again with its seq: not a gap."""
    seen = Recorder()
    seen.order.add(batch(3))
    seen.order.add(batch(3, frame="again"))
    assert seen.frames == ["m3", "again"]


async def test_a_seq_that_never_comes_is_given_up() -> None:
    """After ``wait`` the subscribers are told (they resume from the database) and what
    waited is handed on; the order goes on from there."""
    seen = Recorder(wait=0.05)
    seen.order.add(batch(1))
    seen.order.add(batch(3))
    seen.order.add(batch(None, frame="state"))
    assert seen.frames == ["m1"]
    async with asyncio.timeout(5):
        while not seen.gaps:
            await asyncio.sleep(0.01)
    assert seen.gaps == [2]
    assert seen.frames == ["m1", "m3", "state"]
    seen.order.add(batch(4))
    assert seen.frames[-1] == "m4"


async def test_forgetting_hands_on_what_waits_and_starts_again() -> None:
    """Events were lost (the connection broke): nothing waits for them."""
    seen = Recorder()
    seen.order.add(batch(1))
    seen.order.add(batch(3))
    seen.order.forget()
    assert seen.frames == ["m1", "m3"]
    seen.order.add(batch(9))  # (the order starts again at the next batch)
    assert seen.frames == ["m1", "m3", "m9"]
    assert seen.gaps == []


async def test_a_closed_order_drops_what_waits() -> None:
    seen = Recorder(wait=0.0)
    seen.order.add(batch(1))
    seen.order.add(batch(3))
    seen.order.close()
    for _ in range(3):
        await asyncio.sleep(0)  # (a timer of 0 s left running would fire meanwhile)
    assert seen.frames == ["m1"]
    assert seen.gaps == []
    assert seen.order.waiting == 0


async def test_an_order_not_started_waits_to_be_told_where_it_starts() -> None:
    """(Multi-process QA F1: a process's first socket in a conversation got 7760, then
    7759, about once in 300: the order of a new subscription started at whatever came
    first.) Started later, at the highest seq its subscriber read from the database, it
    hands on what waited in order, what that read already carried included, and then as
    ever."""
    frames: list[str] = []
    order = SeqOrder(
        lambda events: frames.extend(e.frame for e in events), [].append, wait=10.0, started=False
    )
    order.add(batch(None, frame="state first"))
    order.add(batch(7760))
    order.add(batch(None, frame="state after 7760"))
    order.add(batch(7758))
    assert frames == ["state first"], "a batch without seq passes; the others wait"
    order.start(7758)
    assert frames == ["state first", "m7758"]
    order.add(batch(7759))
    assert frames == ["state first", "m7758", "m7759", "m7760", "state after 7760"]
    order.start(9000)  # (told again, by a later subscriber: the order has started)
    order.add(batch(7761))
    assert frames[-1] == "m7761"


async def test_an_order_never_told_where_it_starts_hands_on_in_order_after_the_wait() -> None:
    """Its subscriber never said (its read failed): after the wait, what waited goes in
    order, nobody is told of a gap, and the order goes on from there."""
    frames: list[str] = []
    gaps: list[int] = []
    order = SeqOrder(
        lambda events: frames.extend(e.frame for e in events), gaps.append, wait=0.05, started=False
    )
    order.add(batch(12))
    order.add(batch(11))
    await asyncio.sleep(0.2)  # (past the wait: what the timer does is the point)
    assert frames == ["m11", "m12"]
    assert gaps == []
    order.add(batch(14))
    assert frames == ["m11", "m12"], "13 is awaited as ever"
