"""The commands that read or edit a database they do not migrate (``export``, ``delete``,
``copy``'s source) refuse one that is not at this code's schema in one line that says what
to do: a wrong ``database_schema``, say. Before, export and delete answered with the
driver's error on the first table they lacked (``UndefinedTableError: relation
"conversations" does not exist``), or, for ``delete ID``, a misleading "no conversation"."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update

from tertulia.cli import delete, export
from tertulia.preflight import check_services
from tertulia.settings import Settings
from tertulia.storage.database import open_database
from tertulia.storage.migrate import _VERSION, SchemaNotCurrent, open_current, upgrade_async
from tertulia.storage.sqlite import sqlite_path

SOME_ID = "0190c5a0-0000-7000-8000-000000000000"


@pytest.mark.parametrize("command", ["export", "delete ID", "delete --idle-before"])
def test_a_database_never_migrated_is_refused_in_one_line(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str], command: str
) -> None:
    settings = make_settings()  # a fresh database (file or schema) no server has migrated
    if settings.database_url.startswith("sqlite"):
        sqlite3.connect(sqlite_path(settings.database_url)).close()  # there, but empty
    run: dict[str, Callable[[], Any]] = {
        "export": lambda: export(settings, [], None),
        "delete ID": lambda: delete(settings, [SOME_ID]),
        "delete --idle-before": lambda: delete(settings, [], datetime.now(UTC)),
    }
    assert run[command]() == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tertulia: the database at "), err
    assert "is at schema revision none (never migrated)" in err
    assert err.endswith("run `tertulia migrate` on it first")
    if settings.database_schema:
        assert f"(schema {settings.database_schema})" in err


async def test_a_server_that_does_not_migrate_refuses_a_database_not_at_its_revision(
    make_settings: Callable[..., Settings],
) -> None:
    """``auto_migrate = false`` (several processes, one ``tertulia migrate`` per release):
    the start refuses a database never migrated in one line, rather than a traceback on
    the first table it lacks, or serving an older schema (found by QA)."""
    settings = make_settings(auto_migrate=False)
    with pytest.raises(SchemaNotCurrent, match=r"never migrated.*run `tertulia migrate`"):
        await check_services(settings)
    await upgrade_async(settings.database_url, settings.database_schema)
    await check_services(settings)


async def test_a_database_a_newer_version_migrated_is_refused_by_every_command(
    make_settings: Callable[..., Settings],
) -> None:
    """After a rollback, the database is at a revision this code does not know: migrate
    and serve cannot work on it, and running `tertulia migrate` would not help (found by
    QA: a traceback, and export advised migrating)."""
    settings = make_settings()
    await upgrade_async(settings.database_url, settings.database_schema)
    db = await open_database(settings.database_url, schema=settings.database_schema)
    try:
        async with db.write() as conn:
            await conn.execute(update(_VERSION).values(version_num="9999"))
    finally:
        await db.close()
    for server in (True, False):  # serve (auto_migrate), migrate
        with pytest.raises(SchemaNotCurrent, match=r"revision 9999.*newer version of Tertulia"):
            await check_services(settings, broker=server)
    with pytest.raises(SchemaNotCurrent, match="newer version of Tertulia"):
        await open_current(settings.database_url, settings.database_schema)
