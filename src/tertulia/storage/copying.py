"""``tertulia copy``: the whole database into another, empty one.

The way from one process on SQLite to several on PostgreSQL: stop the server, copy, point
the settings at the new database, start. Everything is copied (conversations,
participants, every message with its ``seq``, sessions with their participations, bot
deliveries and bot states), so people keep their cookies and their conversations, and bot
deliveries left pending resume on the new database. Each conversation's message counter
(``last_seq``, which SQLite does not keep) is set from its messages, so numbering goes on.
Uploaded files stay where they are, in ``media_root``, which the messages name. The target
is a database of its own, elsewhere: it does not delete the files of a ``media_root`` its
source owns (tertulia/ownership.py).

The source is read in one read-only snapshot (a copy made while a server writes is the
database as it was at one moment; what comes after is not in it) and never written. The
target is brought to this code's schema first, must hold no rows, and is written in one
transaction: a copy that fails leaves it empty. Tables go in the order of their foreign
keys, each a page of rows at a time by its primary key, so memory holds one page however
large the database. On PostgreSQL the key sequences are then moved past the copied keys.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import (
    Table,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    text,
    tuple_,
    update,
)

from tertulia.errors import TertuliaError
from tertulia.storage.database import Connection, Database, check_url, open_database
from tertulia.storage.migrate import open_current, upgrade_async
from tertulia.storage.tables import conversations, messages, metadata

PAGE = 1000
"""Rows read and written per statement."""


class CopyRefused(TertuliaError):
    """The target is not empty."""

    code = "copy_refused"


async def copy_database(
    source_url: str,
    source_schema: str | None,
    target_url: str,
    target_schema: str | None,
    *,
    check_target: Callable[[str, str | None], Awaitable[None]] | None = None,
) -> dict[str, int]:
    """Copy every row of the source database into the (empty) target; returns the rows
    copied per table, in the order copied.

    Args:
        check_target: called with the target's URL and schema once the source is found
            fit, before the target is touched (a SQLite target's file is created then: a
            refused source leaves none behind).

    Raises:
        SchemaNotCurrent: the source's schema is not this code's.
        CopyRefused: the target holds rows.
        ConfigurationError: an unsupported URL (or a schema for a SQLite target), or no
            SQLite file at the source's.
    """
    check_url(target_url, target_schema)
    source = await open_current(source_url, source_schema)
    try:
        if check_target is not None:
            await check_target(target_url, target_schema)
        await upgrade_async(target_url, target_schema)
        target = await open_database(target_url, schema=target_schema)
        try:
            return await _copy(source, target)
        finally:
            await target.close()
    finally:
        await source.close()


async def _copy(source: Database, target: Database) -> dict[str, int]:
    copied: dict[str, int] = {}
    async with source.snapshot() as reader, target.write() as writer:
        for table in metadata.sorted_tables:
            if (
                await writer.execute(select(literal_column("1")).select_from(table).limit(1))
            ).first():
                raise CopyRefused(
                    f"the database at {target.place} already holds {table.name}: "
                    "copy into an empty database"
                )
        for table in metadata.sorted_tables:
            copied[table.name] = await _copy_table(reader, writer, table)
        await _recount_seqs(writer)
        if not target.is_sqlite:
            await _advance_sequences(writer)
    return copied


async def _recount_seqs(writer: Connection) -> None:
    """Set each conversation's ``last_seq`` to its highest ``seq``: PostgreSQL takes the
    next number from there, and SQLite (which counts in memory, from the highest ``seq``)
    leaves it at 0."""
    highest = (
        select(func.coalesce(func.max(messages.c.seq), 0))
        .where(messages.c.conversation_id == conversations.c.id)
        .scalar_subquery()
    )
    await writer.execute(update(conversations).values(last_seq=highest))


def _pages(table: Table) -> tuple[Any, Any]:
    """The statements that read ``table`` by its primary key: the first page, and the
    page after a key given as the parameters ``after_<column>``."""
    key = list(table.primary_key.columns)
    first = select(table).order_by(*key).limit(PAGE)
    after = [bindparam(f"after_{column.name}", type_=column.type) for column in key]
    if len(key) == 1:
        return first, first.where(key[0] > after[0])
    return first, first.where(tuple_(*key) > tuple_(*after))


async def _copy_table(reader: Connection, writer: Connection, table: Table) -> int:
    first, following = _pages(table)
    key = [column.name for column in table.primary_key.columns]
    adding = insert(table)
    total = 0
    rows = (await reader.execute(first)).all()
    while rows:
        await writer.execute(adding, [row._asdict() for row in rows])
        total += len(rows)
        last = rows[-1]._asdict()
        rows = (
            await reader.execute(following, {f"after_{name}": last[name] for name in key})
        ).all()
    return total


async def _advance_sequences(writer: Connection) -> None:
    """Move each integer key's sequence past the copied keys (PostgreSQL only; SQLite
    takes the next key after the largest)."""
    for table in metadata.sorted_tables:
        for column in table.primary_key.columns:
            if column.autoincrement is not True:
                continue
            highest = (await writer.execute(select(func.max(column)))).scalar()
            if highest is not None:
                await writer.execute(
                    text("SELECT setval(pg_get_serial_sequence(:table, :column), :value)"),
                    {"table": table.name, "column": column.name, "value": highest},
                )
