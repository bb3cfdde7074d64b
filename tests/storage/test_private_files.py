"""A SQLite database holds people's conversations and their sessions' keys (bearer
credentials): a new one, and its log, are readable by their owner only, whatever the umask,
as the server makes it, as `tertulia migrate` makes it, and as a `tertulia copy` backup
(found by QA: 0644)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tertulia.storage.database import open_database
from tertulia.storage.migrate import upgrade_async


@pytest.fixture
def lax_umask() -> Iterator[None]:
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def _others_may_read(path: Path) -> bool:
    return bool(stat.S_IMODE(path.stat().st_mode) & 0o077)


@pytest.mark.usefixtures("lax_umask")
async def test_a_new_database_and_its_log_are_the_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    await upgrade_async(f"sqlite+aiosqlite:///{path}")
    db = await open_database(f"sqlite+aiosqlite:///{path}")
    try:
        await db.ping()
        async with db.write() as conn:
            await conn.execute(text("CREATE TABLE t (x)"))
        files = [p for p in tmp_path.iterdir() if p.name.startswith("new.db")]
        assert {p.name for p in files} >= {"new.db", "new.db-wal"}
        assert [p.name for p in files if _others_may_read(p)] == []
    finally:
        await db.close()


@pytest.mark.usefixtures("lax_umask")
async def test_an_existing_databases_permissions_are_left_as_they_are(tmp_path: Path) -> None:
    """(An operator who shares a file with a backup group keeps doing so.)"""
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    db = await open_database(f"sqlite+aiosqlite:///{path}")
    await db.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
