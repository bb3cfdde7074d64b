"""The Alembic migrations build exactly the schema the code expects."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from alembic import command

from support.environment import DatabaseTarget
from tertulia.storage.migrate import alembic_config, upgrade


def test_migrations_match_the_tables(database: DatabaseTarget) -> None:
    """After upgrading to head, autogenerate finds nothing left to migrate."""
    upgrade(database.url, database.schema)
    command.check(alembic_config(database.url, database.schema))


def test_upgrading_twice_is_harmless(database: DatabaseTarget) -> None:
    """Running migrate on an up-to-date database changes nothing and does not fail."""
    upgrade(database.url, database.schema)
    upgrade(database.url, database.schema)


def test_downgrade_and_upgrade_again(database: DatabaseTarget) -> None:
    """The initial revision can be undone and redone (a release can be rolled back)."""
    upgrade(database.url, database.schema)
    command.downgrade(alembic_config(database.url, database.schema), "base")
    upgrade(database.url, database.schema)
    command.check(alembic_config(database.url, database.schema))


async def test_upgrade_from_async_code(database: DatabaseTarget) -> None:
    """The lifespan's async wrapper migrates without blocking the event loop's thread."""
    from tertulia.storage.migrate import upgrade_async

    await asyncio.wait_for(upgrade_async(database.url, database.schema), 60)
    await asyncio.to_thread(command.check, alembic_config(database.url, database.schema))


def test_processes_starting_together_migrate_once(database: DatabaseTarget) -> None:
    """Several server processes starting at once (``auto_migrate`` is on by default) each
    migrate the same fresh database: they take turns, and all succeed."""
    script = "import sys; from tertulia.storage.migrate import upgrade; upgrade(*sys.argv[1:])"
    args = [database.url] + ([database.schema] if database.schema else [])
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    outcomes = [(p.communicate(timeout=120)[1].decode()[-2000:], p.returncode) for p in processes]
    assert [code for _, code in outcomes] == [0, 0, 0], outcomes
    command.check(alembic_config(database.url, database.schema))
