"""The Redis broker when Redis fails: a subscriber that may have missed events is told so
(realtime/redis.py, the contract in realtime/broker.py)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from redis.backoff import ExponentialBackoff

from support.bots import watch_logs
from support.environment import REDIS_URL, require_service
from support.listeners import Listener, event
from support.outages import break_reader, fail_publishing
from support.proxy import ProxyFactory
from support.waiting import until
from tertulia.errors import BrokerUnavailable
from tertulia.realtime import outages
from tertulia.realtime import redis as redis_broker
from tertulia.realtime.redis import RedisBroker


@contextlib.asynccontextmanager
async def started_broker(url: str = REDIS_URL) -> AsyncIterator[RedisBroker]:
    require_service("Redis", REDIS_URL)
    made = RedisBroker(url)
    await made.start()
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
async def broker() -> AsyncIterator[RedisBroker]:
    async with started_broker() as made:
        yield made


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
    with pytest.raises(BrokerUnavailable):
        await broker.publish(mine, event("lost"))
    assert (here.missed, elsewhere.missed) == (1, 0)
    await broker.publish(mine, event("next"))
    await until(lambda: here.frames == ["next"])


async def test_a_subscription_redis_refused_leaves_nothing_behind(
    broker: RedisBroker, monkeypatch: Any
) -> None:
    """Subscribing fails (Redis unreachable): the caller gets an outage, nothing of it is
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
    with pytest.raises(BrokerUnavailable) as raised:
        await broker.subscribe(name, refused.deliver, refused.lost)
    assert raised.value.reason == "ConnectionError: Redis is unreachable"
    await broker.subscribe(name, accepted.deliver, accepted.lost)
    await broker.publish(name, event("hello"))
    await until(lambda: accepted.frames == ["hello"])
    assert refused.frames == []
    assert calls == 2


async def test_a_subscription_on_a_connection_closed_under_it_is_an_outage(
    broker: RedisBroker, monkeypatch: Any
) -> None:
    """A command written to a connection Redis's going closed under it fails in uvloop
    with a RuntimeError ("...; the handler is closed"): an outage as any other, so the
    socket asking is closed with 1013 and a warning, not 1011 and a traceback (chaos QA:
    one in three sockets opened while Redis was down). Other RuntimeErrors stay errors."""
    pubsub = broker._pubsub
    assert pubsub is not None
    closed = (
        "unable to perform operation on <TCPTransport closed=True reading=False "
        "0x55d0c2b4a6a0>; the handler is closed"
    )

    async def fails(*_: Any) -> Any:
        raise RuntimeError(closed)

    monkeypatch.setattr(pubsub, "subscribe", fails)
    with pytest.raises(BrokerUnavailable) as raised:
        await broker.subscribe(str(uuid.uuid4()), Listener().deliver)
    assert raised.value.reason == f"RuntimeError: {closed}"

    async def bug(*_: Any) -> Any:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(pubsub, "subscribe", bug)
    with pytest.raises(RuntimeError, match=r"could not subscribe|a bug of ours"):
        await broker.subscribe(str(uuid.uuid4()), Listener().deliver)


