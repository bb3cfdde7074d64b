"""The database handle: an async engine, SQLite tuned for a server, one writer at a time.

SQLite allows a single writer. Letting several asyncio tasks race for it gives
``database is locked`` errors (a deferred transaction that has read cannot always upgrade
to a write), so on SQLite :meth:`Database.write` takes a process-wide lock: writes queue in
the event loop instead of spinning in the driver. PostgreSQL needs no such lock.

Durability: SQLite runs in WAL mode with ``synchronous=NORMAL``, so a committed transaction
survives the server being killed (it is only at risk if the operating system itself
crashes); PostgreSQL keeps its own defaults.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, decide when transactions begin (see _sqlite_on_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA busy_timeout=10000",
    ):
        cursor.execute(pragma)
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def make_engine(url: str, *, schema: str | None = None, echo: bool = False) -> AsyncEngine:
    """Build the engine for ``url`` (``sqlite+aiosqlite://`` or ``postgresql+asyncpg://``)."""
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("postgresql"):
        connect_args: dict[str, Any] = {}
        if schema:
            connect_args["server_settings"] = {"search_path": schema}
        kwargs.update(pool_size=10, max_overflow=20, connect_args=connect_args)
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


class Database:
    """The engine plus the transaction discipline of the whole server.

    Args:
        url: SQLAlchemy URL.
        schema: PostgreSQL schema (its ``search_path``), for isolated test or tenant schemas.
    """

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        self.is_sqlite = url.startswith("sqlite")
        self.engine = make_engine(url, schema=schema)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One read-write transaction, committed when the block ends without error."""
        async with self._write_lock or nullcontext(), self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (its implicit transaction is rolled back at the end)."""
        async with self.engine.connect() as conn:
            yield conn

    async def close(self) -> None:
        await self.engine.dispose()
