"""Which database owns ``media_root``'s files (tertulia/ownership.py): a copy that shares
the original's ``media_root`` (``tertulia copy``, a backup restored elsewhere, a staging
server) never deletes them, by ``tertulia delete`` or by retention; the original still
does, also once restored in place from a backup."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from support.aging import age
from support.blab import Person
from support.bots import watch_logs
from support.server import live_server
from tertulia.cli import copy, delete, main
from tertulia.files.store import OWNER_MARK, LocalFileStore
from tertulia.ownership import database_location
from tertulia.storage.database import open_database
from test_delete import files_of, with_a_file


def place(settings: Any) -> str:
    return database_location(settings.database_url, settings.database_schema)


def migrate(settings: Any, where: Path) -> int:
    """``tertulia migrate`` with ``settings``' database and media_root."""
    config = where / "migrate.toml"
    schema = f'database_schema = "{settings.database_schema}"\n' if settings.database_schema else ""
    config.write_text(
        f'database_url = "{settings.database_url}"\n{schema}media_root = "{settings.media_root}"\n',
        encoding="utf-8",
    )
    return main(["migrate", "--config", str(config)])


def again(person: Person, before: Person) -> Person:
    """``person`` (on a server started again) with ``before``'s session and conversation."""
    assert before.session is not None
    person.http.cookies.set("sessionid", before.session)
    person.conversation_id, person.participant_id = before.conversation_id, before.participant_id
    return person


async def attach(person: Person, local_id: str) -> str:
    """Another attachment in the person's conversation; its ``file_url``."""
    sent = await person.http.post(
        f"/conversations/{person.conversation_id}/messages/",
        data={"type": "A", "local_id": local_id},
        files={"file": (f"{local_id}.txt", b"more notes", "text/plain")},
    )
    assert sent.status_code == 201, sent.text
    return str(sent.json()["file_url"])


