"""What one small write transaction costs through each way of running SQL on SQLite.

Run by hand: ``.venv/bin/python -m bench.statements [--transactions 2000]``. It measures
the CPU time of the same transaction (``UPDATE … RETURNING`` a counter, then two
``INSERT``s) done four ways, each on a fresh SQLite file in WAL mode:

1. SQLAlchemy's async engine over aiosqlite (what Tertulia used before);
2. SQLAlchemy Core on the stdlib ``sqlite3`` driver, one connection;
3. Tertulia's own layer (``storage.sql`` + ``storage.sqlite``): Core statements compiled
   once, run on ``sqlite3`` on the event loop;
4. the same SQL strings straight on ``sqlite3`` (the floor).

The figures explain the choice documented in ``storage/sql.py`` and docs/performance-history.md.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, create_engine, event
from sqlalchemy.ext.asyncio import create_async_engine

metadata = MetaData()
counters = Table(
    "counters", metadata, Column("id", Integer, primary_key=True), Column("n", Integer)
)
rows = Table("rows", metadata, Column("id", Integer, primary_key=True), Column("v", String))
BUMP = (
    counters.update()
    .where(counters.c.id == bindparam("counter"))
    .values(n=counters.c.n + 1)
    .returning(counters.c.n)
)
INSERT = rows.insert()


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def _prepare(path: Path) -> None:
    engine = create_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", _pragmas)
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(counters.insert().values(id=1, n=0))
    engine.dispose()


async def _async_engine(path: Path, count: int) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    event.listen(engine.sync_engine, "connect", _pragmas)
    event.listen(engine.sync_engine, "begin", _begin)
    for i in range(count):
        async with engine.begin() as conn:
            (await conn.execute(BUMP, {"counter": 1})).scalar_one()
            await conn.execute(INSERT, {"v": f"a{i}"})
            await conn.execute(INSERT, {"v": f"b{i}"})
    await engine.dispose()


def _core_sync(path: Path, count: int) -> None:
    engine = create_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", _pragmas)
    event.listen(engine, "begin", _begin)
    with engine.connect() as conn:
        for i in range(count):
            with conn.begin():
                conn.execute(BUMP, {"counter": 1}).scalar_one()
                conn.execute(INSERT, {"v": f"a{i}"})
                conn.execute(INSERT, {"v": f"b{i}"})
    engine.dispose()


async def _ours(path: Path, count: int) -> None:
    from tertulia.storage.sqlite import SQLiteDatabase

    db = SQLiteDatabase(f"sqlite:///{path}")
    try:
        for i in range(count):
            async with db.write() as conn:
                (await conn.execute(BUMP, {"counter": 1})).scalar_one()
                await conn.execute(INSERT, {"v": f"a{i}"})
                await conn.execute(INSERT, {"v": f"b{i}"})
    finally:
        await db.close()


def _raw(path: Path, count: int) -> None:
    import sqlite3

    raw = sqlite3.connect(path, isolation_level=None)
    _pragmas(raw, None)
    dialect = create_engine("sqlite://").dialect
    bump, insert = (str(s.compile(dialect=dialect)) for s in (BUMP, INSERT))
    for i in range(count):
        raw.execute("BEGIN")
        raw.execute(bump, (1, 1)).fetchone()
        raw.execute(insert, (None, f"a{i}"))
        raw.execute(insert, (None, f"b{i}"))
        raw.execute("COMMIT")
    raw.close()


def _measure(label: str, run: Callable[[Path, int], Any], count: int, root: Path) -> None:
    path = root / f"{label.split()[0]}.db"
    _prepare(path)
    started, cpu = time.perf_counter(), time.process_time()
    outcome = run(path, count)
    if asyncio.iscoroutine(outcome):
        asyncio.run(outcome)
    wall = (time.perf_counter() - started) / count * 1e6
    spent = (time.process_time() - cpu) / count * 1e6
    print(f"{label:48s} {wall:8.0f} µs wall {spent:8.0f} µs CPU per transaction")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=2000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _measure("async-engine (SQLAlchemy + aiosqlite)", _async_engine, args.transactions, root)
        _measure("core-sync (SQLAlchemy Core, sqlite3)", _core_sync, args.transactions, root)
        _measure("tertulia (compiled once, sqlite3 on the loop)", _ours, args.transactions, root)
        _measure("raw (the same SQL on sqlite3)", _raw, args.transactions, root)


if __name__ == "__main__":
    main()
