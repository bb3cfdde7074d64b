"""SQLite, the embedded default: stdlib ``sqlite3`` on the event loop, checkpoints off it.

Why on the loop: a statement of this server touches a few rows through an index and costs
tens of microseconds, less than a hop to a worker thread and back (that hop is what made
aiosqlite slow here, see :mod:`tertulia.storage.sql`). What could block for longer is kept
off the loop:

- *Checkpoints* (copying the write-ahead log into the database file, the only step that
  waits for the disk): automatic checkpoints are off on the server's connections; they run
  in a worker thread with a connection of their own (see :class:`Checkpointer`).
- *Other processes* holding the write lock (a ``tertulia migrate`` or a shell): SQLite is
  the single-process setup; ``busy_timeout`` bounds the wait. Past it, the use case fails
  with :class:`DatabaseUnavailable` (``database is locked``: 503, try again), not with
  sqlite3's error.

Transactions: one writer connection, taken by one use case at a time (an ``asyncio.Lock``:
SQLite has a single writer, and a transaction stays open across the use case's awaits);
``BEGIN IMMEDIATE`` takes SQLite's write lock at once. Reads use a second connection in
autocommit mode, so they never see a write transaction that is still open.

Group commit: use cases that run in the same turn of the event loop share one SQLite
transaction, each one after the first inside a ``SAVEPOINT`` of its own (a use case that
fails rolls back its own statements only; the first, alone in the transaction until it
ends, rolls back the transaction), and one ``COMMIT`` ends them all. The first use case of
a batch begins the transaction and queues the commit as a task, which lets the loop turn
once more before it takes the writer: every use case ready to run by then (its frame read,
its bot answered) runs first, and joins. Nobody returns from :meth:`SQLiteDatabase.write`
before the commit, so "acknowledged means stored" holds as before; what changes is that
the commit, the costly step (it writes every changed page to the log), is paid once per
batch. Alone, a use case waits one turn of the loop for its
commit; under load, batches grow with the load.

Numbering: the writer connection counts each conversation's last ``seq`` in memory
(``SQLiteConnection.last_seqs``, used by :func:`tertulia.storage.messages.insert_message`)
instead of bumping a row per message; anything rolled back (a use case's savepoint, a whole
transaction, a failed commit) empties the counts, which are then read again from the
messages inside the open transaction.

Durability: WAL with ``synchronous=NORMAL``: a committed transaction survives the server
process being killed (only an operating-system crash can lose the last ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import structlog
from sqlalchemy.dialects.sqlite import pysqlite
from sqlalchemy.engine import make_url
from sqlalchemy.sql import Executable

from tertulia.errors import ConfigurationError, Conflict, DatabaseUnavailable, describe
from tertulia.storage.database import Database, Params, json_dumps
from tertulia.storage.sql import Result, StatementCache

log = structlog.get_logger(__name__)

BUSY_TIMEOUT_MS = 5000
CHECKPOINT_INTERVAL = 0.25  # seconds between checkpoints while there are commits
CHECKPOINT_AFTER = 1000  # commits that call for a checkpoint at once
# Bytes of log written since it last started over that call for a quiet window (writers
# wait for it, 10-30 ms): half the size its file is cut back to, so that a restart needs no
# cut, and a quiet window comes every 32 MB of log (docs/performance-history.md).
WAL_RESET_SIZE = 32 * 1024 * 1024
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # the log file is cut back to this when it restarts
WAL_FRAME_HEADER = 24  # bytes before each page in the log


# sqlite3 binds int, float and str directly but looks every None up as an object to adapt
# (two failing attribute lookups, each formatting an AttributeError): a registered adapter
# is one dictionary hit. The adapter gives None back; an empty dict's ``get`` does that in C,
# without the frame of a Python function.
_NO_ADAPTATIONS: dict[None, None] = {}
sqlite3.register_adapter(type(None), _NO_ADAPTATIONS.get)


def _busy(error: BaseException) -> bool:
    """Whether ``error`` is SQLite's ``database is locked`` (another connection held the
    lock past ``busy_timeout``)."""
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, sqlite3.OperationalError) and (
        (code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))
        or "database is locked" in str(error)
    )


def translated(error: BaseException) -> BaseException:
    """:class:`DatabaseUnavailable` (caused by ``error``) for a lock held too long, else
    ``error`` itself."""
    if not _busy(error):
        return error
    unavailable = DatabaseUnavailable(describe(error))
    unavailable.__cause__ = error
    return unavailable


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite[+driver]:///path`` URL.

    Raises:
        ConfigurationError: an in-memory database (the server needs a file: its readers
            and its checkpoints use connections of their own), or a URI filename
            (``sqlite:///file:/path?uri=true``).
    """
    parsed = make_url(url)
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        raise ConfigurationError("SQLite needs a file, e.g. sqlite+aiosqlite:///./tertulia.db")
    if database.startswith("file:"):
        # Every connection here opens the file by its path (so do the server's lock, its
        # checkpoints' fsync of the log, and the check that the file exists): a URI's
        # parameters (mode=ro, say) would be dropped, and where the platform's SQLite takes
        # no URIs the name would be a relative path beginning with "file:".
        path = unquote(urlsplit(database).path)
        raise ConfigurationError(
            f"SQLite URI filenames are not supported ({database}): name the file, as in "
            f"{parsed.drivername}:///{path or './tertulia.db'}"
        )
    return database


