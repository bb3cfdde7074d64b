"""Before a command starts: is its port free, can the database (and the broker) be reached?

The bots' own configuration is checked here too, for the server: a webhook bot whose secret
variable is unset used to start without complaint and fail every delivery. So is the media
root: one that could not be written let the server start and report itself healthy, then
answer every upload with a 500.

Without this, a database that is down surfaced as a traceback from inside the server's
start-up, and a host that drops packets kept ``tertulia serve`` waiting for asyncpg's 60 s
connect timeout. Here each is tried once, within :data:`CONNECT_TIMEOUT`, and a failure
becomes one line naming the service, its address (without a password) and the reason.

The port is taken first (:func:`listen`): uvicorn binds only once the application has
started, so a second ``serve`` on a taken port used to migrate the database and resume
bot deliveries, perhaps beside the server holding that port, before it gave up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Literal

from tertulia.bots.checks import check_bots
from tertulia.errors import ConfigurationError, TertuliaError
from tertulia.realtime.broker import REDIS_SCHEMES
from tertulia.settings import Settings
from tertulia.storage.database import display_url, open_database

CONNECT_TIMEOUT = 10.0  # seconds to wait for each service to answer
RevisionCheck = Literal["migrate", "current"]


class Unreachable(TertuliaError):
    """A service the configuration names does not answer."""

    code = "unreachable"


class CannotListen(TertuliaError):
    """The server's address is taken, not this machine's, or not allowed."""

    code = "cannot_listen"


def listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound to ``host:port`` (not yet listening), as uvicorn would
    bind it (IPv6 for a host with a colon; ``SO_REUSEADDR``).

    Raises:
        CannotListen: with a one-line detail (``cannot listen on 127.0.0.1:8000: address
            already in use``).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        reason = exc.strerror or str(exc)
        raise CannotListen(f"cannot listen on {where}: {reason[:1].lower()}{reason[1:]}") from exc
    sock.set_inheritable(True)
    return sock


async def check_services(settings: Settings, *, broker: bool = True) -> None:
    """Reach the database (open it, one ``SELECT 1``) and, when ``broker`` (the server's
    start), ask the bots' classes whether their configuration can work
    (:mod:`tertulia.bots.checks`: a webhook's secret variable unset, say) and, when it is
    Redis, ping the broker.

    Raises:
        Unreachable: with a one-line detail, for the first that fails.
        ConfigurationError: the database URL is not one Tertulia supports, a bot's
            configuration cannot work, or the media root cannot be written (checked first:
            nothing is opened then).
    """
    if broker:
        check_bots(settings.bots)
        if any(settings.chat_limits.values()):  # (every upload limit 0: no file is kept)
            check_media_root(settings.media_root)
    await check_database(
        settings.database_url,
        settings.database_schema,
        schema_revision="migrate" if not broker or settings.auto_migrate else "current",
    )
    if broker and settings.broker_url.startswith(REDIS_SCHEMES):
        await _check_redis(settings.broker_url)


async def check_existing(settings: Settings, *, broker: bool = False) -> None:
    """Before a command on an existing database (``export``, ``delete``, the source of a
    ``copy``): reach it as :func:`check_services` does, refusing, as the command would, a
    SQLite file that is not there (none is made) and a database not at this code's schema
    revision; with ``broker`` (``delete``, which announces each deletion on it), ping a
    Redis broker.

    Raises:
        Unreachable: with a one-line detail, for the first that fails.
        ConfigurationError: an unsupported URL, or no SQLite file there.
        SchemaNotCurrent: as said.
    """
    await check_database(
        settings.database_url, settings.database_schema, schema_revision="current", existing=True
    )
    if broker and settings.broker_url.startswith(REDIS_SCHEMES):
        await _check_redis(settings.broker_url)


def hold_database(settings: Settings) -> AbstractContextManager[None]:
    """For the server's life: with SQLite, the lock that keeps a second server off the file
    (:func:`tertulia.storage.sqlite.single_server`); nothing to hold with PostgreSQL.

    Raises:
        ConfigurationError: (entering it) another server holds the SQLite file.
    """
    if not settings.is_sqlite:
        return contextlib.nullcontext()
    from tertulia.storage.sqlite import single_server

    return single_server(settings.database_url)


def check_media_root(root: Path) -> None:
    """Make the media root's directories (``tmp`` for uploads in progress, ``chat`` for
    the files kept) if they are not there, and write and delete a file in each, as an
    upload would.

    Raises:
        ConfigurationError: naming the root and the reason (``media_root /srv/media
            cannot be written: [Errno 13] Permission denied: '/srv/media/tmp'``).
    """
    for directory in (Path(root) / "tmp", Path(root) / "chat"):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            handle, probe = tempfile.mkstemp(dir=directory, prefix="probe_")
            os.close(handle)
            os.unlink(probe)
        except OSError as exc:
            raise ConfigurationError(
                f"media_root {Path(root).resolve()} cannot be written: {exc}"
            ) from exc


async def check_database(
    url: str,
    schema: str | None,
    *,
    schema_revision: RevisionCheck | None = None,
    existing: bool = False,
) -> None:
    """Open the database at ``url`` and run ``SELECT 1``, within :data:`CONNECT_TIMEOUT`;
    with ``schema_revision="migrate"``, refuse one a newer version migrated (this one cannot
    migrate it); with ``"current"`` (a server that does not migrate, a command that reads
    or edits the database), one not at this code's revision.

    Args:
        existing: refuse a SQLite file that does not exist (rather than create it).

    Raises:
        Unreachable: with a one-line detail.
        ConfigurationError: an unsupported URL, or (``existing``) no SQLite file.
        SchemaNotCurrent: as said.
    """
    from tertulia.storage.migrate import refuse_newer, require_current

    where = display_url(url)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            db = await open_database(url, schema=schema, existing=existing)
            try:
                await db.ping()
                if schema_revision == "migrate":
                    await refuse_newer(db)
                elif schema_revision == "current":
                    await require_current(db)
            finally:
                await db.close()
    except TertuliaError:
        raise
    except Exception as exc:
        raise Unreachable(f"cannot reach the database at {where}: {_reason(exc)}") from exc


async def _check_redis(url: str) -> None:
    import redis.asyncio as redis

    where = display_url(url)
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
