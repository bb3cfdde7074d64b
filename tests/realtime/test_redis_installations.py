"""Installations sharing one Redis hear only their own channels (realtime/redis.py).

Redis's pub/sub ignores database numbers: with one channel name for every installation, a
message written on a staging copy (``/1``, its conversations' ids kept by ``tertulia copy``)
reached a production socket (``/0``), and each one's control messages reached the other's
processes (QA). Channels are now named by the URL's database number, and by
``broker_prefix`` for installations sharing a database number.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from support.bots import watch_logs
from support.environment import REDIS_URL, require_service
from support.listeners import Listener, event
from support.waiting import until
from tertulia.realtime.redis import RedisBroker
from tertulia.settings import Settings


def on_database(number: int) -> str:
    """The test Redis's URL with another database number."""
    return urlsplit(REDIS_URL)._replace(path=f"/{number}").geturl()


OWN = REDIS_URL
_DATABASE = int(urlsplit(REDIS_URL).path.strip("/") or 0)
OTHER = on_database(14 if _DATABASE != 14 else 13)  # (QA's installations use 9 and 10)


@contextlib.asynccontextmanager
async def installation(url: str, prefix: str | None = None) -> AsyncIterator[RedisBroker]:
    """One process's broker of the installation at ``url`` (and ``prefix``)."""
    require_service("Redis", REDIS_URL)
    broker = RedisBroker(url, prefix=prefix)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


async def test_installations_on_two_database_numbers_do_not_hear_each_other() -> None:
    """One conversation id on two databases: a publish on one reaches the processes of
    that database only; the other's socket hears only its own installation's events."""
    conversation = str(uuid.uuid4())
    async with (
        installation(OWN) as production,
        installation(OWN) as production_too,
        installation(OTHER) as staging,
    ):
        here, there = Listener(), Listener()
        await production_too.subscribe(conversation, here.deliver, here.lost)
        await staging.subscribe(conversation, there.deliver, there.lost)
        await production.publish(conversation, event("production"))
        # (Redis hands out publishes in order: had the first reached staging, it would
        # come before this one.)
        await staging.publish(conversation, event("staging"))
        await until(lambda: here.frames == ["production"] and there.frames == ["staging"])
        assert (here.missed, there.missed) == (0, 0)


async def test_control_messages_stay_in_their_installation() -> None:
    """Another installation's control messages (notices of failed publishes) never reach
    this one's processes: no 'malformed control message' from them."""
    async with installation(OWN) as ours, installation(OTHER) as theirs:
        assert ours.control != theirs.control
        with watch_logs() as logs:
            await theirs._client().publish(theirs.control, b"not from here")
            await ours._client().publish(ours.control, b"from here")
            # (Each ignores its own; had ours heard theirs, it would have come first.)
            await logs.wait_for(lambda e: e.get("data") == b"from here")
            await logs.wait_for(lambda e: e.get("data") == b"not from here")
        ignored = [e["data"] for e in logs.entries if "malformed control" in e["event"]]
        assert sorted(ignored) == [b"from here", b"not from here"]


async def test_a_prefix_keeps_installations_on_one_database_apart() -> None:
    """Two installations on one database number, one with ``broker_prefix``: their events
    and their presence are apart; processes of the same prefix share both."""
    conversation = str(uuid.uuid4())
    async with (
        installation(OWN) as plain,
        installation(OWN, prefix="staging") as staging,
        installation(OWN, prefix="staging") as staging_too,
    ):
        heard, kept_out = Listener(), Listener()
        await staging_too.subscribe(conversation, heard.deliver, heard.lost)
        await plain.subscribe(conversation, kept_out.deliver, kept_out.lost)
        await staging.publish(conversation, event("staging"))
        await plain.publish(conversation, event("plain"))
        await until(lambda: heard.frames == ["staging"] and kept_out.frames == ["plain"])

        assert await staging.join(conversation, "ana", "s1") is True
        assert await staging_too.present(conversation) == {"ana"}
        assert await plain.present(conversation) == set()
        assert await plain.join(conversation, "ana", "s2") is True  # (her first here)
        await staging.leave(conversation, "ana", "s1")
        await plain.leave(conversation, "ana", "s2")


@pytest.mark.parametrize("prefix", ["", "a:b", "x" * 33, "tertulia conv"])
def test_a_prefix_is_a_short_plain_name(prefix: str) -> None:
    """``broker_prefix`` is letters, digits, _ or -, at most 32: no ':' to blur names."""
    with pytest.raises(ValueError, match="invalid broker prefix"):
        Settings(broker_prefix=prefix)