def create_private(path: str) -> None:
    """Create the database file at ``path``, readable by its owner only, unless it exists:
    it holds people's conversations and their sessions' keys (bearer credentials). SQLite
    gives its ``-wal`` and ``-shm`` files the database file's permissions."""
    # (There already, or not to be made here: SQLite's own connect says why, as before.)
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


@contextlib.contextmanager
def single_server(
    url: str, why: str = "SQLite serves one process; for several, use PostgreSQL"
) -> Iterator[None]:
    """Hold, while the block runs, an exclusive advisory lock (``flock``) on a file
    beside the database, ``<database>.lock``: a SQLite file is one server process's.

    Two servers on one file both started, and then each refused the other's numbering of
    messages at random (409s naming SQL). The lock goes with the process (the kernel drops
    it when the process ends, also by SIGKILL); the file stays, empty. It is the real
    file's (its path made absolute, symbolic links followed), so that one URL naming the
    file through a link, or from another directory, finds the same lock.

    Raises:
        ConfigurationError: another process holds the lock (saying so, then ``why``), or
            the file cannot be made.
    """
    database = os.path.realpath(sqlite_path(url))
    lock = f"{database}.lock"
    try:
        handle = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as exc:
        raise ConfigurationError(f"cannot make the lock file {lock}: {exc}") from exc
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigurationError(
                f"another server is running on the SQLite database {database} (it holds "
                f"{lock}): {why}"
            ) from None
        yield
    finally:
        os.close(handle)  # (releases the lock)


def open_connection(path: str) -> sqlite3.Connection:
    """A ``sqlite3`` connection with the server's settings (WAL, ``synchronous=NORMAL``,
    foreign keys, no automatic checkpoints: :class:`Checkpointer` runs them); a new file is
    its owner's only (:func:`create_private`)."""
    create_private(path)
    raw = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA foreign_keys=ON",
        f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
        "PRAGMA wal_autocheckpoint=0",
        f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}",
    ):
        raw.execute(pragma)
    return raw


