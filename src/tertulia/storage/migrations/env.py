"""Alembic environment: runs migrations on the async engine given by ``tertulia migrate``.

Migrations are the one place that runs statements through SQLAlchemy's engine (the server
itself uses :mod:`tertulia.storage.database`); the URL names the async driver
(``sqlite+aiosqlite``, ``postgresql+asyncpg``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from alembic import context
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tertulia.errors import TertuliaError
from tertulia.storage.tables import ONE_DATABASE_INDEXES, metadata

config = context.config


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, decide when transactions begin (see _sqlite_on_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # Foreign keys off while migrating, as SQLite's own procedure for changing a table says
    # (https://www.sqlite.org/lang_altertable.html): a batch migration copies a table,
    # drops the old one and renames the copy, and a drop of a table other tables refer to
    # is refused with them on, once it holds rows. They are checked before the commit
    # (_check_foreign_keys).
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA foreign_keys=OFF",
        "PRAGMA busy_timeout=10000",
    ):
        cursor.execute(pragma)
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    # IMMEDIATE: the write lock from the start, so that processes migrating at once take
    # turns (each waits up to busy_timeout) rather than one failing on "database is locked"
    # when its read turns into a write.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, schema: str | None = None) -> AsyncEngine:
    """The async engine for ``url``; plain ``sqlite://`` and ``postgresql://`` URLs get
    the async drivers."""
    parsed = make_url(url)
    if parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    kwargs: dict[str, Any] = {}
    if schema and parsed.drivername.startswith("postgresql"):
        kwargs["connect_args"] = {"server_settings": {"search_path": schema}}
    engine = create_async_engine(parsed, **kwargs)
    if parsed.drivername.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # One transaction for the whole upgrade on SQLite too (it can: its DDL is
        # transactional), not one per revision: a process waiting for the lock would
        # otherwise start between two revisions of another's upgrade and run the next
        # revision twice.
        transactional_ddl=True,
        include_object=_compared(connection.dialect.name),
    )
    with context.begin_transaction():
        # The revision found here, under the lock (PostgreSQL's advisory lock, SQLite's
        # write lock), is what this upgrade started from: another process's migration
        # read before it may be done by now (tertulia.storage.migrate.migrate tells it).
        config.attributes["found"] = context.get_context().get_current_revision()
        # SQLite's foreign keys are off here (_sqlite_on_connect): rows a revision leaves
        # referring to nothing are looked for when a revision runs, and only those refuse
        # the migration (a database may hold some already: a hand edit, say).
        check = connection.dialect.name == "sqlite" and _will_migrate()
        before = _broken_foreign_keys(connection) if check else set()
        context.run_migrations()
        if check:
            broken = _broken_foreign_keys(connection) - before
            if broken:
                raise TertuliaError(
                    "the migration would leave rows referring to nothing (table, row, "
                    f"referred table): {sorted(broken)[:5]}; nothing was changed"
                )


def _compared(dialect: str) -> Callable[..., bool]:
    """Which objects autogenerate (``alembic check``) compares: an index of one database
    only (``ONE_DATABASE_INDEXES``) on that one, and not at all when the tables do not
    describe it (PostgreSQL's on an expression, which autogenerate cannot compare)."""

    described = {index.name for table in metadata.tables.values() for index in table.indexes}

    def include(_obj: Any, name: str | None, type_: str, *_: Any) -> bool:
        if type_ != "index" or name not in ONE_DATABASE_INDEXES:
            return True
        return ONE_DATABASE_INDEXES[name] == dialect and name in described

    return include


def _will_migrate() -> bool:
    """Whether a revision is to run: the database is not at the target already."""
    script = ScriptDirectory.from_config(config)
    try:
        argument = context.get_revision_argument()
    except KeyError:  # (no destination: ``alembic check`` compares, migrates nothing)
        return False
    if argument is None:
        return False
    target = {r.revision for r in script.get_revisions(argument) if r}
    return set(context.get_context().get_current_heads()) != target


def _broken_foreign_keys(connection: Connection) -> set[tuple[Any, ...]]:
    """Rows referring to a row that is not there: ``(table, rowid, referred table)``."""
    rows = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    return {(table, rowid, parent) for table, rowid, parent, _ in rows}


_LOCK = text("SELECT pg_advisory_lock(hashtext(:name))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtext(:name))")


def _lock_name(schema: str | None) -> str:
    return f"tertulia migrate {schema or ''}"


async def _run_async() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    schema = config.attributes.get("schema")
    engine = make_engine(url, schema=schema)
    try:
        async with engine.connect() as connection:
            postgresql = connection.dialect.name == "postgresql"
            if postgresql:
                # Server processes starting at once each migrate (auto_migrate): they take
                # turns on a lock of the session, per schema; the later ones find it done.
                await connection.execute(_LOCK, {"name": _lock_name(schema)})
                await connection.commit()
            try:
                if schema:
                    await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                    await connection.commit()
                await connection.run_sync(_run)
                await connection.commit()
            finally:
                if postgresql:
                    await connection.rollback()
                    await connection.execute(_UNLOCK, {"name": _lock_name(schema)})
                    await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():  # pragma: no cover - offline SQL generation
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
