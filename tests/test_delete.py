"""``tertulia delete`` (tertulia/deleting.py): a conversation erased whole, with its files,
on both databases; the others, and the people's sessions, stay."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from external.fakes import closed_port
from support.aging import age
from support.blab import Person
from support.server import live_server
from tertulia.cli import delete, main
from tertulia.storage import conversations as conv_repo
from tertulia.storage.database import open_database
from tertulia.storage.tables import conversations, messages

MISSING = "0190c5a0-0000-7000-8000-000000000000"


async def with_a_file(person: Person, name: str, bots: list[str]) -> str:
    """A conversation with a text and an attachment; its id."""
    assert (await person.create(nickname=name, name=name, bots=bots)).status_code == 201
    assert (await person.post(type="T", text="hello", local_id="t1")).status_code == 201
    sent = await person.http.post(
        f"/conversations/{person.conversation_id}/messages/",
        data={"type": "A", "local_id": "f1"},
        files={"file": ("notes.txt", b"some notes", "text/plain")},
    )
    assert sent.status_code == 201, sent.text
    assert person.conversation_id is not None
    return person.conversation_id


def files_of(media_root: Path, conversation_id: str) -> list[Path]:
    directory = media_root / "chat" / f"chat_{conversation_id.replace('-', '')}"
    return sorted(directory.iterdir()) if directory.exists() else []


async def test_a_conversation_goes_whole(
    make_settings: Any, people: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """alice's conversation is erased (rows and file, an unknown id reported with status
    1); bob's stays as it was, files included, and alice's session still starts others."""
    settings = make_settings()
    media = Path(settings.media_root)
    async with live_server(settings) as server:
        alice, bob = people(server), people(server)
        # (alice's with ECHO: deliveries go too; bob's without, so nothing comes later)
        gone = await with_a_file(alice, "alice", ["ECHO"])
        kept = await with_a_file(bob, "bob", [])
        kept_history = (await bob.history()).json()["results"]
    assert len(files_of(media, gone)) == 1
    kept_files = files_of(media, kept)
    assert len(kept_files) == 1

    assert await asyncio.to_thread(delete, settings, [gone, MISSING, gone]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"tertulia: no conversation {MISSING}"
    assert err[1].startswith("tertulia: deleted 1 conversation, ")
    assert err[1].endswith(" messages, 1 file")
    assert not (media / "chat" / f"chat_{gone.replace('-', '')}").exists()
    assert files_of(media, kept) == kept_files

    async with live_server(settings) as server:
        rooms = (await people(server).http.get("/conversations/")).json()
        listed = rooms["results"] if isinstance(rooms, dict) else rooms
        assert [c["id"] for c in listed] == [kept]
        alice_again, bob_again = people(server), people(server)
        for person, before in ((alice_again, alice), (bob_again, bob)):
            person.http.cookies.set("sessionid", before.session)
            person.conversation_id = before.conversation_id
        assert (await alice_again.history()).status_code in (403, 404)
        assert (await alice_again.create(nickname="alice", bots=[])).status_code == 201
        assert (await bob_again.history()).json()["results"] == kept_history
        [attached] = [m for m in kept_history if m.get("file_url")]
        file = await bob_again.http.get(server.base_url + attached["file_url"])
        assert file.content == b"some notes"


async def test_idle_conversations_go_by_their_last_message(
    make_settings: Any, people: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--idle-before DATE``: every conversation whose last message is older goes; one
    with a recent message stays, however old the conversation."""
    settings = make_settings()
    async with live_server(settings) as server:
        ids = {}
        for name in ("quiet", "lively"):
            person = people(server)
            assert (await person.create(nickname=name, name=name, bots=[])).status_code == 201
            ids[name] = person.conversation_id
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    db = await open_database(settings.database_url, schema=settings.database_schema)
    try:
        async with db.write() as conn:
            await conn.execute(update(conversations).values(created_at=long_ago))
            await conn.execute(
                update(messages)
                .where(messages.c.conversation_id == ids["quiet"])
                .values(time=long_ago)
            )
    finally:
        await db.close()

    cutoff = datetime(2021, 1, 1, tzinfo=UTC)
    assert await asyncio.to_thread(delete, settings, [], cutoff) == 0
    assert capsys.readouterr().err.startswith("tertulia: deleted 1 conversation, ")
    async with live_server(settings) as server:
        rooms = (await people(server).http.get("/conversations/")).json()
        listed = rooms["results"] if isinstance(rooms, dict) else rooms
        assert [c["id"] for c in listed] == [ids["lively"]]


