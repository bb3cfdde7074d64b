"""Before a command starts: can the database (and the broker) be reached?

Without this, a database that is down surfaced as a traceback from inside the server's
start-up, and a host that drops packets kept ``tertulia serve`` waiting for asyncpg's 60 s
connect timeout. Here each is tried once, within :data:`CONNECT_TIMEOUT`, and a failure
becomes one line naming the service, its address (without a password) and the reason.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.engine import make_url

from tertulia.errors import TertuliaError
from tertulia.settings import Settings
from tertulia.storage.database import open_database

CONNECT_TIMEOUT = 10.0  # seconds to wait for each service to answer


class Unreachable(TertuliaError):
    """A service the configuration names does not answer."""

    code = "unreachable"


async def check_services(settings: Settings, *, broker: bool = True) -> None:
    """Reach the database (open it, one ``SELECT 1``) and, when ``broker`` and it is
    Redis, ping the broker.

    Raises:
        Unreachable: with a one-line detail, for the first that fails.
        ConfigurationError: the database URL is not one Tertulia supports.
    """
    await _check_database(settings.database_url, settings.database_schema)
    if broker and settings.broker_url.startswith(("redis://", "rediss://")):
        await _check_redis(settings.broker_url)


async def _check_database(url: str, schema: str | None) -> None:
    where = make_url(url).render_as_string(hide_password=True)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            db = await open_database(url, schema=schema)
            try:
                async with db.read() as conn:
                    await conn.execute(text("SELECT 1"))
            finally:
                await db.close()
    except TertuliaError:
        raise
    except Exception as exc:
        raise Unreachable(f"cannot reach the database at {where}: {_reason(exc)}") from exc


async def _check_redis(url: str) -> None:
    import redis.asyncio as redis

    where = make_url(url).render_as_string(hide_password=True)
    client = redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT
    )
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await client.ping()
    except Exception as exc:
        raise Unreachable(f"cannot reach the broker at {where}: {_reason(exc)}") from exc
    finally:
        await client.aclose()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:g} s"
    # SQLAlchemy wraps the driver's error and adds a link; the driver's text is the point
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__
