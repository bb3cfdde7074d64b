"""PostgreSQL through an asyncpg pool (several server processes share one database).

Statements are compiled once (:mod:`tertulia.storage.sql`) and asyncpg prepares each SQL
text once per connection (its statement cache). ``search_path`` is the configured schema,
so tests and tenants can live side by side in one database. JSON columns are decoded by a
codec installed on each new connection (their values are encoded by the column type).

A database that cannot be reached (a connection refused or cut, the server shutting down, a
connection attempt timing out) is :class:`DatabaseUnavailable`, raised here in place of
asyncpg's or the socket's error, whether it shows when a connection is taken from the pool,
in a statement, or at the commit: the web layer answers it 503 ``unavailable``. Errors of
the block's own code are left as they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

import asyncpg
import orjson
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.sql import Executable

from tertulia.errors import Conflict, DatabaseUnavailable, TurnLost, describe
from tertulia.storage.database import Database, Params, json_dumps
from tertulia.storage.sql import Result, StatementCache

POOL_MIN = 1
POOL_MAX = 20
STATEMENT_TIMEOUT = 10.0
"""Seconds a statement (a commit too) may wait for the database's answer: then the use case
fails as the database out of reach (503). A database that holds its connections without
answering (a network partition, a frozen host) otherwise held every request and message
for the whole outage, minutes, with nothing said (chaos QA). Tertulia's statements take
milliseconds; the longest, a conversation's deletion, well under this."""
CONNECT_TIMEOUT = 10.0
"""Seconds a new connection, or a free one from the pool, may take to come."""
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable; TimeoutError (a connection attempt) among them
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.CannotConnectNowError,  # the server is starting or shutting down
    asyncpg.AdminShutdownError,  # it was stopped under the connection
    asyncpg.CrashShutdownError,
    asyncpg.ConnectionDoesNotExistError,  # the connection was lost during a statement
    # A pooled connection that PostgreSQL ended while it was idle (pg_terminate_backend, a
    # restart: its FATAL came between two uses) fails its next use so: "cannot switch to
    # state 11; another operation (2) is in progress". Given up (BROKEN), not reused.
    asyncpg.InternalClientError,
)
"""The errors that say the database cannot be reached, not that the statement failed."""
TURN_LOST: tuple[type[BaseException], ...] = (
    asyncpg.DeadlockDetectedError,  # 40P01
    asyncpg.SerializationError,  # 40001
)
"""The errors of a transaction that PostgreSQL ended to let another one through:
:class:`TurnLost`, a conflict (409, or a refusal frame) like a constraint's, which a client
may send again; a deletion and a leave try again themselves."""
BROKEN: tuple[type[BaseException], ...] = (TimeoutError, asyncpg.InternalClientError)
"""Of those, the ones after which the connection is given up at once: unanswered (its
rollback would wait as long again), or in a state it cannot leave."""


def unreachable(error: BaseException) -> DatabaseUnavailable:
    """The :class:`DatabaseUnavailable` for one of ``UNREACHABLE``."""
    return DatabaseUnavailable(describe(error))


async def _init_connection(raw: Any) -> None:
    for name in ("json", "jsonb"):
        await raw.set_type_codec(name, encoder=str, decoder=orjson.loads, schema="pg_catalog")


async def keep_session(raw: Any) -> None:
    """The pool's reset on release, with nothing to reset.

    asyncpg's default sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` each time a connection goes back to the pool: one more round trip and four
    commands per use case. Tertulia leaves nothing of that behind: no advisory locks, no
    cursors outside a transaction, no ``LISTEN``, no ``SET`` (the schema is a setting of
    the connection, given when it opens). What can be left behind, an open transaction,
    asyncpg still rolls back before calling this.
    """