class SQLiteConnection:
    """Runs compiled statements on one ``sqlite3`` connection (see :class:`Connection`).

    Args:
        raw: the ``sqlite3`` connection.
        cache: the compiled statements.
        writer: this is the server's one writer connection, which counts the conversations'
            ``seq`` in memory (``last_seqs``): no other connection writes messages.
    """

    __slots__ = ("_cache", "_raw", "dialect", "last_seqs")

    def __init__(
        self, raw: sqlite3.Connection, cache: StatementCache, *, writer: bool = False
    ) -> None:
        self._raw = raw
        self._cache = cache
        self.dialect = cache.dialect
        self.last_seqs: dict[str, int] | None = {} if writer else None

    async def execute(self, statement: Executable, params: Params = None) -> Result:
        try:
            if params is None or isinstance(params, Mapping):
                return self._one(statement, params)
            return self._many(statement, params)
        except sqlite3.IntegrityError as exc:
            raise Conflict(reason=str(exc)) from exc
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                raise translated(exc) from exc
            raise

    def _one(self, statement: Executable, params: Mapping[str, Any] | None) -> Result:
        compiled = self._cache.get(statement, params)
        cursor = self._raw.execute(compiled.sql, compiled.bind(params))
        if compiled.returns_rows:
            rows = compiled.rows(cursor.fetchall())
            return Result(rows, cursor.rowcount)
        return Result(rowcount=cursor.rowcount, lastrowid=cursor.lastrowid)

    def _many(self, statement: Executable, params: Any) -> Result:
        if not params:
            return Result(rowcount=0)
        compiled = self._cache.get(statement, params[0])
        if compiled.returns_rows:
            rows: list[Any] = []
            for one in params:
                rows.extend(self._one(statement, one))
            return Result(rows, len(rows))
        cursor = self._raw.executemany(compiled.sql, [compiled.bind(p) for p in params])
        return Result(rowcount=cursor.rowcount)