async def test_a_copy_sharing_media_root_deletes_none_of_the_files(
    make_settings: Any, people: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: the operations guide's backup (``tertulia copy`` into a file), then ``tertulia
    delete`` run on the backup with the same ``media_root``, removed the live conversation's
    files, one uploaded after the copy included: the live server answered 404 for files its
    messages name. Now the backup's deletion keeps them and says why; the live server
    serves both."""
    live = make_settings()
    async with live_server(live) as server:
        alice = people(server)
        conversation = await with_a_file(alice, "alice", [])
    assert (tmp_path / "media" / OWNER_MARK).read_text().strip() == place(live)

    backup_url = f"sqlite+aiosqlite:///{tmp_path / 'backup.db'}"
    assert await asyncio.to_thread(copy, live, backup_url, None) == 0
    said = capsys.readouterr().err
    assert f"Remove {(tmp_path / 'media' / OWNER_MARK).resolve()} before its first start" in said
    backup = make_settings(database_url=backup_url, database_schema=None)

    async with live_server(live) as server:
        alice = again(people(server), alice)
        later = await attach(alice, "f2")
    before = files_of(tmp_path / "media", conversation)
    assert len(before) == 2

    assert await asyncio.to_thread(delete, backup, [conversation]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("tertulia: their files were kept: media_root ")
    assert f"holds the files of the database at {place(live)} " in err[0]
    assert err[1].startswith("tertulia: deleted 1 conversation, ")
    assert err[1].endswith(" messages, 0 files")
    assert files_of(tmp_path / "media", conversation) == before

    async with live_server(live) as server:
        alice = again(people(server), alice)
        history = (await alice.history()).json()["results"]
        urls = [m["file_url"] for m in history if m.get("file_url")]
        assert later in urls
        assert len(urls) == 2
        for url in urls:
            assert (await alice.http.get(server.base_url + url)).status_code == 200


async def test_a_server_on_a_copy_sharing_media_root_says_so_and_retention_keeps_the_files(
    make_settings: Any, people: Any, tmp_path: Path
) -> None:
    """The copy's server warns at its start (with what to do if it replaced the original),
    and its retention (its first sweep, at that start) deletes the idle conversation's rows
    but not its files."""
    live = make_settings()
    async with live_server(live) as server:
        conversation = await with_a_file(people(server), "alice", [])
    backup_url = f"sqlite+aiosqlite:///{tmp_path / 'backup.db'}"
    assert await asyncio.to_thread(copy, live, backup_url, None) == 0
    backup = make_settings(database_url=backup_url, database_schema=None, retention_days=1)
    db = await open_database(backup_url, existing=True)
    try:
        await age(db, conversation)
    finally:
        await db.close()

    with watch_logs() as logs:
        async with live_server(backup) as server:
            warned = await logs.wait_for(lambda e: "another database" in e["event"])
            assert warned["owner"] == place(live)
            assert f"remove {OWNER_MARK}" in warned["event"]
            swept = await logs.wait_for(
                lambda e: e["event"] == "retention: idle conversations deleted"
            )
            kept = await logs.wait_for(lambda e: e["event"].startswith("retention: files kept"))
            assert (await server.app.state.retention.sweep()).conversations == 0
    assert (swept["conversations"], swept["files"]) == (1, 0)
    assert kept["owner"] == place(live)
    assert len(files_of(tmp_path / "media", conversation)) == 1


async def test_the_owner_still_deletes_and_an_unmarked_root_is_marked_by_the_first(
    make_settings: Any, people: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A root without a mark (files from before this version) is marked by the first
    database to look, here a deletion, which then deletes as before."""
    live = make_settings()
    async with live_server(live) as server:
        conversation = await with_a_file(people(server), "alice", [])
    (tmp_path / "media" / OWNER_MARK).unlink()

    assert await asyncio.to_thread(delete, live, [conversation]) == 0
    assert capsys.readouterr().err.strip().endswith(" messages, 1 file")
    assert files_of(tmp_path / "media", conversation) == []
    assert (tmp_path / "media" / OWNER_MARK).read_text().strip() == place(live)


def test_one_mark_wins_when_many_claim_at_once(tmp_path: Path) -> None:
    """Many claims at once on an unmarked root, each for its own database: all are told
    the same owner, the first to link its mark in place; no claim's file is left."""
    store = LocalFileStore(tmp_path)
    ids = [f"{n:032x}" for n in range(16)]
    start = threading.Barrier(len(ids))

    def claim(one: str) -> str:
        start.wait(timeout=30)
        return asyncio.run(store.claim(one))

    with ThreadPoolExecutor(len(ids)) as threads:
        owners = list(threads.map(claim, ids, timeout=30))
    assert len(set(owners)) == 1
    assert owners[0] in ids
    assert [p.name for p in tmp_path.iterdir()] == [OWNER_MARK]


async def test_no_root_no_mark(tmp_path: Path) -> None:
    """A store that does not exist yet holds no files: nothing is made for a claim."""
    assert await LocalFileStore(tmp_path / "none").claim("a" * 32) == "a" * 32
    assert not (tmp_path / "none").exists()


async def test_a_file_backup_elsewhere_deletes_none_and_one_restored_in_place_does(
    make_settings: Any, people: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """(Upgrade QA: the database's own id, which a file backup keeps, did not tell a backup
    from its original, and a backup restored in place lost the files.) The mark names where
    the owner is: a backup of the SQLite file (``sqlite3 .backup``) used elsewhere with the
    same ``media_root`` keeps the files; the same backup restored over the original deletes
    them."""
    if not make_settings().is_sqlite:
        pytest.skip("a SQLite file's backup")
    live = make_settings()
    async with live_server(live) as server:
        conversation = await with_a_file(people(server), "alice", [])
    live_file = Path(live.database_url.split("///", 1)[1])
    for name in ("bk.db", "restore.db"):
        with sqlite3.connect(live_file) as source, sqlite3.connect(tmp_path / name) as backup:
            source.backup(backup)
    elsewhere = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'bk.db'}")
    assert await asyncio.to_thread(delete, elsewhere, [conversation]) == 0
    assert "their files were kept" in capsys.readouterr().err
    assert len(files_of(tmp_path / "media", conversation)) == 1

    shutil.copyfile(tmp_path / "restore.db", live_file)  # (restored in place)
    for suffix in ("-wal", "-shm"):
        Path(f"{live_file}{suffix}").unlink(missing_ok=True)
    assert await asyncio.to_thread(delete, live, [conversation]) == 0
    assert capsys.readouterr().err.strip().endswith(" messages, 1 file")
    assert files_of(tmp_path / "media", conversation) == []


def test_a_postgresql_database_is_named_by_host_port_name_and_schema() -> None:
    """Neither the user nor the password is in the mark; the schema is."""
    assert (
        database_location("postgresql+asyncpg://u:secret@DB.example:6543/chat", "staging")
        == "postgresql://db.example:6543/chat?schema=staging"
    )
    assert database_location("postgresql+asyncpg://u@db/chat") == "postgresql://db:5432/chat"


async def test_migrate_marks_media_root_and_a_copy_of_a_copy_is_told_whose_files_they_are(
    make_settings: Any, people: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tertulia migrate`` marks an unmarked media_root as its database's (an upgrade, done
    on the live installation first, marks it before a copy could); on a copy it says whose
    the files are. A copy made from a copy does not call the files its source's (upgrade
    QA: it advised removing the mark, which would hand the live files to the copy)."""
    live = make_settings()
    async with live_server(live) as server:
        await with_a_file(people(server), "alice", [])
    (tmp_path / "media" / OWNER_MARK).unlink()
    assert await asyncio.to_thread(migrate, live, tmp_path) == 0
    assert (tmp_path / "media" / OWNER_MARK).read_text().strip() == place(live)

    first = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", database_schema=None
    )
    assert await asyncio.to_thread(copy, live, first.database_url, None) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(migrate, first, tmp_path) == 0
    assert f"holds the files of the database at {place(live)}" in capsys.readouterr().err
    second = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    assert await asyncio.to_thread(copy, first, second, None) == 0
    said = capsys.readouterr().err
    assert f"holds the files of the database at {place(live)}: neither the source" in said
    assert "Remove" not in said