def _rowcount(status: str) -> int:
    """The row count of a command status such as ``UPDATE 3`` or ``INSERT 0 1``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


class PostgresConnection:
    """Runs compiled statements on one pooled asyncpg connection (see :class:`Connection`)."""

    __slots__ = ("_cache", "_raw", "dialect")
    # Several processes may write: a seq is taken from the conversation's row, under its lock.
    last_seqs: dict[str, int] | None = None

    def __init__(self, raw: Any, cache: StatementCache) -> None:
        self._raw = raw
        self._cache = cache
        self.dialect = cache.dialect

    async def execute(self, statement: Executable, params: Params = None) -> Result:
        try:
            if params is None or isinstance(params, Mapping):
                return await self._one(statement, params)
            return await self._many(statement, params)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise Conflict(reason=str(exc)) from exc
        except TURN_LOST as exc:
            raise TurnLost(reason=str(exc)) from exc
        except UNREACHABLE as exc:
            if isinstance(exc, BROKEN):
                # No answer within STATEMENT_TIMEOUT: the connection is given up at once,
                # so that its rollback (and the pool's own) does not wait as long again.
                self._raw.terminate()
            raise unreachable(exc) from exc

    async def _one(self, statement: Executable, params: Mapping[str, Any] | None) -> Result:
        compiled = self._cache.get(statement, params)
        if compiled.returns_rows:
            records = await self._raw.fetch(compiled.sql, *compiled.bind(params))
            return Result(compiled.rows(records), len(records))
        status = await self._raw.execute(compiled.sql, *compiled.bind(params))
        return Result(rowcount=_rowcount(status))

    async def _many(self, statement: Executable, params: Any) -> Result:
        if not params:
            return Result(rowcount=0)
        compiled = self._cache.get(statement, params[0])
        if compiled.returns_rows:
            rows: list[Any] = []
            for one in params:
                rows.extend(await self._one(statement, one))
            return Result(rows, len(rows))
        await self._raw.executemany(compiled.sql, [compiled.bind(p) for p in params])
        return Result(rowcount=len(params))


def _transaction(raw: Any, options: dict[str, Any]) -> AbstractAsyncContextManager[Any]:
    if not options.pop("transaction", False):
        return nullcontext()
    transaction: AbstractAsyncContextManager[Any] = raw.transaction(**options)
    return transaction


class PostgresDatabase(Database):
    """A PostgreSQL database; build it with :meth:`open`."""

    def __init__(self, url: str, schema: str | None, pool: Any) -> None:
        self.url = url
        self.schema = schema
        self._pool = pool
        dialect = asyncpg_dialect.dialect(  # type: ignore[no-untyped-call]
            json_serializer=json_dumps, json_deserializer=orjson.loads
        )
        self._cache = StatementCache(dialect)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        schema: str | None = None,
        min_size: int = POOL_MIN,
        max_size: int = POOL_MAX,
    ) -> PostgresDatabase:
        """Connect a pool to ``postgresql[+asyncpg]://user:password@host:port/database``."""
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            server_settings={"search_path": schema} if schema else None,
            init=_init_connection,
            reset=keep_session,
            command_timeout=STATEMENT_TIMEOUT,
            timeout=CONNECT_TIMEOUT,
        )
        return cls(url, schema, pool)

    @asynccontextmanager
    async def _connection(self, **transaction: Any) -> AsyncIterator[PostgresConnection]:
        """A pooled connection, in a transaction (given its options) or none (``None``):
        the pool's and the transaction's own failures to reach the database become
        :class:`DatabaseUnavailable`; the block's errors pass as they are."""
        raised: BaseException | None = None
        acquired = False
        try:
            async with self._pool.acquire(timeout=CONNECT_TIMEOUT) as raw:
                acquired = True
                try:
                    async with _transaction(raw, transaction):
                        try:
                            yield PostgresConnection(raw, self._cache)
                        except BaseException as exc:
                            raised = exc
                            raise
                except BROKEN as exc:
                    if exc is not raised:
                        raw.terminate()  # (its BEGIN or COMMIT failed: as a statement's)
                    raise
        except UNREACHABLE as exc:
            if exc is raised:
                raise
            raise unreachable(exc) from exc
        except asyncpg.PostgresError as exc:
            # Whatever PostgreSQL answers a new connection (not accepting connections, too
            # many, the database or the role gone) says it cannot be reached, not that a
            # statement failed (docs QA: ALLOW_CONNECTIONS false was a 500).
            if acquired:
                raise
            raise unreachable(exc) from exc

    def write(self) -> AbstractAsyncContextManager[PostgresConnection]:
        return self._connection(transaction=True)

    def read(self) -> AbstractAsyncContextManager[PostgresConnection]:
        return self._connection()

    def snapshot(self) -> AbstractAsyncContextManager[PostgresConnection]:
        return self._connection(transaction=True, isolation="repeatable_read", readonly=True)

    async def close(self) -> None:
        await self._pool.close()
