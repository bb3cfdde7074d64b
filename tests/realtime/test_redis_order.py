"""Two processes' publishes of one conversation reach each subscriber in seq order, and a
seq that never comes closes its subscribers' sockets for them to catch up
(realtime/redis.py, realtime/ordering.py; found by QA with two processes)."""

from __future__ import annotations

import uuid

import pytest

from realtime.test_redis_outages import started_broker
from support.bots import watch_logs
from support.listeners import Listener
from support.waiting import until
from tertulia.realtime import ordering
from tertulia.realtime.broker import Event


def message(seq: int) -> list[Event]:
    return [Event(frozenset({"humans"}), f"m{seq}", seq)]


async def test_publishes_of_two_processes_that_cross_arrive_in_seq_order() -> None:
    """Process A commits 2 and process B 3 just after, but B publishes first: a socket on
    A gets 2 before 3 (it got 3 then 2, and a client resuming after its highest seq, or
    the SDK dropping what is not above it, lost 2 for good)."""
    channel = str(uuid.uuid4())
    listener = Listener()
    async with started_broker() as here, started_broker() as there:
        await here.subscribe(channel, listener.deliver, listener.lost)
        await here.publish(channel, message(1))
        await until(lambda: listener.frames == ["m1"])
        await there.publish(channel, message(3))
        await there.publish(channel, [Event(frozenset({"humans"}), "state")])
        await here.publish(channel, message(2))
        await until(lambda: len(listener.frames) == 4)
    assert listener.frames == ["m1", "m2", "m3", "state"]
    assert listener.missed == 0


async def test_a_seq_that_never_comes_tells_the_subscribers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The process that took seq 2 died between its commit and its publish: after the wait
    the subscribers are told they missed events (their sockets close and their clients
    resume from the database), and 3 is handed on."""
    monkeypatch.setattr(ordering, "GAP_WAIT", 0.2)
    channel = str(uuid.uuid4())
    listener = Listener()
    with watch_logs() as logs:
        async with started_broker() as here, started_broker() as there:
            await here.subscribe(channel, listener.deliver, listener.lost)
            await here.publish(channel, message(1))
            await there.publish(channel, message(3))
            await until(lambda: listener.frames == ["m1", "m3"])
    assert listener.missed == 1
    (gap,) = [e for e in logs.entries if e["event"].startswith("a message's event never came")]
    assert (gap["conversation_id"], gap["seq"], gap["log_level"]) == (channel, 2, "warning")


async def test_a_new_subscription_starts_its_order_where_its_subscriber_read() -> None:
    """(Multi-process QA F1.) A process's first subscriber of a conversation says where the
    order starts (``since``: the highest seq it read once subscribed); 3 published before
    2, while it read 1, reaches it after 2."""
    channel = str(uuid.uuid4())
    listener = Listener()
    async with started_broker() as here, started_broker() as there:
        await there.publish(channel, message(1))

        async def since() -> int:  # (the subscriber's read; meanwhile 3 then 2 come)
            await there.publish(channel, message(3))
            await here.publish(channel, message(2))
            return 1

        await here.subscribe(channel, listener.deliver, listener.lost, since=since)
        await until(lambda: len(listener.frames) == 2)
    assert listener.frames == ["m2", "m3"]
    assert listener.missed == 0