async def test_an_outage_is_logged_once_then_rarely_and_its_end_too(
    proxy_to: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis out of reach (connections cut, new ones refused): the reader logs the outage
    once, with its error and no traceback, retries with a growing backoff (not every
    0.5 s), reminds at a low rate while it lasts, and logs when Redis is back."""
    require_service("Redis", REDIS_URL)
    monkeypatch.setattr(redis_broker, "READ_BACKOFF", ExponentialBackoff(cap=0.8, base=0.05))
    monkeypatch.setattr(outages, "REMINDER_EVERY", 1.0)
    where = urlsplit(REDIS_URL)
    proxy = await proxy_to(where.port or 6379)
    url = where._replace(netloc=f"127.0.0.1:{proxy.listen_port}").geturl()
    async with started_broker(url) as broker:
        listener = Listener()
        await broker.subscribe(str(uuid.uuid4()), listener.deliver, listener.lost)
        with watch_logs() as logs:
            proxy.refusing = True
            proxy.drop()
            reminder = await logs.wait_for(lambda e: e["event"].endswith("(still)"))
            assert len(proxy.refused) >= 4
            proxy.refusing = False
            back = await logs.wait_for(lambda e: e["event"] == "redis broker is back")
    said = [e["event"] for e in logs.entries if e["event"].startswith("redis broker")]
    assert said == [
        "redis broker read failed; retrying",
        "redis broker read failed; retrying (still)",
        "redis broker is back",
    ]
    assert not [e for e in logs.entries if "exc_info" in e]
    assert "Error" in logs.entries[0]["error"]
    assert reminder["attempts"] >= 4
    assert back["attempts"] >= reminder["attempts"]
    assert listener.missed >= 1
    gaps = [later - earlier for earlier, later in itertools.pairwise(proxy.refused)]
    assert gaps[-1] > 4 * gaps[0], gaps


async def test_a_redis_that_holds_its_answers_is_an_outage_within_the_command_timeout(
    proxy_to: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis holds its connections without answering (a partition, a frozen host): a
    publish, a presence change, a presence read and a subscription fail as an outage
    within COMMAND_TIMEOUT each, not when TCP gives up (chaos QA: a message posted in
    14.5 s while Redis answered slowly; a socket silent 10 s, its subscription waiting);
    all work again once the bytes flow."""
    require_service("Redis", REDIS_URL)
    monkeypatch.setattr(redis_broker, "COMMAND_TIMEOUT", 0.5)
    where = urlsplit(REDIS_URL)
    proxy = await proxy_to(where.port or 6379)
    url = where._replace(netloc=f"127.0.0.1:{proxy.listen_port}").geturl()
    async with started_broker(url) as broker:
        channel = str(uuid.uuid4())
        listener = Listener()
        await broker.subscribe(channel, listener.deliver, listener.lost)
        proxy.hold()
        for call in (
            lambda: broker.publish(channel, event("held")),
            lambda: broker.join(channel, "p1", "s1"),
            lambda: broker.present(channel),
            # (a socket opening: closed with 1013 well before its client gives up on it)
            lambda: broker.subscribe(str(uuid.uuid4()), Listener().deliver),
        ):
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable):
                await call()
            assert time.monotonic() - started < 4 * redis_broker.COMMAND_TIMEOUT
        proxy.release()

        async def heard() -> bool:
            with contextlib.suppress(BrokerUnavailable):
                await broker.publish(channel, event("after"))
            await asyncio.sleep(0.05)
            return "after" in listener.frames

        await until(heard)


@pytest.fixture
async def elsewhere() -> AsyncIterator[RedisBroker]:
    """The broker of another server process sharing the Redis server."""
    async with started_broker() as made:
        yield made


class HeldNotices:
    """``broker``'s publishes to its conversation channels fail (its connection lost),
    while its notices to the other processes wait for ``release`` and then fail ``refusals``
    times more (Redis still unreachable) before going through."""

    def __init__(self, broker: RedisBroker, monkeypatch: Any, *, refusals: int = 0) -> None:
        client = broker._client()
        self._publish = client.publish
        self._control = broker.control
        self.release = asyncio.Event()
        self.refusals = refusals
        self.notices = 0
        monkeypatch.setattr(client, "publish", self._failing)

    async def _failing(self, channel: str, payload: Any) -> Any:
        if channel != self._control:
            raise ConnectionError("Redis is unreachable")
        await self.release.wait()
        if self.refusals:
            self.refusals -= 1
            raise ConnectionError("Redis is still unreachable")
        self.notices += 1
        return await self._publish(channel, payload)


async def test_a_failed_publish_is_told_to_the_other_processes(
    broker: RedisBroker, elsewhere: RedisBroker, monkeypatch: Any
) -> None:
    """Only the publishing process knows its publish failed; the others' connections are
    fine. Once Redis takes a publish from it again (here after two more refusals), it
    tells them, and their subscribers of that channel that started before the failure are
    told they missed it; later subscribers (they read the database after subscribing) and
    other channels' are not, nor are the publishing process's own subscribers told twice."""
    monkeypatch.setattr(redis_broker, "CLOCK_SKEW", 0.0)
    failed, other = str(uuid.uuid4()), str(uuid.uuid4())
    early, untouched, local = Listener(), Listener(), Listener()
    await elsewhere.subscribe(failed, early.deliver, early.lost)
    await elsewhere.subscribe(other, untouched.deliver, untouched.lost)
    await broker.subscribe(failed, local.deliver, local.lost)
    held = HeldNotices(broker, monkeypatch, refusals=2)
    with pytest.raises(BrokerUnavailable):
        await broker.publish(failed, event("lost"))
    assert (local.missed, early.missed) == (1, 0)

    late = Listener()
    await until(lambda: time.time() > broker._unsent[failed])  # (a coarse clock)
    await elsewhere.subscribe(failed, late.deliver, late.lost)
    held.release.set()
    await until(lambda: early.missed == 1)
    assert (late.missed, untouched.missed, held.notices, held.refusals) == (0, 0, 1, 0)
    await until(lambda: not broker._unsent)

    # The notice went through Redis before this frame, so every reader has acted on it.
    await elsewhere.publish(failed, event("next"))
    await until(lambda: local.frames == ["next"] and late.frames == ["next"])
    assert (local.missed, early.missed, late.missed) == (1, 1, 0)


