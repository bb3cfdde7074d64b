"""The conversation lists count participants for their page's rows only, through an index:
a count grouped over the whole ``participants`` table scanned every participant of the
installation for every list (soak QA: ``?mine=true`` for a session in 3 conversations, 1 ms
with an empty installation, 78 ms with 100,000 other conversations; on SQLite the scan held
up every other request and message meanwhile). SQLite's plans are read here, and the
rooms list's order read off its index on both databases."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from support.environment import DatabaseTarget
from tertulia.storage import conversations as conv_repo
from tertulia.storage.migrate import upgrade_async


def plan(path: Path, statement: Any, **params: Any) -> list[str]:
    """SQLite's query plan for ``statement`` with ``params``, one step per line."""
    compiled = statement.compile(dialect=sqlite.dialect())
    values = [params.get(name, compiled.params.get(name)) for name in compiled.positiontup or ()]
    with sqlite3.connect(path) as db:
        return [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {compiled}", values)]


@pytest.mark.parametrize(
    ("statement", "params"),
    [
        (lambda: conv_repo._session_page(), {"session_key": "k", "offset": 0, "limit": 20}),
        (lambda: conv_repo._page("sqlite"), {"offset": 0, "limit": 20}),
    ],
    ids=["mine", "rooms"],
)
async def test_a_list_counts_participants_through_the_index(
    tmp_path: Path, statement: Any, params: dict[str, Any]
) -> None:
    path = tmp_path / "plans.db"
    await upgrade_async(f"sqlite+aiosqlite:///{path}", None)
    steps = plan(path, statement(), **params)
    on_participants = [s for s in steps if "participants" in s and "session" not in s]
    assert on_participants, steps
    assert all(s.startswith("SEARCH") for s in on_participants), steps


async def test_the_rooms_list_is_read_in_its_order_off_an_index(tmp_path: Path) -> None:
    """A page of the rooms list reads its rows off ``ix_conversations_by_name``: sorted,
    each page sorted every conversation (soak QA: 17.8 ms at 100,000, 190 ms half-way)."""
    path = tmp_path / "plans.db"
    await upgrade_async(f"sqlite+aiosqlite:///{path}", None)
    steps = plan(path, conv_repo._page("sqlite"), offset=40, limit=20)
    page = steps[: steps.index("SCAN anon_1")]  # the inner page; the outer sorts its 20 rows
    assert "SCAN conversations USING INDEX ix_conversations_by_name" in page, steps
    assert not any("TEMP B-TREE" in s for s in page), steps


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_postgresql_reads_the_rooms_list_off_its_index(database: DatabaseTarget) -> None:
    """The same on PostgreSQL, whose index names the query's collation and NULLS FIRST: with
    sorting made as dear as the planner allows, a page is read off the index, not sorted
    (on so small a table the planner would otherwise pick a scan and a sort, proving
    nothing)."""
    await upgrade_async(database.url, database.schema)
    compiled = conv_repo._page("postgresql").compile(dialect=asyncpg_dialect())
    values = [{"offset": 40, "limit": 20}[name] for name in compiled.positiontup or ()]
    parts = urlsplit(database.url.replace("+asyncpg", ""))
    conn = await asyncpg.connect(
        host=parts.hostname,
        port=parts.port,
        user=parts.username,
        database=parts.path.lstrip("/"),
        server_settings={"search_path": database.schema or "public"},
    )
    try:
        await conn.execute("SET enable_sort = off; SET enable_seqscan = off")
        steps = [row[0] for row in await conn.fetch(f"EXPLAIN {compiled}", *values)]
    finally:
        await conn.close()
    page = steps[: next(i for i, s in enumerate(steps) if "SubPlan" in s)]  # not the counts
    assert any("Index Scan using ix_conversations_by_name_c on conversations" in s for s in page)
    assert not any("Sort" in s for s in page), steps
