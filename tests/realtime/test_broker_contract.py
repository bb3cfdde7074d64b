"""One contract for every Broker: the in-process one and Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from support.environment import REDIS_URL, require_service
from tertulia.errors import ConfigurationError
from tertulia.realtime.broker import Broker, Event, create_broker


@pytest.fixture(params=["memory", "redis", "redis-unix"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    """A started broker of each kind (Redis over TCP and over a Unix socket)."""
    if request.param == "redis":
        require_service("Redis", REDIS_URL)
        made = create_broker(REDIS_URL)
    elif request.param == "redis-unix":
        made = create_broker(request.getfixturevalue("redis_unix_url"))
    else:
        made = create_broker("memory://")
    await made.start()
    try:
        yield made
    finally:
        await made.close()


def channel() -> str:
    return str(uuid.uuid4())


class Inbox:
    def __init__(self) -> None:
        self.events: asyncio.Queue[Event] = asyncio.Queue()

    def __call__(self, event: Event) -> None:
        self.events.put_nowait(event)

    async def take(self, count: int) -> list[Event]:
        return [await asyncio.wait_for(self.events.get(), 5) for _ in range(count)]


async def test_events_reach_every_subscriber_in_order(broker: Broker) -> None:
    """Each subscriber of a channel gets every event published after it subscribed, in order."""
    name = channel()
    first, second = Inbox(), Inbox()
    await broker.subscribe(name, first)
    await broker.subscribe(name, second)
    events = [Event(frozenset({"humans"}), f'{{"n": {i}}}', i) for i in range(20)]
    await broker.publish(name, events[:10])
    await broker.publish(name, events[10:])
    assert await first.take(20) == events
    assert await second.take(20) == events


async def test_other_channels_are_not_heard(broker: Broker) -> None:
    """A subscriber hears only its own channel."""
    mine, other = channel(), channel()
    inbox = Inbox()
    await broker.subscribe(mine, inbox)
    await broker.publish(other, [Event(frozenset({"humans"}), "other")])
    await broker.publish(mine, [Event(frozenset({"bots"}), "mine")])
    (event,) = await inbox.take(1)
    assert event.frame == "mine"
    assert event.audience == frozenset({"bots"})


async def test_unsubscribed_callbacks_hear_nothing_more(broker: Broker) -> None:
    """After unsubscribing, a callback gets nothing; the other subscribers still do."""
    name = channel()
    gone, staying = Inbox(), Inbox()
    unsubscribe = await broker.subscribe(name, gone)
    await broker.subscribe(name, staying)
    unsubscribe()
    await broker.publish(name, [Event(frozenset({"humans"}), "after")])
    await staying.take(1)
    assert gone.events.empty()


async def test_a_failing_subscriber_does_not_starve_others(broker: Broker) -> None:
    """An exception in one callback does not stop delivery to the next."""
    name = channel()

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    inbox = Inbox()
    await broker.subscribe(name, broken)
    await broker.subscribe(name, inbox)
    await broker.publish(name, [Event(frozenset({"humans"}), "x")])
    assert [e.frame for e in await inbox.take(1)] == ["x"]


async def test_presence_counts_sockets_per_participant(broker: Broker) -> None:
    """The first socket makes a participant present, the last one leaving makes it absent."""
    name = channel()
    assert await broker.join(name, "p1", "s1") is True
    assert await broker.join(name, "p1", "s2") is False
    assert await broker.join(name, "p2", "s3") is True
    assert await broker.present(name) == {"p1", "p2"}
    assert await broker.leave(name, "p1", "s1") is False
    assert await broker.leave(name, "p1", "s2") is True
    assert await broker.present(name) == {"p2"}
    assert await broker.leave(name, "p2", "s3") is True
    assert await broker.leave(name, "p2", "s3") is True
    assert await broker.present(name) == set()


def test_unknown_broker_urls_are_refused() -> None:
    """A broker URL with an unknown scheme stops start-up with a clear error."""
    with pytest.raises(ConfigurationError, match="unknown broker URL"):
        create_broker("kafka://localhost")


async def test_every_field_of_an_event_arrives(broker: Broker) -> None:
    """An event's fields all cross the broker: a superseding state frame and its count of
    participants, an order to close (a deleted conversation's), and a redirected copy's
    number."""
    name = channel()
    inbox = Inbox()
    await broker.subscribe(name, inbox)
    events = [
        Event(frozenset({"humans", "bots"}), '{"state": {}}', supersedes=True, participants=5),
        Event(frozenset({"humans"}), '{"error": {}}', close=4404),
        Event(frozenset({"p:bot"}), '{"message": {}}', copy=12),
    ]
    await broker.publish(name, events)
    assert await inbox.take(3) == events


def test_redis_events_of_older_processes_are_read() -> None:
    """A Redis message from a process that predates the ``close``, ``copy`` and
    ``participants`` fields (four fields) reads as before; fields a newer process may add
    after them are ignored."""
    from tertulia.realtime.redis import _events

    older = b'[[["humans"], "{}", 3, false], [["bots"], "{}", null, true]]'
    assert _events(older) == [
        Event(frozenset({"humans"}), "{}", 3),
        Event(frozenset({"bots"}), "{}", supersedes=True),
    ]
    newer = b'[[["humans"], "{}", null, false, 4404, null, null, "later"]]'
    assert _events(newer) == [Event(frozenset({"humans"}), "{}", close=4404)]
