"""``tertulia export`` (tertulia/exporting.py): every stored conversation as a JSON line, with
what people saw and what they did not (hidden bot answers, the manager's commands), on both
databases, read while the server runs."""

from __future__ import annotations

import asyncio
import io
import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from support.managers import Room, manager_bots
from support.server import live_server
from tertulia import exporting, preflight
from tertulia.cli import export, main


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture(params=[exporting.PAGE, 2], ids=["page", "page-of-2"])
def page(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Also read by pages of 2 (messages and conversations), and spooled to disk past 100
    bytes, so that paging and spooling are crossed."""
    monkeypatch.setattr(exporting, "PAGE", request.param)
    if request.param == 2:
        monkeypatch.setattr(exporting, "SPOOL", 100)
    return int(request.param)


async def test_a_conversation_is_exported_whole(
    make_settings: Any, people: Any, tmp_path: Path, page: int
) -> None:
    """Under CalcOrEcho, alice's 1/0 gets the calculator's "?", which the manager never
    approves (it sends the text to ECHO instead). The export has the conversation, its
    participants, and every message in the order stored: the visible ones as the wire shows
    them (the same as the history), the "?" and the manager's commands flagged as never
    shown, and ECHO's answer with when it was approved."""
    bots = manager_bots(
        "CalcOrEchoManagerBot", calculator_bot_name="Calculator", echo_bot_name="ECHO"
    )
    settings = make_settings(manager="Manager", bots=bots)
    async with live_server(settings) as server:
        room = await Room.open(server, people, ["ECHO", "Calculator"], socket_manager=False)
        socket = room.sockets["alice"]
        sent = await socket.message(local_id=await socket.say("1/0"))
        echoed = await socket.message(quoted_message_id=sent["id"])
        history = (await room.alice.history()).json()["results"]
        # (read while the server runs: the CLI's own event loop, in a thread)
        output = tmp_path / "export.jsonl"
        code = await asyncio.to_thread(export, settings, [room.conversation_id], str(output))
    assert code == 0

    [record] = lines(output)
    assert record["conversation"]["id"] == room.conversation_id
    assert record["conversation"]["ended"] is False
    people_by_name = {p["name"]: p for p in record["participants"]}
    assert people_by_name["Manager"]["is_manager"] is True
    assert people_by_name["ECHO"] == {
        "id": room.ids["ECHO"],
        "name": "ECHO",
        "type": "B",
        "is_required": False,
        "is_manager": False,
        "bot_name": "ECHO",
    }

    messages = record["messages"]
    assert len({m["id"] for m in messages}) == len(messages)
    shown = [m for m in messages if m["approved"]]
    wire = {"approved", "approved_at", "sent_by_manager", "command", "real_sender_id"}
    assert [{k: v for k, v in m.items() if k not in wire} for m in shown] == history
    assert [m["seq"] for m in shown] == list(range(1, len(shown) + 1))

    by_id = {m["id"]: m for m in messages}
    order = [m["id"] for m in messages]
    [question] = [m for m in messages if m.get("text") == "?"]
    assert question["approved"] is False
    assert "seq" not in question
    assert question["sender_id"] == room.ids["Calculator"]
    assert order.index(sent["id"]) < order.index(question["id"]) < order.index(echoed["id"])
    assert by_id[echoed["id"]]["approved_at"] is not None
    assert by_id[sent["id"]]["approved_at"] is None  # (a person's: shown at once)
    commands = [m for m in messages if m["sent_by_manager"]]
    assert commands
    assert all(m["command"] and not m["approved"] for m in commands)
    assert any(orjson.loads(m["command"]).get("action") == "redirect" for m in commands)


async def test_every_conversation_or_those_named(
    make_settings: Any, people: Any, tmp_path: Path, page: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ids, every conversation, in the order they were created; with ids, those
    (each once), and one line on stderr for each id that names none, with status 1."""
    settings = make_settings()
    async with live_server(settings) as server:
        created = []
        for name in ("one", "two", "three"):
            person = people(server)
            response = await person.create(nickname="alice", name=name, bots=["ECHO"])
            assert response.status_code == 201, response.text
            created.append(response.json()["id"])
    everything, named = tmp_path / "all.jsonl", tmp_path / "named.jsonl"
    assert await asyncio.to_thread(export, settings, [], str(everything)) == 0
    assert [r["conversation"]["name"] for r in lines(everything)] == ["one", "two", "three"]
    assert all(r["messages"] for r in lines(everything))

    missing = "0190c5a0-0000-7000-8000-000000000000"
    ids = [created[2], missing, created[0], created[2]]
    assert await asyncio.to_thread(export, settings, ids, str(named)) == 1
    assert [r["conversation"]["id"] for r in lines(named)] == [created[2], created[0]]
    err = capsys.readouterr().err
    assert f"no conversation {missing}" in err
    assert "exported 2 conversations" in err
    assert await asyncio.to_thread(export, settings, [created[1]], str(named)) == 0
    assert "exported 1 conversation, " in capsys.readouterr().err  # (QA: '1 conversations')


async def test_a_failed_export_leaves_no_half_line_and_the_old_file(
    make_settings: Any, people: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read failing halfway through a conversation (the database gone, say): only whole
    lines reach the output, and an export to a file leaves the previous export as it was,
    with no temporary file beside it."""
    monkeypatch.setattr(exporting, "PAGE", 1)  # (a conversation has two messages at least)
    settings = make_settings()
    async with live_server(settings) as server:
        ids = []
        for name in ("one", "two"):
            response = await people(server).create(nickname="alice", name=name, bots=["ECHO"])
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
    output = tmp_path / "export.jsonl"
    output.write_bytes(b"the previous export\n")
    read = exporting.msg_repo.stored_messages
    pages = 0

    async def failing(conn: Any, keys: list[int]) -> Any:
        nonlocal pages
        pages += 1
        if pages == 2:  # the second page of the first conversation: halfway through
            raise OSError("disk I/O error")
        return await read(conn, keys)

    monkeypatch.setattr(exporting.msg_repo, "stored_messages", failing)
    assert await asyncio.to_thread(export, settings, ids, str(output)) == 1
    assert output.read_bytes() == b"the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir() if "export" in p.name) == ["export.jsonl"]

    pages = -100  # (no failure this time) to standard output, through a pipe's buffer
    written = io.BytesIO()
    done = await exporting.export_database(
        settings.database_url, settings.database_schema, [ids[1], ids[0]], None, written
    )
    assert (done.conversations, done.missing) == (2, [])
    assert [
        r["conversation"]["id"] for r in map(orjson.loads, written.getvalue().splitlines())
    ] == [
        ids[1],
        ids[0],
    ]

    pages = 0  # fails halfway through the first conversation again: not a byte of it
    partial = io.BytesIO()
    with pytest.raises(OSError, match="disk I/O error"):
        await exporting.export_database(
            settings.database_url, settings.database_schema, ids, None, partial
        )
    assert partial.getvalue() == b""


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`tertulia export` writes to stdout by default; a missing SQLite file is a
    configuration error (the export would otherwise create an empty database), as is an
    in-memory one."""
    database = tmp_path / "cli.db"
    config = tmp_path / "tertulia.toml"
    config.write_text(f'database_url = "sqlite+aiosqlite:///{database}"\n', encoding="utf-8")
    assert main(["export", "--config", str(config)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"tertulia: configuration error: no SQLite database at {database}"
    )
    assert not database.exists()

    assert main(["migrate", "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["export", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "exported 0 conversations, 0 messages" in captured.err

    memory = tmp_path / "memory.toml"
    memory.write_text('database_url = "sqlite+aiosqlite:///:memory:"\n', encoding="utf-8")
    assert main(["export", "--config", str(memory)]) == 2
    assert "SQLite needs a file" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["missing", "through a file", "a directory", "unwritable"])
def test_an_output_that_cannot_be_written_is_one_line_naming_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """(Found by QA: `-o /nonexistent/dir/x.jsonl` said `export failed: FileNotFoundError:
    ... '/nonexistent/dir/.x.jsonl.s33p1le4'`, the temporary file's name, status 1.) An
    `-o FILE` that cannot be written is a wrong argument: one line naming it, status 2,
    before the database is reached; nothing is left behind."""
    config = tmp_path / "tertulia.toml"
    config.write_text(
        f'database_url = "sqlite+aiosqlite:///{tmp_path / "cli.db"}"\n', encoding="utf-8"
    )
    assert main(["migrate", "--config", str(config)]) == 0
    reached: list[object] = []

    async def check_existing(*args: object, **kwargs: object) -> None:
        reached.append(args)

    monkeypatch.setattr(preflight, "check_existing", check_existing)
    folder = tmp_path / "out"
    folder.mkdir()
    output, reason = {
        "missing": (folder / "no" / "dir" / "x.jsonl", "No such file or directory"),
        "through a file": (folder / "plain" / "x.jsonl", "Not a directory"),
        "a directory": (folder, "Is a directory"),
        "unwritable": (folder / "x.jsonl", "Permission denied"),
    }[where]
    if where == "through a file":
        (folder / "plain").write_text("a file", encoding="utf-8")
    if where == "unwritable":
        if os.geteuid() == 0:
            pytest.skip("root writes whatever the directory's mode")
        folder.chmod(0o500)
    try:
        assert main(["export", "--config", str(config), "-o", str(output)]) == 2
    finally:
        folder.chmod(0o700)
    assert capsys.readouterr().err == f"tertulia: cannot write {output}: {reason}\n"
    assert reached == []
    assert [p.name for p in folder.iterdir()] == (["plain"] if where == "through a file" else [])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # (no partial file)


def test_a_reader_that_goes_away(tmp_path: Path) -> None:
    """`tertulia export | head -c 10`: the pipe closes early; the export stops quietly with
    status 0, as Unix tools do (no message, traceback or "Exception ignored" noise)."""
    database = tmp_path / "cli.db"
    config = tmp_path / "tertulia.toml"
    config.write_text(f'database_url = "sqlite+aiosqlite:///{database}"\n', encoding="utf-8")
    tertulia = str(Path(sys.executable).parent / "tertulia")
    subprocess.run([tertulia, "--config", str(config), "migrate"], check=True, capture_output=True)
    with sqlite3.connect(database) as raw:  # enough conversations to fill a pipe's buffer
        raw.executemany(
            "INSERT INTO conversations (id, name, created_at, ended, last_seq)"
            " VALUES (?, ?, ?, 0, 0)",
            [(f"c{n:06d}", "x" * 50, "2026-12-03 20:00:00.000000") for n in range(3000)],
        )
    command = f"{shlex.quote(tertulia)} --config {shlex.quote(str(config))} export | head -c 10"
    finished = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, timeout=120
    )
    assert len(finished.stdout) == 10
    assert finished.returncode == 0, finished.stderr
    assert finished.stderr == b""
