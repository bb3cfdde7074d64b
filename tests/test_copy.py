"""``tertulia copy`` (tertulia/storage/copying.py): a whole SQLite database into an empty one, on
SQLite or PostgreSQL, after which a server on the copy serves people as before."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from support.rest import answered
from support.server import live_server
from tertulia.cli import copy
from tertulia.storage import copying
from tertulia.storage.migrate import upgrade


@pytest.fixture(params=[copying.PAGE, 2], ids=["page", "page-of-2"])
def page(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Also copied two rows at a time, so that paging by key (single and composite) is
    crossed."""
    monkeypatch.setattr(copying, "PAGE", request.param)
    return int(request.param)


def sqlite_source(make_settings: Any, tmp_path: Path) -> Any:
    url = f"sqlite+aiosqlite:///{tmp_path / 'source.db'}"
    return make_settings(database_url=url, database_schema=None)


@pytest.mark.parametrize("direction", ["from-sqlite", "to-sqlite"])
async def test_a_database_moves_whole(
    make_settings: Any,
    people: Any,
    tmp_path: Path,
    page: int,
    direction: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """From a SQLite file into the test's database (a new SQLite file, or a PostgreSQL
    schema), or from the test's database into a new SQLite file. After the copy a server
    on the target knows alice by her cookie, shows her the same history, and goes on where
    the source stopped: the next messages take the next ``seq`` and the next keys (on
    PostgreSQL, the sequences were moved past the copied ones), and a new conversation can
    be made."""
    source, target = sqlite_source(make_settings, tmp_path), make_settings()
    if direction == "to-sqlite":
        source, target = target, source
    async with live_server(source) as server:
        alice = people(server)
        assert (
            await alice.create(nickname="alice", name="moving", bots=["ECHO"])
        ).status_code == 201
        for name in ("bob", "carol"):  # (three sessions: pages of two cross the composite key)
            joining = await people(server).join(alice.conversation_id, nickname=name)
            assert joining.status_code == 200
        # (over REST, without a socket: no presence, so nothing is added once this is read)
        for text in ("one", "two", "three"):
            assert (await alice.post(type="T", text=text, local_id=text)).status_code == 201
            before = await answered(alice, text.upper())
    session = alice.session
    assert session

    assert await asyncio.to_thread(copy, source, target.database_url, target.database_schema) == 0
    summary = capsys.readouterr().err.strip()
    assert summary.startswith("tertulia: copied 1 conversation, ")
    assert f" {len(before)} messages, " in summary
    assert " 3 session participations into " in summary
    assert "_" not in summary.split(" into ")[0]  # (rows named in words, not tables)

    async with live_server(target) as server:
        again = people(server)
        again.http.cookies.set("sessionid", session)
        again.conversation_id, again.participant_id = alice.conversation_id, alice.participant_id
        assert (await again.history()).json()["results"] == before
        socket = await again.connect()
        await socket.say("four")
        answer = await socket.message(text="FOUR")
        assert answer["seq"] > before[-1]["seq"]
        after = (await again.history()).json()["results"]
        assert after[: len(before)] == before
        assert [m["seq"] for m in after] == list(range(1, len(after) + 1))

        bob = people(server)
        assert (await bob.create(nickname="bob", name="new", bots=["ECHO"])).status_code == 201
        assert (await bob.post(type="T", text="hi", local_id="b1")).status_code == 201


async def test_only_into_an_empty_database(
    make_settings: Any, people: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A target that holds anything is refused with one line and left as it was."""
    source = sqlite_source(make_settings, tmp_path)
    target = make_settings()
    for settings, name in ((source, "from the source"), (target, "already there")):
        async with live_server(settings) as server:
            person = people(server)
            assert (await person.create(nickname="alice", name=name, bots=[])).status_code == 201

    assert await asyncio.to_thread(copy, source, target.database_url, target.database_schema) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tertulia: the database at ")
    assert err.endswith("already holds conversations: copy into an empty database")
    # (multi-process QA: the schema was left out, so two schemas' refusals read the same)
    assert ("(schema " in err) == (target.database_schema is not None)
    if target.database_schema:
        assert f"(schema {target.database_schema}) already holds" in err
    async with live_server(target) as server:
        listed = (await people(server).http.get("/conversations/")).json()
        names = [c["name"] for c in (listed["results"] if isinstance(listed, dict) else listed)]
        assert names == ["already there"]


def test_a_source_behind_this_schema_is_refused(
    make_settings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A source database at an earlier migration is not read (its rows would not fit):
    one line says to migrate it first."""
    source = sqlite_source(make_settings, tmp_path)
    upgrade(source.database_url, None, "0004")
    target = tmp_path / "never-made.db"
    assert copy(source, f"sqlite+aiosqlite:///{target}", None) == 1
    err = capsys.readouterr().err.strip()
    assert "is at schema revision 0004" in err
    assert err.endswith("run `tertulia migrate` on it first")
    assert not target.exists()  # (before: an empty target file was left behind)


def test_a_missing_source_file_is_a_configuration_error(
    make_settings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No SQLite file at the source's URL: status 2, and no file made there."""
    source = sqlite_source(make_settings, tmp_path)
    target = make_settings()
    assert copy(source, target.database_url, target.database_schema) == 2
    assert capsys.readouterr().err.startswith("tertulia: configuration error: ")
    assert not (tmp_path / "source.db").exists()


@pytest.mark.parametrize(
    ("target", "schema", "said"),
    [
        ("garbage", None, "not a database URL"),
        ("mysql://u@h/db", None, "unsupported database 'mysql'"),
        ("sqlite+aiosqlite:///{tmp}/t.db", "qa", "--target-schema is for PostgreSQL"),
    ],
)
def test_a_target_that_cannot_be_is_a_configuration_error(
    make_settings: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    target: str,
    schema: str | None,
    said: str,
) -> None:
    """A target URL that does not parse, of another database, or a SQLite one with
    ``--target-schema``: one line, status 2, nothing made (QA: before, ``ArgumentError``
    or SQLite's ``near "SCHEMA": syntax error`` with SQLAlchemy's link, status 1)."""
    source = sqlite_source(make_settings, tmp_path)
    assert copy(source, target.format(tmp=tmp_path), schema) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tertulia: configuration error: ")
    assert said in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "t.db").exists()
