"""Redis failing under a running broker, for the tests of what nobody may miss then."""

from __future__ import annotations

from typing import Any

from tertulia.realtime.redis import RedisBroker


async def break_reader(broker: RedisBroker) -> None:
    """Cut the broker's pub/sub connection on Redis's side (as a Redis restart would), and
    only that one: other tests share the Redis server."""
    pubsub = broker._pubsub
    assert pubsub is not None
    assert pubsub.connection is not None
    host, port = pubsub.connection._writer.get_extra_info("sockname")[:2]
    killed = await broker._client().execute_command("CLIENT", "KILL", "ADDR", f"{host}:{port}")
    assert killed in (True, b"OK", "OK", 1), killed


def fail_publishing(broker: RedisBroker, monkeypatch: Any, *, times: int = 1) -> list[str]:
    """The next ``times`` publishes fail as on a lost connection; returns the channels they
    were for, as they happen."""
    client = broker._client()
    publish = client.publish
    failed: list[str] = []

    async def failing(channel: str, payload: Any) -> Any:
        if len(failed) < times:
            failed.append(channel)
            raise ConnectionError("Redis is unreachable")
        return await publish(channel, payload)

    monkeypatch.setattr(client, "publish", failing)
    return failed
