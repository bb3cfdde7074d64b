"""The Alembic migrations build exactly the schema the code expects."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from support.environment import DatabaseTarget
from tertulia.domain.ids import new_id
from tertulia.domain.model import (
    Approval,
    Conversation,
    Message,
    MessageType,
    Participant,
    ParticipantType,
)
from tertulia.storage import conversations as conv_repo
from tertulia.storage import messages as msg_repo
from tertulia.storage import sessions as session_repo
from tertulia.storage.database import open_database
from tertulia.storage.migrate import alembic_config, upgrade, upgrade_async


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


async def _fill(database: DatabaseTarget) -> tuple[str, str]:
    """A conversation with a person, a bot, a message and a session, written by this code;
    returns the conversation's id and the person's."""
    conversation = Conversation(id=new_id(), name="kept", created_at=datetime.now(UTC))
    person = Participant(new_id(), conversation.id, "ana", ParticipantType.HUMAN)
    bot = Participant(new_id(), conversation.id, "ECHO", ParticipantType.BOT, bot_name="ECHO")
    now = datetime.now(UTC)
    db = await open_database(database.url, schema=database.schema)
    try:
        async with db.write() as conn:
            await conv_repo.insert_conversation(conn, conversation)
            await conv_repo.insert_participants(conn, [person, bot], first_ordinal=0)
            message = Message(
                id=new_id(),
                conversation_id=conversation.id,
                type=MessageType.TEXT,
                time=now,
                approval=Approval.AUTOMATIC,
                sender_id=person.id,
                sent_by_human=True,
                text="olá",
            )
            await msg_repo.insert_message(conn, message)
            await session_repo.create_session(conn, "k" * 32, now=now, expires_at=now)
            await session_repo.add_participation(conn, "k" * 32, conversation.id, person.id)
    finally:
        await db.close()
    return conversation.id, person.id


async def _people(database: DatabaseTarget, conversation_id: str) -> list[str]:
    db = await open_database(database.url, schema=database.schema)
    try:
        async with db.read() as conn:
            return [p.name for p in await conv_repo.list_participants(conn, conversation_id)]
    finally:
        await db.close()


async def test_a_database_with_rows_goes_down_and_up_again(database: DatabaseTarget) -> None:
    """Every revision is undone and redone on a database that holds rows referring to each
    other (on SQLite a batch migration copies a table: dropping the old one was refused
    while rows of other tables referred to it, so 0006 could not be applied to any database
    in use)."""
    await upgrade_async(database.url, database.schema)
    conversation_id, _ = await _fill(database)
    config = alembic_config(database.url, database.schema)
    for revision in ("0005", "0003", "0001"):
        await asyncio.to_thread(command.downgrade, config, revision)
        await upgrade_async(database.url, database.schema)
        assert await _people(database, conversation_id) == ["ana", "ECHO"]
    await asyncio.to_thread(command.check, config)


async def test_rows_referring_to_nothing_already_do_not_stop_a_start(
    database: DatabaseTarget,
) -> None:
    """A SQLite database holding a row that refers to nothing (a hand edit, a restored
    backup) still starts and migrates: only rows a revision itself would leave so refuse it
    (the check is made when a revision runs, and it used to refuse every start)."""
    if database.kind != "sqlite":
        pytest.skip("SQLite's foreign keys are off while migrating; PostgreSQL's never are")
    await upgrade_async(database.url, database.schema)
    conversation_id, person_id = await _fill(database)
    path = make_url(database.url).database
    assert path is not None
    with sqlite3.connect(path) as raw:  # (foreign keys off, as SQLite opens by default)
        raw.execute(
            "INSERT INTO session_participations (session_key, conversation_id, participant_id)"
            " VALUES (?, ?, ?)",
            ("k" * 32, "no-such-conversation", person_id),
        )
    await upgrade_async(database.url, database.schema)  # nothing to run
    config = alembic_config(database.url, database.schema)
    await asyncio.to_thread(command.downgrade, config, "0005")
    await upgrade_async(database.url, database.schema)  # a revision runs
    assert await _people(database, conversation_id) == ["ana", "ECHO"]


def test_of_migrations_run_at_once_one_says_it_migrated(database: DatabaseTarget) -> None:
    """QA: four ``tertulia migrate`` at once on a fresh database each said ``migrated from
    schema revision none``: the revision was read before the lock they take turns on. Now
    it is read under it: one migrated, the others found the work done."""
    env = {**os.environ, "TERTULIA_DATABASE_URL": database.url, "TERTULIA_LOG_FORMAT": "json"}
    if database.schema:
        env["TERTULIA_DATABASE_SCHEMA"] = database.schema
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tertulia", "migrate"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(4)
    ]
    said = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, said
    head = ScriptDirectory.from_config(alembic_config(database.url)).get_current_head()
    assert sorted(out.strip() for out, _ in said) == [
        *[f"database already up to date (schema revision {head})"] * 3,
        f"database migrated from schema revision none to {head}",
    ]