async def test_the_notice_goes_out_as_soon_as_a_publish_goes_through(
    broker: RedisBroker, elsewhere: RedisBroker, monkeypatch: Any
) -> None:
    """The notice's retries back off (here ten minutes), but a publish that goes through
    meanwhile shows Redis is back: the notice goes out then, not at the end of the wait."""
    monkeypatch.setattr(redis_broker, "NOTICE_WAIT_FIRST", 600.0)
    monkeypatch.setattr(redis_broker, "NOTICE_WAIT_MAX", 600.0)
    failed, fine = str(uuid.uuid4()), str(uuid.uuid4())
    early = Listener()
    await elsewhere.subscribe(failed, early.deliver, early.lost)
    held = HeldNotices(broker, monkeypatch, refusals=1)
    with pytest.raises(BrokerUnavailable):
        await broker.publish(failed, event("lost"))
    held.release.set()
    await until(lambda: held.refusals == 0)  # the first try refused: a long wait begins
    monkeypatch.undo()  # Redis takes publishes again
    await broker.publish(fine, event("through"))
    await until(lambda: early.missed == 1)
    await until(lambda: not broker._unsent)


async def test_a_closed_broker_starts_no_notice(monkeypatch: Any) -> None:
    """A publish that fails after the broker was closed (a use case finishing during the
    shutdown) leaves no task behind to retry for ever."""
    require_service("Redis", REDIS_URL)
    closing = RedisBroker(REDIS_URL)
    await closing.start()
    await closing.close()
    fail_publishing(closing, monkeypatch)
    with pytest.raises(BrokerUnavailable):
        await closing.publish(str(uuid.uuid4()), event("too late"))
    assert closing._notifier is None


async def test_a_malformed_control_message_is_ignored(broker: RedisBroker) -> None:
    """Whatever else reaches the control channel changes nothing; the reader goes on."""
    name = str(uuid.uuid4())
    listener = Listener()
    await broker.subscribe(name, listener.deliver, listener.lost)
    for junk in (b"not json", b"[]", b'{"from": "x"}', b'{"from": "x", "missed": {"a": "b"}}'):
        await broker._client().publish(broker.control, junk)
    await broker.publish(name, event("still here"))
    await until(lambda: listener.frames == ["still here"])
    assert listener.missed == 0


async def test_a_subscriber_cancelled_after_asking_does_not_fail_the_others(
    broker: RedisBroker, monkeypatch: Any
) -> None:
    """The channel's first subscriber asks Redis and is cancelled (its client left) while
    Redis's confirmation is on its way; a second subscriber waiting for the same
    confirmation still gets its subscription, and hears the channel."""
    pubsub = broker._pubsub
    assert pubsub is not None
    get_message = pubsub.get_message
    reading, confirmation_held, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def holding_confirmations(*args: Any, **kwargs: Any) -> Any:
        reading.set()
        message = await get_message(*args, **kwargs)
        if message is not None and message["type"] == "subscribe":
            confirmation_held.set()
            await release.wait()
        return message

    monkeypatch.setattr(pubsub, "get_message", holding_confirmations)
    await asyncio.wait_for(reading.wait(), 10)  # (the reader's wait begun before is over)
    name = str(uuid.uuid4())
    leaving, staying = Listener(), Listener()
    first = asyncio.create_task(broker.subscribe(name, leaving.deliver, leaving.lost))
    await asyncio.wait_for(confirmation_held.wait(), 10)  # asked, and Redis answered
    second = asyncio.create_task(broker.subscribe(name, staying.deliver, staying.lost))
    for _ in range(5):  # (the second reaches its wait: no I/O on its way there)
        await asyncio.sleep(0)
    assert not second.done()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    release.set()
    await asyncio.wait_for(second, 10)
    await broker.publish(name, event("hello"))
    await until(lambda: staying.frames == ["hello"])
    assert leaving.frames == []
