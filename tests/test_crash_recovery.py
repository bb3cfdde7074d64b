"""Crash recovery with the real CLI: what was echoed to its sender survives SIGKILL, and the
bots' pending work is resumed on the next start."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from support.process import ServerProcess, server_process

pytestmark = pytest.mark.slow
READY_TIMEOUT = 30.0


def _write_config(tmp_path: Path, database_url: str, schema: str | None, *, more: str = "") -> Path:
    lines = [
        f"database_url = {database_url!r}",
        "presence_grace = 0",
        f"media_root = {str(tmp_path / 'media')!r}",
        'log_format = "json"',
    ]
    if schema:
        lines.append(f"database_schema = {schema!r}")
    lines += [
        "[bots.ECHO]",
        'module = "tertulia.bots.builtin"',
        'class = "UpperCaseEchoBot"',
        more,
    ]
    path = tmp_path / "tertulia.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_echoed_messages_survive_sigkill(database: Any, tmp_path: Path) -> None:
    """Every message echoed to its sender before a SIGKILL is in the history after a restart,
    and ECHO answers each of them exactly once."""
    config = _write_config(tmp_path, database.url, database.schema)
    texts = [f"message {i}" for i in range(10)]

    async with server_process(config, tmp_path, name="first") as first:
        alice = first.person()
        try:
            assert (await alice.create(nickname="alice", bots=["ECHO"])).status_code == 201
            socket = await alice.connect()
            echoed = []
            for text in texts:
                local_id = await socket.say(text)
                echoed.append(await socket.message(local_id=local_id))
            assert await first.stop() == -signal.SIGKILL
        finally:
            await alice.close()

    async with server_process(config, tmp_path, name="second") as second:
        again = second.person(like=alice)
        try:
            response = await again.history(limit=1000)
            assert response.status_code == 200, response.text
            stored = {m["id"]: m for m in response.json()["results"]}
            for message in echoed:
                assert message["id"] in stored
                assert stored[message["id"]]["text"] == message["text"]
                assert stored[message["id"]]["local_id"] == message["local_id"]

            socket = await again.connect(after=0)
            for message in echoed:
                answer = await socket.message(quoted_message_id=message["id"])
                assert answer["text"] == message["text"].upper()
            await socket.sync()
            answers = [m for m in socket.messages() if m.get("text", "").startswith("MESSAGE ")]
            assert len(answers) == len(echoed)
        finally:
            await again.close()


async def _wait_for_log(process: ServerProcess, event: str, timeout: float = 20.0) -> None:
    """Poll the process's JSON log until a line has ``event`` (or the deadline passes)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in process.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{") and json.loads(line).get("event") == event:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {event!r} in the log:\n{process.log.read_text()}")
        await asyncio.sleep(0.05)


async def test_hung_bot_does_not_keep_the_server_from_stopping(tmp_path: Path) -> None:
    """A server whose bot thread never returns still exits promptly on Ctrl-C (SIGINT)."""
    hung = "\n".join(
        [
            "[bots.Stuck]",
            'module = "support.bots"',
            'class = "BlockingBot"',
            "timeout = 0.3",
            "retries = 0",
        ]
    )
    config = _write_config(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", None, more=hung
    )
    async with server_process(config, tmp_path, name="stuck") as process:
        alice = process.person()
        try:
            assert (await alice.create(nickname="alice", bots=["ECHO", "Stuck"])).status_code == 201
            socket = await alice.connect()
            local_id = await socket.say("hello")
            mine = await socket.message(local_id=local_id)
            await socket.message(quoted_message_id=mine["id"])
            await _wait_for_log(process, "bot delivery failed for good")
        finally:
            await alice.close()
        assert await process.stop(signal.SIGINT) in (0, -signal.SIGINT)
