"""Presence on Redis outlives no process: the sockets of one that died without closing them
(SIGKILL, a lost machine) lapse, and their people show offline again.

Before, presence was plain sets kept a day: a person whose socket was on a killed process
showed online to everyone for a day, and, gone from the process that noticed nothing, was
never recorded as having left (their next socket, elsewhere, was not their first).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from support.environment import REDIS_URL, require_service
from support.waiting import until
from tertulia.realtime import redis as redis_broker
from tertulia.realtime.redis import RedisBroker


@asynccontextmanager
async def process(lease: float = redis_broker.PRESENCE_LEASE) -> AsyncIterator[RedisBroker]:
    """A server process's broker; leaving the block ends it without its sockets leaving."""
    broker = RedisBroker(REDIS_URL, presence_lease=lease)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


def counted(
    sweep: Callable[[], Awaitable[None]], counts: dict[str, int], label: str
) -> Callable[[], Awaitable[None]]:
    async def counting() -> None:
        await sweep()
        counts[label] += 1

    return counting


async def test_the_sockets_of_a_process_that_died_lapse() -> None:
    require_service("Redis", REDIS_URL)
    name = str(uuid.uuid4())
    async with process(0.6) as alive:
        async with process(0.6) as doomed:
            assert await doomed.join(name, "ana", "s1") is True
            assert await alive.join(name, "bob", "s2") is True
            assert await alive.present(name) == {"ana", "bob"}
        # doomed ended without a word for its socket. Past its lease ana is offline, while
        # bob's socket, renewed by its living process all along, still counts.

        async def only_bob() -> bool:
            return await alive.present(name) == {"bob"}

        await until(only_bob, timeout=10)
        # ana comes back on the living process: her first socket again (she may be told
        # as arriving, and her leaving is noticed here).
        assert await alive.join(name, "ana", "s3") is True
        assert await alive.leave(name, "ana", "s3") is True
        assert await alive.present(name) == {"bob"}
        assert await alive.leave(name, "bob", "s2") is True
        assert await alive.present(name) == set()


async def test_a_socket_that_left_is_not_brought_back_by_a_renewal() -> None:
    """A renewal racing a leave (the socket list read just before) renews only what is
    still there."""
    require_service("Redis", REDIS_URL)
    name = str(uuid.uuid4())
    async with process() as broker:
        assert await broker.join(name, "ana", "s1") is True
        sockets = dict(broker._sockets)
        assert await broker.leave(name, "ana", "s1") is True
        keys: list[str] = []
        args: list[object] = [redis_broker.PRESENCE_LEASE]
        for socket_id, (channel, who) in sockets.items():
            keys += broker._keys(channel, who)
            args += [socket_id, who]
        await broker._client().eval(redis_broker._RENEW, len(keys), *keys, *args)
        assert await broker.present(name) == set()
        assert await broker.join(name, "ana", "s2") is True


async def test_a_living_process_tells_who_lapsed_in_its_conversations_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The people whose process died are announced as having left (Broker.lapsed), by one
    of the processes with subscribers in their conversation, once."""
    require_service("Redis", REDIS_URL)
    name = str(uuid.uuid4())
    told: list[tuple[str, str]] = []
    sweeps = {"first": 0, "second": 0}
    async with process(0.6) as first, process(0.6) as second:
        for label, broker in (("first", first), ("second", second)):
            broker.lapsed = lambda channel, who: told.append((channel, who))
            await broker.subscribe(name, lambda event: None)
            monkeypatch.setattr(broker, "_sweep", counted(broker._sweep, sweeps, label))
        assert await second.join(name, "bob", "s2") is True
        async with process(0.6) as doomed:
            assert await doomed.join(name, "ana", "s1") is True

        await until(lambda: len(told) > 0, timeout=10)
        # Three more sweeps by each: nobody is told twice, and bob, renewed, never lapses.
        after = dict(sweeps)
        await until(lambda: all(sweeps[k] >= after[k] + 3 for k in sweeps), timeout=10)
        assert told == [(name, "ana")]
        assert await first.present(name) == {"bob"}


async def test_presence_redis_lost_is_counted_again_by_the_next_renewal() -> None:
    """Redis restarted empty (or flushed): each process counts its sockets again."""
    require_service("Redis", REDIS_URL)
    name = str(uuid.uuid4())
    async with process(0.4) as broker:
        assert await broker.join(name, "ana", "s1") is True
        await broker._client().delete(*broker._keys(name, "ana"))
        assert await broker.present(name) == set()

        async def ana_back() -> bool:
            return await broker.present(name) == {"ana"}

        await until(ana_back, timeout=10)
        assert await broker.leave(name, "ana", "s1") is True
        assert await broker.present(name) == set()


async def test_close_ends_even_when_redis_py_swallows_the_cancellation() -> None:
    """(Seen twice in full runs: a test hung 60 s in a broker's close.) redis-py's read with
    a timeout can take the cancellation close() sends for its own timeout and return; the
    reader went on reading for ever, and close() waited for it. It now ends as the broker
    closes, whatever becomes of the cancellation."""
    require_service("Redis", REDIS_URL)
    broker = RedisBroker(REDIS_URL)
    await broker.start()
    assert broker._pubsub is not None

    async def swallowing(timeout: float = 0.0) -> None:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            return None  # (as redis-py may: the cancellation lost)
        return None

    broker._pubsub.get_message = swallowing  # type: ignore[method-assign]
    await asyncio.sleep(0.05)  # (the reader now in the swallowing read)
    await asyncio.wait_for(broker.close(), 5)


async def test_a_burst_past_the_pool_waits_for_a_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More presence changes at once than the pool has connections (here 3, by default
    50): each waits for a connection and none fails. With redis-py's plain pool, the one
    past its size (100 by default) failed at once (MaxConnectionsError), taken for Redis
    down: soak QA cut 600 sockets at once, and 50 of 60 people stayed online for minutes."""
    require_service("Redis", REDIS_URL)
    monkeypatch.setattr(redis_broker, "REDIS_CONNECTIONS", 3, raising=False)
    channel = f"burst-{uuid.uuid4().hex}"
    async with process() as broker:
        people = [f"p{n}" for n in range(150)]  # (past redis-py's 100 too)
        await asyncio.gather(*(broker.join(channel, p, f"s-{p}") for p in people))
        assert await broker.present(channel) == set(people)
        await asyncio.gather(*(broker.leave(channel, p, f"s-{p}") for p in people))
        assert await broker.present(channel) == set()
