"""The Redis broker when Redis fails: a subscriber that may have missed events is told so
(realtime/redis.py, the contract in realtime/broker.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from support.environment import REDIS_URL, require_service
from support.outages import break_reader, fail_publishing
from support.waiting import until
from tertulia.realtime.broker import Event
from tertulia.realtime.redis import RedisBroker


@pytest.fixture
async def broker() -> AsyncIterator[RedisBroker]:
    require_service("Redis", REDIS_URL)
    made = RedisBroker(REDIS_URL)
    await made.start()
    try:
        yield made
    finally:
        await made.close()


class Listener:
    """A subscriber: the events it heard, and how often it was told it missed some."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.missed = 0

    def deliver(self, event: Event) -> None:
        self.frames.append(event.frame)

    def lost(self) -> None:
        self.missed += 1


def event(frame: str) -> list[Event]:
    return [Event(frozenset({"humans"}), frame)]


async def test_subscribers_are_told_when_the_connection_breaks(broker: RedisBroker) -> None:
    """Redis drops the pub/sub connection (a restart): every local subscriber is told it
    may have missed events; the channels are subscribed again, and events flow again."""
    first, second, quiet = Listener(), Listener(), Listener()
    one, two = str(uuid.uuid4()), str(uuid.uuid4())
    await broker.subscribe(one, first.deliver, first.lost)
    await broker.subscribe(two, second.deliver, second.lost)
    await broker.subscribe(two, quiet.deliver)  # (asked not to be told)
    await break_reader(broker)
    await until(lambda: first.missed >= 1 and second.missed >= 1)

    sent = 0

    async def heard_again() -> bool:
        nonlocal sent
        sent += 1
        await broker.publish(two, event(f"after {sent}"))
        await asyncio.sleep(0.05)  # (published again until one arrives)
        return bool(quiet.frames)

    await until(heard_again)
    assert second.frames[-1:] == quiet.frames[-1:]


async def test_a_failed_publish_tells_that_channels_subscribers(
    broker: RedisBroker, monkeypatch: Any
) -> None:
    """A publish that fails (its connection lost) raises, and tells the local subscribers
    of its channel, only those, that they missed it; the next publish goes through."""
    here, elsewhere = Listener(), Listener()
    mine, other = str(uuid.uuid4()), str(uuid.uuid4())
    await broker.subscribe(mine, here.deliver, here.lost)
    await broker.subscribe(other, elsewhere.deliver, elsewhere.lost)
    fail_publishing(broker, monkeypatch)
    with pytest.raises(ConnectionError):
        await broker.publish(mine, event("lost"))
    assert (here.missed, elsewhere.missed) == (1, 0)
    await broker.publish(mine, event("next"))
    await until(lambda: here.frames == ["next"])


async def test_a_subscription_redis_refused_leaves_nothing_behind(
    broker: RedisBroker, monkeypatch: Any
) -> None:
    """Subscribing fails (Redis unreachable): the caller gets the error, nothing of it is
    kept (it is never told anything), and the next subscriber to the channel asks again."""
    pubsub = broker._pubsub
    assert pubsub is not None
    subscribe = pubsub.subscribe
    calls = 0

    async def fails_once(*channels: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("Redis is unreachable")
        return await subscribe(*channels)

    monkeypatch.setattr(pubsub, "subscribe", fails_once)
    name = str(uuid.uuid4())
    refused, accepted = Listener(), Listener()
    with pytest.raises(ConnectionError):
        await broker.subscribe(name, refused.deliver, refused.lost)
    await broker.subscribe(name, accepted.deliver, accepted.lost)
    await broker.publish(name, event("hello"))
    await until(lambda: accepted.frames == ["hello"])
    assert refused.frames == []
    assert calls == 2
