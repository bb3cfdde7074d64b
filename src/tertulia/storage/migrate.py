"""Bring a database's schema up to date with Alembic (``tertulia migrate``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, Table, select

from tertulia.domain.ids import is_schema_name
from tertulia.errors import ConfigurationError, SchemaNewer, SchemaNotCurrent
from tertulia.storage.database import Database, open_database

_MIGRATIONS = Path(__file__).with_name("migrations")
_VERSION = Table("alembic_version", MetaData(), Column("version_num", String(32)))
"""Alembic's record of a database's schema revision."""


def alembic_config(url: str, schema: str | None = None) -> Config:
    """An Alembic configuration for ``url``, with no ini file needed."""
    if schema is not None and not is_schema_name(schema):
        raise ConfigurationError(
            f"invalid database schema name {schema!r}: a plain SQL identifier in lower case "
            "(a letter or _, then letters, digits or _; at most 63)"
        )
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["schema"] = schema
    return config


def upgrade(url: str, schema: str | None = None, revision: str = "head") -> str | None:
    """Apply every migration up to ``revision`` (blocking; runs its own event loop); a new
    SQLite file is its owner's only. Returns the revision it started from (``None``: never
    migrated), read once it held the lock that processes migrating at once take turns on."""
    if url.startswith("sqlite"):
        from tertulia.storage.sqlite import create_private, sqlite_path

        create_private(sqlite_path(url))
    config = alembic_config(url, schema)
    command.upgrade(config, revision)
    found = config.attributes.get("found")
    return None if found is None else str(found)


def downgrade(url: str, schema: str | None, revision: str) -> str | None:
    """Undo every migration after ``revision`` (blocking, as :func:`upgrade`). Returns the
    revision it started from, read under the migrations' lock."""
    config = alembic_config(url, schema)
    command.downgrade(config, revision)
    found = config.attributes.get("found")
    return None if found is None else str(found)


def known_revisions() -> list[str]:
    """This code's schema revisions, oldest first."""
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [script.revision for script in reversed(list(scripts.walk_revisions()))]


def head_revision() -> str:
    """This code's schema revision (the last migration's)."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


async def upgrade_async(url: str, schema: str | None = None) -> str | None:
    """:func:`upgrade` from async code (Alembic's env runs its own loop, so in a thread)."""
    return await asyncio.to_thread(upgrade, url, schema)


async def migrate(
    url: str, schema: str | None = None, to: str | None = None
) -> tuple[str | None, str | None]:
    """Bring the database to revision ``to`` (``None``: the latest), up or down, telling
    what it did.

    Returns:
        The database's schema revision before (``None``: never migrated) and after. Of
        processes migrating at once, one finds the revision it started from; the others
        find the work done (before, the revision was read before the lock, and each said
        it had migrated).
    """
    if to is not None and is_below(to, await revision_at(url, schema)):
        before = await asyncio.to_thread(downgrade, url, schema, to)
    else:
        before = await asyncio.to_thread(upgrade, url, schema, to or "head")
    return before, await revision_at(url, schema)


def is_below(revision: str, current: str | None) -> bool:
    """Whether ``revision`` (one of :func:`known_revisions`) comes before ``current`` (a
    database's revision; ``None``, never migrated, comes before all)."""
    order = known_revisions()
    if current not in order:  # (never migrated; a newer version's is refused before)
        return False
    return order.index(revision) < order.index(current)


async def revision_at(url: str, schema: str | None = None) -> str | None:
    """The schema revision of the database at ``url`` (``None``: never migrated)."""
    db = await open_database(url, schema=schema)
    try:
        return await _revision(db)
    finally:
        await db.close()


async def open_current(url: str, schema: str | None = None) -> Database:
    """Open an existing database that a command only reads or edits (export, delete, the
    source of a copy), refusing one that is not at this code's schema revision (never
    migrated, a wrong ``database_schema``, or an older or newer version's) in one line
    that says what to do, rather than the driver's error on the first table it lacks.

    Raises:
        ConfigurationError: an unsupported URL, or no SQLite file there (none is made).
        SchemaNotCurrent: naming the database, its revision and this code's.
    """
    db = await open_database(url, schema=schema, existing=True)
    try:
        await require_current(db)
    except BaseException:
        await db.close()
        raise
    return db


async def _revision(db: Database) -> str | None:
    async with db.read() as reader:
        try:
            revision = (await reader.execute(select(_VERSION.c.version_num))).scalar()
        except Exception:  # (the driver's own error) no such table: never migrated
            revision = None
    return None if revision is None else str(revision)


async def refuse_newer(db: Database) -> None:
    """Refuse a database a newer version of Tertulia migrated (this code does not know its
    revision: migrating it cannot work, and serving it would misread its rows).

    Raises:
        SchemaNotCurrent: naming the database, its revision and this code's.
    """
    await _check_revision(db, head_only=False)


async def require_current(db: Database) -> None:
    """Refuse a database not at this code's schema revision.

    Raises:
        SchemaNotCurrent: naming the database, its revision and this code's, and what to do.
    """
    await _check_revision(db, head_only=True)


async def _check_revision(db: Database, *, head_only: bool) -> None:
    scripts = ScriptDirectory.from_config(alembic_config(db.url))
    head = scripts.get_current_head()
    revision = await _revision(db)
    where = db.place
    if revision is not None and revision not in {s.revision for s in scripts.walk_revisions()}:
        raise SchemaNewer(
            f"the database at {where} is at schema revision {revision}, which this version "
            f"(at {head}) does not know: a newer version of Tertulia migrated it; run that "
            f"version, or take the database back down with that version's `tertulia migrate "
            f"--to {head}` (or restore a backup taken before it)"
        )
    if head_only and revision != head:
        raise SchemaNotCurrent(
            f"the database at {where} is at schema revision "
            f"{revision or 'none (never migrated)'}, this "
            f"version's is {head}: run `tertulia migrate` on it first"
        )
