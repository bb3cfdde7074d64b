"""The conversation lists count participants for their page's rows only, through an index:
a count grouped over the whole ``participants`` table scanned every participant of the
installation for every list (soak QA: ``?mine=true`` for a session in 3 conversations, 1 ms
with an empty installation, 78 ms with 100,000 other conversations; on SQLite the scan held
up every other request and message meanwhile). SQLite's plans are read here; PostgreSQL's
planner may prefer a scan on tables this small, so its plans would prove nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.dialects import sqlite

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
