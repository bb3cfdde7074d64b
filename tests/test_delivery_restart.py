"""Durable deliveries: a server killed while a bot's delivery is pending resumes it on the
next start, and the bot's answer is shown exactly once (bots/runner.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support.process import server_process

pytestmark = pytest.mark.slow


@pytest.fixture
def config(make_settings: Any, tmp_path: Path) -> tuple[Path, Path]:
    """A TOML file for the test's database with the CrashTestBot as ``Crash``; and the
    bot's marker directory."""
    settings = make_settings()
    markers = tmp_path / "markers"
    markers.mkdir()
    lines = [
        f"database_url = {json.dumps(settings.database_url)}",
        "presence_grace = 0",
        'log_format = "json"',
    ]
    if settings.database_schema:
        lines.append(f"database_schema = {json.dumps(settings.database_schema)}")
    lines += [
        "[bots.Crash]",
        'module = "support.managers"',
        'class = "CrashTestBot"',
        "timeout = 60",
        "retries = 2",
        f"kwargs = {{ directory = {json.dumps(str(markers))}, answer_first = ANSWER }}",
    ]
    path = tmp_path / "tertulia.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, markers


@pytest.mark.parametrize("answer_first", [False, True], ids=["before-answer", "after-answer"])
async def test_a_pending_delivery_survives_a_kill(
    config: tuple[Path, Path], answer_first: bool
) -> None:
    """Killed mid-delivery, the server resumes it on restart; the answer shows once."""
    path, markers = config
    path.write_text(path.read_text().replace("ANSWER", "true" if answer_first else "false"))
    (markers / "hang").touch()
    workdir = path.parent
    async with server_process(path, workdir, name="first") as first:
        alice = first.person()
        try:
            created = await alice.create(nickname="alice", bots=["Crash"])
            assert created.status_code == 201, created.text
            socket_ = await alice.connect()
            local_id = await socket_.say("hello")
            sent = await socket_.message(local_id=local_id)
            if answer_first:
                await socket_.message(quoted_message_id=sent["id"], text="HELLO")
            # The delivery was committed with the message; the bot now hangs on it.
            first.kill()
            (markers / "hang").unlink()
        finally:
            await alice.close()

    async with server_process(path, workdir, name="second") as second:
        again = second.person(like=alice)
        try:
            resumed = await again.connect(after=sent["seq"])
            await resumed.message(quoted_message_id=sent["id"], text="done")
            await resumed.sync()
            answers = [m for m in resumed.messages() if m.get("quoted_message_id") == sent["id"]]
            assert [m["text"] for m in answers] == ["HELLO", "done"]
            seqs = [m["seq"] for m in resumed.messages()]
            assert seqs == sorted(set(seqs))
            history = (await again.history()).json()["results"]
            assert [m.get("text") for m in history].count("HELLO") == 1
        finally:
            await again.close()
