"""The database handle: transactions, and the choice of backend by URL.

``Database.write()`` is one read-write transaction, committed when its block ends without
error and rolled back otherwise; ``Database.read()`` is a connection for reads. Both yield
a :class:`Connection` whose ``execute`` takes SQLAlchemy Core statements (see
:mod:`tertulia.storage.sql` for why they run on the raw driver).

Backends (``open_database`` picks one by URL):

- SQLite (``sqlite+aiosqlite:///path`` or ``sqlite:///path``, the default):
  :mod:`tertulia.storage.sqlite`. One writer at a time, statements run on the event loop.
- PostgreSQL (``postgresql+asyncpg://...``): :mod:`tertulia.storage.postgres`, an asyncpg
  pool.

Errors are translated here, at the boundary: a broken uniqueness or foreign-key constraint
becomes :class:`tertulia.errors.Conflict`; anything else is a driver error and a bug or an
outage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import orjson
from sqlalchemy import text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.sql import Executable
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random

from tertulia.errors import TurnLost
from tertulia.storage.sql import Result

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
_SELECT_ONE = text("SELECT 1")


def display_url(url: str) -> str:
    """A service's URL (a database's, Redis's) with its password shown as ``***``."""
    return make_url(url).render_as_string(hide_password=True)


def display_place(url: str, schema: str | None = None) -> str:
    """A database as messages name it: its URL without the password, and its schema when
    one is set (two installations may share one PostgreSQL database)."""
    return display_url(url) + (f" (schema {schema})" if schema else "")


def check_url(url: str, schema: str | None = None, *, schema_name: str = "a schema") -> None:
    """That ``url`` names a database Tertulia can use, and ``schema`` one of its schemas
    (``schema_name``: what the error calls it, the setting or option that gave it).

    Raises:
        ConfigurationError: a URL SQLAlchemy cannot parse, another database than SQLite
            or PostgreSQL, or a schema for SQLite (which has none).
    """
    from tertulia.errors import ConfigurationError

    try:
        backend = make_url(url).get_backend_name()
    except (ArgumentError, ValueError):
        raise ConfigurationError(
            "not a database URL (sqlite+aiosqlite:///path/to.db or "
            "postgresql+asyncpg://user:password@host:5432/name)"
        ) from None
    if backend not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"unsupported database {backend!r}: SQLite (sqlite+aiosqlite:///path/to.db) "
            "or PostgreSQL (postgresql+asyncpg://...)"
        )
    if schema is not None and backend == "sqlite":
        raise ConfigurationError(
            f"{schema_name} is for PostgreSQL: a SQLite database has none "
            "(leave it unset, or use a file of its own)"
        )


TURN_ATTEMPTS = 3
"""Tries of a transaction that PostgreSQL ends to let another one through (:class:`TurnLost`)."""


def again_if_turn_lost() -> AsyncRetrying:
    """``async for attempt in again_if_turn_lost(): with attempt: ...``: a transaction that
    PostgreSQL ended to let another one through (:class:`TurnLost`: a deadlock, nothing
    stored) runs again, after up to 0.2 s, up to :data:`TURN_ATTEMPTS` times in all; the
    last failure is raised. For writes nobody waits on to send again (a deletion, a leave)."""
    return AsyncRetrying(
        retry=retry_if_exception_type(TurnLost),
        stop=stop_after_attempt(TURN_ATTEMPTS),
        wait=wait_random(0, 0.2),
        reraise=True,
    )


def json_dumps(value: Any) -> str:
    """JSON columns' serializer (compact, UTF-8)."""
    return orjson.dumps(value).decode()


class Connection(Protocol):
    """A connection (inside a transaction, for writes) that runs Core statements.

    Attributes:
        dialect: the SQLAlchemy dialect its statements are compiled for.
        last_seqs: on the connection of a database this process alone writes (SQLite), the
            last ``seq`` taken per conversation, counted here instead of in a row (see
            :func:`tertulia.storage.messages.insert_message`); the database empties it
            whenever a transaction or a savepoint is rolled back. ``None`` elsewhere.
    """

    dialect: Dialect
    last_seqs: dict[str, int] | None

    async def execute(self, statement: Executable, params: Params = None) -> Result:
        """Run ``statement`` with ``params`` (a mapping, or a list of them: one run each).

        Raises:
            Conflict: a uniqueness or foreign-key constraint refused the change.
        """


class Database(ABC):
    """A database: transactions for writes, connections for reads.

    Attributes:
        url: the SQLAlchemy-style URL it was opened with.
        schema: the PostgreSQL schema (``search_path``), if any.
    """

    url: str
    schema: str | None

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def display_url(self) -> str:
        """The URL without its password, for logs."""
        return display_url(self.url)

    @property
    def place(self) -> str:
        """:func:`display_place`: the URL without its password, and the schema if set."""
        return display_place(self.url, self.schema)

    async def ping(self) -> None:
        """One ``SELECT 1`` on a reading connection: returns when the database answers."""
        async with self.read() as conn:
            await conn.execute(_SELECT_ONE)

    @abstractmethod
    def write(self) -> AbstractAsyncContextManager[Connection]:
        """One read-write transaction, committed when the block ends without error."""

    @abstractmethod
    def read(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for reads (each statement sees what was committed before it)."""

    @abstractmethod
    def snapshot(self) -> AbstractAsyncContextManager[Connection]:
        """A read-only transaction on a connection of its own: every statement in the block
        sees the database as it was at its first (for long reads, such as an export, that
        must be consistent; it holds a connection, and on SQLite the log, meanwhile)."""

    @abstractmethod
    async def close(self) -> None:
        """Close every connection (and stop the backend's helpers)."""


async def open_database(url: str, *, schema: str | None = None, existing: bool = False) -> Database:
    """Open the database at ``url``: SQLite or PostgreSQL (asyncpg).

    Args:
        existing: refuse a SQLite file that does not exist yet (rather than create it).

    Raises:
        ConfigurationError: an unsupported URL, or (``existing``) no SQLite file.
    """
    if url.startswith("sqlite"):
        from tertulia.storage.sqlite import SQLiteDatabase

        return SQLiteDatabase(url, existing=existing)
    if url.startswith("postgresql"):
        from tertulia.storage.postgres import PostgresDatabase

        return await PostgresDatabase.open(url, schema=schema)
    from tertulia.errors import ConfigurationError

    raise ConfigurationError(f"unsupported database URL {make_url(url).drivername!r}")
