"""A conversation's events handed on in the order of their messages' ``seq``, when several
processes publish them.

A message's ``seq`` is taken in its transaction, and two transactions numbering messages of
one conversation take turns (its row stays locked until the first commits): seqs follow
the order of the commits. Each process publishes after its commit, and Redis keeps the
order of one publisher only: the process that committed 46 may publish after the one that
committed 47 a moment later. A socket would then get 47 before 46; a client that resumes
with ``?after=`` its highest seq, or drops what is not above it (the SDK, as duplicates),
would skip 46 for good.

So each process's reader puts a channel's batches back in order (:class:`SeqOrder`): a
batch whose first seq is beyond the next one expected waits, with every batch after it,
until the missing ones come, for at most :data:`GAP_WAIT` seconds. A missing seq that does
not come (its process died between its commit and its publish, or its publish failed)
is given up: the subscribers are told they missed events (their sockets close, and their
clients resume from the database, where it is stored) and what waited is handed on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tertulia.realtime.broker import Event

GAP_WAIT = 2.0
"""Seconds a batch waits for the seqs before it (a process's publish may lag its commit
by a loop's turn, or longer under load; one that never comes closes the sockets)."""

Batch = list[Event]


def _seqs(events: Batch) -> tuple[int | None, int | None]:
    """The lowest and highest seq among ``events`` (None, None: no visible message)."""
    seqs = [event.seq for event in events if event.seq is not None]
    return (min(seqs), max(seqs)) if seqs else (None, None)


class SeqOrder:
    """One channel's batches of events, handed on in the order of their messages' seqs.

    A batch with no seq (a ``state`` frame, presence, a redirected copy) keeps its place
    after the batch that arrived before it. Where the order starts is the highest seq its
    first subscriber read from the database once subscribed (:meth:`start`): until it is
    told, the batches with seqs wait. Started at the first batch that came instead, a
    process's first socket in a conversation got 7760 before 7759 when the two crossed
    (multi-process QA). One never told starts after ``wait`` seconds, with what waited
    handed on in order.

    Args:
        hand_on: called with each batch, in order.
        gave_up: called when a missing seq did not come within ``wait`` seconds (before
            the batches that waited for it are handed on).
        wait: seconds a batch waits for the seqs before it (:data:`GAP_WAIT`).
        started: False: wait for :meth:`start`; True: the first batch with a seq starts
            the order (a subscriber that reads nothing from the database).
    """

    def __init__(
        self,
        hand_on: Callable[[Batch], None],
        gave_up: Callable[[int], None],
        *,
        wait: float | None = None,
        started: bool = True,
    ) -> None:
        self.started = started
        self._hand_on = hand_on
        self._gave_up = gave_up
        self._wait = GAP_WAIT if wait is None else wait
        self.last: int | None = None
        """The highest seq handed on (None: none yet, or forgotten)."""
        self._highest: int | None = None  # the highest seq arrived, handed on or waiting
        self._waiting: list[tuple[float, int, int | None, Batch]] = []  # (place, arrival, top)
        self._arrivals = 0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        """Batches waiting for a missing seq."""
        return len(self._waiting)

    def add(self, events: Batch) -> None:
        """One batch as it arrived: handed on now, or once the seqs before it are."""
        first, top = _seqs(events)
        # Its place in the order: its first seq; without one, right after the batch with
        # the highest seq that arrived before it.
        place = float(first) if first is not None else (self._highest or 0) + 0.5
        if top is not None and (self._highest is None or top > self._highest):
            self._highest = top
        in_turn = first is None or (self.started and (self.last is None or first <= self.last + 1))
        if not self._waiting and in_turn:
            self._pass(events, top)
            return
        self._arrivals += 1
        self._waiting.append((place, self._arrivals, top, events))
        self._waiting.sort(key=lambda item: (item[0], item[1]))
        self._release()
        if self._waiting and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._wait, self._give_up)

    def start(self, seq: int) -> None:
        """Start the order after ``seq``: its subscriber read every seq up to it from the
        database. What waited follows in order; once started, this does nothing."""
        if self.started:
            return
        self.started = True
        if self.last is None or seq > self.last:
            self.last = seq
        self._release()

    def forget(self) -> None:
        """Events may have been lost (the broker's connection broke, a publish failed, and
        the subscribers were told): hand on what waits, and start the order again."""
        self._flush()
        self.last = self._highest = None

    def close(self) -> None:
        """The channel has no subscribers left: drop what waits."""
        self._cancel_timer()
        self._waiting.clear()

    def _pass(self, events: Batch, top: int | None) -> None:
        if top is not None and (self.last is None or top > self.last):
            self.last = top
        self._hand_on(events)

    def _release(self) -> None:
        """Hand on the waiting batches that now follow in order, up to the next gap."""
        if not self.started:
            return
        released = 0
        for place, _, top, events in self._waiting:
            if top is None:  # (no seq: it follows the batch it came after)
                if self.last is None or place - 0.5 > self.last:
                    break
            elif self.last is not None and place > self.last + 1:
                break
            released += 1
            self._pass(events, top)
        if released:
            del self._waiting[:released]
            if not self._waiting:
                self._cancel_timer()

    def _give_up(self) -> None:
        self._timer = None
        if not self._waiting:
            return
        if not self.started:  # (never told where it starts: no gap is known)
            self.started = True
        else:
            self._gave_up((self.last or 0) + 1)
        self._flush()

    def _flush(self) -> None:
        self._cancel_timer()
        waiting, self._waiting = self._waiting, []
        for _, _, top, events in waiting:
            self._pass(events, top)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