def test_nothing_named_is_an_error(make_settings: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Neither ids nor ``--idle-before``: status 2 and one line, nothing deleted."""
    path = Path(make_settings().media_root).parent / "tertulia.toml"
    path.write_text('database_url = "sqlite+aiosqlite:///nothing.db"\n', encoding="utf-8")
    assert main(["delete", "--config", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "tertulia: delete needs conversation ids or --idle-before"
    )


async def test_an_idle_conversation_written_to_since_it_was_listed_is_kept(
    make_settings: Any, people: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """``--idle-before``: a conversation listed as idle that got a message before its turn
    came is checked again in its own transaction and kept, with that message (here the
    listing is made stale on purpose: it names a conversation written to just now)."""
    settings = make_settings()
    async with live_server(settings) as server:
        person = people(server)
        assert (await person.create(nickname="al", name="woken", bots=[])).status_code == 201
        assert (await person.post(type="T", text="late news", local_id="n1")).status_code == 201
        woken = person.conversation_id

    async def stale(conn: Any, before: datetime, **page: Any) -> tuple[list[str], None]:
        return [woken], None  # as a listing made a moment before "late news" would have

    monkeypatch.setattr(conv_repo, "idle_conversation_ids", stale)
    cutoff = datetime(2021, 1, 1, tzinfo=UTC)
    assert await asyncio.to_thread(delete, settings, [], cutoff) == 0
    assert capsys.readouterr().err.strip() == (
        "tertulia: deleted 0 conversations, 0 messages, 0 files, "
        "1 kept (written to since they were listed idle)"
    )
    async with live_server(settings) as server:
        again = people(server)
        again.http.cookies.set("sessionid", person.session)
        again.conversation_id = woken
        texts = [m.get("text") for m in (await again.history()).json()["results"]]
        assert "late news" in texts


async def test_an_unreachable_redis_deletes_nothing(
    make_settings: Any, people: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a Redis broker configured but not answering, the deletion could not be
    announced to the servers: nothing is deleted, one line naming the broker, as `serve`
    says it, status 1."""
    settings = make_settings()
    async with live_server(settings) as server:
        person = people(server)
        assert (await person.create(nickname="al", name="kept", bots=[])).status_code == 201
    broker = f"redis://127.0.0.1:{closed_port()}/0"
    unreachable = settings.model_copy(update={"broker_url": broker})
    assert await asyncio.to_thread(delete, unreachable, [person.conversation_id]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"tertulia: cannot reach the broker at {broker}: ")
    assert len(err.splitlines()) == 1
    async with live_server(settings) as server:
        listed = (await people(server).http.get("/conversations/")).json()
        rooms = listed["results"] if isinstance(listed, dict) else listed
        assert [c["id"] for c in rooms] == [person.conversation_id]


async def test_idle_conversations_are_listed_a_page_at_a_time(
    make_settings: Any, people: Any
) -> None:
    """The listing reads a page of conversations per statement (the server's loop is held
    for one page at a time): pages of one, in id order, give the idle ones and say when
    the last page was read."""
    settings = make_settings()
    async with live_server(settings) as server:
        ids = []
        for name in ("a", "b", "c"):
            person = people(server)
            assert (await person.create(nickname=name, name=name, bots=[])).status_code == 201
            ids.append(person.conversation_id)
        db = server.registry.db
        for old in (ids[0], ids[2]):
            await age(db, old)
        cutoff = datetime(2021, 1, 1, tzinfo=UTC)
        pages = []
        after: str | None = ""
        while after is not None:
            async with db.read() as conn:
                page, after = await conv_repo.idle_conversation_ids(
                    conn, cutoff, after=after, limit=1
                )
            pages.append(page)
    assert pages == [[ids[0]], [], [ids[2]], []]
