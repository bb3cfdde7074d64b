"""Presence on Redis outlives no process: the sockets of one that died without closing them
(SIGKILL, a lost machine) lapse, and their people show offline again.

Before, presence was plain sets kept a day: a person whose socket was on a killed process
showed online to everyone for a day, and, gone from the process that noticed nothing, was
never recorded as having left (their next socket, elsewhere, was not their first).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from support.environment import REDIS_URL, require_service
from support.waiting import until
from tertulia.realtime import redis as redis_broker
from tertulia.realtime.redis import RedisBroker


@asynccontextmanager
async def process() -> AsyncIterator[RedisBroker]:
    """A server process's broker; leaving the block ends it without its sockets leaving."""
    broker = RedisBroker(REDIS_URL)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


async def test_the_sockets_of_a_process_that_died_lapse(monkeypatch: pytest.MonkeyPatch) -> None:
    require_service("Redis", REDIS_URL)
    monkeypatch.setattr(redis_broker, "PRESENCE_LEASE", 0.6)
    monkeypatch.setattr(redis_broker, "PRESENCE_RENEW", 0.1)
    name = str(uuid.uuid4())
    async with process() as alive:
        async with process() as doomed:
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


async def test_a_socket_that_left_is_not_brought_back_by_a_renewal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
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