class Checkpointer:
    """Moves the write-ahead log into the database file, off the event loop.

    Every ``CHECKPOINT_INTERVAL`` seconds while there were commits (at once after
    ``CHECKPOINT_AFTER`` of them), a worker thread runs a ``PASSIVE`` checkpoint beside the
    writers: it copies the bulk of the log and does the disk syncs. That alone never lets
    the log restart under steady load (the writers keep appending while it copies), so when
    the log has grown past ``WAL_RESET_SIZE`` a second, short pass runs in a *quiet window*:
    writers wait for it (asynchronously: the loop goes on serving everything else), it
    copies what was written during the first pass, and the next write starts the log again
    from its beginning. The log is synced to disk just before that window, so that the
    pass in it has little of the log left to sync.

    How far the log has grown is the frames written since it last started again, as the
    first pass counts them, not the size of its file: a restarted log is written over from
    the start of a file that keeps its size (up to ``JOURNAL_SIZE_LIMIT``).
    """

    def __init__(
        self, path: str, quiet: Callable[[Callable[[], Awaitable[object]]], Awaitable[None]]
    ) -> None:
        self._path = path
        self._quiet = quiet
        self._commits = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._raw: sqlite3.Connection | None = None
        self._page_size = 4096
        self._running = threading.Lock()

    def committed(self) -> None:
        """A transaction committed (called on the loop)."""
        self._commits += 1
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sqlite-checkpoint")
        if self._commits >= CHECKPOINT_AFTER:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), CHECKPOINT_INTERVAL)
            self._wake.clear()
            if not self._commits:
                continue
            self._commits = 0
            try:
                grown = await asyncio.to_thread(self._checkpoint, "PASSIVE")
                if grown > WAL_RESET_SIZE:
                    await asyncio.to_thread(self._sync_log)
                    await self._quiet(lambda: asyncio.to_thread(self._checkpoint, "PASSIVE"))
            except (sqlite3.Error, OSError) as exc:  # pragma: no cover - a broken file or disk
                log.warning("sqlite checkpoint failed", error=str(exc))  # tried again later
            except Exception:
                # A bug: said loudly, with its traceback, but the checkpoints go on (were
                # this task to end, the log would grow without bound).
                log.exception("sqlite checkpoint crashed")

    def _sync_log(self) -> None:
        """Sync the log to disk before a quiet window, so that the pass in it, which must
        sync the log before it copies, has only what came since to sync (measured: windows
        of about 15 ms instead of 20; docs/performance-history.md)."""
        try:
            fd = os.open(self._path + "-wal", os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _checkpoint(self, mode: str) -> int:
        """One pass; returns the bytes of log written since it last started again."""
        with self._running:  # one at a time (a cancelled pass may still be in its thread)
            if self._raw is None:
                self._raw = open_connection(self._path)
                (self._page_size,) = self._raw.execute("PRAGMA page_size").fetchone()
            _, frames, _ = self._raw.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            return max(int(frames), 0) * (self._page_size + WAL_FRAME_HEADER)

    async def stop(self) -> None:
        """Stop, then empty the log into the database file (the writers are done)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await asyncio.to_thread(self._checkpoint, "TRUNCATE")
        except sqlite3.Error as exc:  # pragma: no cover - a broken file
            log.warning("sqlite checkpoint failed", error=str(exc))
        finally:
            with self._running:
                if self._raw is not None:
                    self._raw.close()


class _Batch:
    """Use cases sharing one SQLite transaction, and its outcome.

    Each use case waits on a future of its own (:meth:`waiter`), so that one of them being
    cancelled leaves the others waiting; that is cheaper than shielding one shared future.
    """

    __slots__ = ("_error", "_loop", "_waiters", "committer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: list[asyncio.Future[None]] | None = []  # None once settled
        self._error: BaseException | None = None  # why it failed, once settled
        self.committer: asyncio.Task[None] | None = None

    def waiter(self) -> asyncio.Future[None]:
        """A future that ends with the batch: None once committed, else its error."""
        future = self._loop.create_future()
        if self._waiters is not None:
            self._waiters.append(future)
        else:
            self._tell(future)
        return future

    def settle(self, error: BaseException | None = None) -> None:
        """The batch committed (``error`` None) or failed: tell every use case waiting.
        Only the first outcome counts."""
        waiters = self._waiters
        if waiters is None:
            return
        self._waiters, self._error = None, error
        for future in waiters:
            self._tell(future)

    def _tell(self, future: asyncio.Future[None]) -> None:
        if future.done():  # its use case was cancelled
            return
        if self._error is None:
            future.set_result(None)
        else:
            future.set_exception(self._error)


class _WriteBlock:
    """``async with db.write() as conn``: one use case in the open batch (see the module).

    A class rather than a generator-based context manager: it runs twice per message, and
    an async generator costs a registration with the loop on top of the generator itself.
    """

    __slots__ = ("_batch", "_db", "_joined")

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db
        self._batch: _Batch | None = None
        self._joined = False

    async def __aenter__(self) -> SQLiteConnection:
        db = self._db
        await db._lock.acquire()
        self._joined = db._batch is not None
        try:
            batch = self._batch = db._begin()
        except BaseException as exc:
            db._lock.release()
            if _busy(exc):
                raise translated(exc) from exc
            raise
        if self._joined:
            # The first use case of a batch needs no savepoint: it is alone in the
            # transaction (the others join after it), so its failure rolls back all of it.
            db._in_use_case(batch, "SAVEPOINT use_case")
        return db._write_connection

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        db, batch = self._db, self._batch
        assert batch is not None
        if kind is not None:
            db._abandon(batch, joined=self._joined)
            return
        if self._joined:
            db._in_use_case(batch, "RELEASE use_case")
        db._end_turn(batch)
        await batch.waiter()


class _ReadBlock:
    """``async with db.read() as conn``: the autocommit reader (nothing to set up)."""

    __slots__ = ("_connection",)

    def __init__(self, connection: SQLiteConnection) -> None:
        self._connection = connection

    async def __aenter__(self) -> SQLiteConnection:
        return self._connection

    async def __aexit__(self, *_: object) -> None:
        return None


class SQLiteDatabase(Database):
    """A SQLite file (see the module's docstring for how it is used).

    Args:
        url: ``sqlite+aiosqlite:///path`` (BLAB-style URLs name the driver; any is fine).
        existing: refuse a file that does not exist yet, rather than create it.

    Raises:
        ConfigurationError: an in-memory URL, or (``existing``) no such file.
    """

    def __init__(self, url: str, *, existing: bool = False) -> None:
        self.url = url
        self.schema = None
        path = sqlite_path(url)
        if existing and not os.path.isfile(path):
            where = path if os.path.isabs(path) else f"{path} ({os.path.abspath(path)})"
            raise ConfigurationError(f"no SQLite database at {where}")
        dialect = pysqlite.dialect(json_serializer=json_dumps, json_deserializer=orjson.loads)
        self._cache = StatementCache(dialect)
        self._writer = open_connection(path)
        self._reader = open_connection(path)
        self._write_connection = SQLiteConnection(self._writer, self._cache, writer=True)
        self._read_connection = SQLiteConnection(self._reader, self._cache)
        self._lock = asyncio.Lock()
        self._batch: _Batch | None = None
        self._checkpointer = Checkpointer(path, self._quiet)

    def write(self) -> _WriteBlock:
        return _WriteBlock(self)

    def _begin(self) -> _Batch:
        """The open batch, or a new one with its transaction begun (under the lock)."""
        if self._batch is None:
            self._writer.execute("BEGIN IMMEDIATE")
            self._batch = _Batch(asyncio.get_running_loop())
        return self._batch

    def _in_use_case(self, batch: _Batch, statement: str) -> None:
        """Run one of a joined use case's own statements; on failure, abandon it."""
        try:
            self._writer.execute(statement)
        except BaseException:
            self._abandon(batch)
            raise

    def _abandon(self, batch: _Batch, *, joined: bool = True) -> None:
        """The use case failed: undo its own statements, then let the batch go on.

        A use case that ``joined`` the batch rolls back to its savepoint. The batch's first
        use case has none: it is alone in the transaction, which is rolled back whole, and
        the next use case begins a new one.
        """
        raw = self._writer
        self._forget_seqs()
        if joined and raw.in_transaction:
            try:
                raw.execute("ROLLBACK TO use_case")
                raw.execute("RELEASE use_case")
            except sqlite3.OperationalError:
                pass  # the savepoint was never made (its own statement failed)
            else:
                self._end_turn(batch)
                return
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        # Whatever else was in the transaction is lost too (only when a savepoint could not
        # be used: a disk or memory error), and its use cases learn it instead of a commit.
        self._batch = None
        batch.settle(RuntimeError("the transaction was rolled back"))
        self._lock.release()

    def _end_turn(self, batch: _Batch) -> None:
        """After a use case (under the lock): leave the batch open for the use cases ready
        to run, with its commit queued behind them."""
        if batch.committer is None:
            batch.committer = asyncio.ensure_future(self._commit_later(batch))
        self._lock.release()

    async def _commit_later(self, batch: _Batch) -> None:
        # One more turn of the loop first: the frames that arrived meanwhile join the batch
        # (measured: batches of 8 instead of 5 under load, and no cost when alone).
        await asyncio.sleep(0)
        async with self._lock:
            if self._batch is batch:
                self._commit(batch)

    def _commit(self, batch: _Batch) -> None:
        self._batch = None
        try:
            self._writer.execute("COMMIT")
        except BaseException as exc:
            self._forget_seqs()
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
            batch.settle(translated(exc))
            return
        batch.settle()
        self._checkpointer.committed()

    def _forget_seqs(self) -> None:
        """Something is rolled back: the seqs counted in memory may count statements that
        are undone; each conversation's next one is read from its messages again."""
        assert self._write_connection.last_seqs is not None
        self._write_connection.last_seqs.clear()

    async def _quiet(self, work: Callable[[], Awaitable[object]]) -> None:
        """Run ``work`` while no write transaction is open (writers wait for it)."""
        async with self._lock:
            if self._batch is not None:
                self._commit(self._batch)  # its committer, queued behind, finds it done
            await work()

    def read(self) -> _ReadBlock:
        return _ReadBlock(self._read_connection)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[SQLiteConnection]:
        # A connection of its own: a transaction on the shared reader would hold the
        # server's other reads in the past too.
        raw = open_connection(sqlite_path(self.url))
        try:
            raw.execute("PRAGMA query_only=ON")
            raw.execute("BEGIN")
            try:
                yield SQLiteConnection(raw, self._cache)
            finally:
                raw.execute("COMMIT")
        finally:
            raw.close()

    async def close(self) -> None:
        batch = self._batch
        if batch is not None and batch.committer is not None:
            await asyncio.gather(batch.committer, return_exceptions=True)
        await self._checkpointer.stop()
        self._reader.close()
        self._writer.close()
