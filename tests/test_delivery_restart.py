"""Durable deliveries: a server killed while a bot's delivery is pending resumes it on the
next start, and the bot's answer is shown exactly once (bots/runner.py)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from support.blab import Person

pytestmark = pytest.mark.slow
TESTS = Path(__file__).parent
STARTUP = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """``python -m tertulia serve`` in a subprocess, ready once uvicorn says it listens."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        }
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tertulia",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--config",
            str(self.config),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        ready = asyncio.Event()
        self._drain = asyncio.create_task(self._read(ready))
        try:
            async with asyncio.timeout(STARTUP):
                await asyncio.wait(
                    [
                        asyncio.ensure_future(ready.wait()),
                        asyncio.ensure_future(self.process.wait()),
                    ],
                    return_when=asyncio.FIRST_COMPLETED,
                )
        except TimeoutError:
            await self.kill()
            raise AssertionError("server did not start:\n" + "\n".join(self.lines)) from None
        assert ready.is_set(), "server exited:\n" + "\n".join(self.lines)

    async def _read(self, ready: asyncio.Event) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if "Uvicorn running on" in line:
                ready.set()

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._drain is not None:
            await asyncio.gather(self._drain, return_exceptions=True)


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
    first = ServerProcess(path)
    await first.start()
    alice = Person(first.base_url, first.ws_url)
    try:
        created = await alice.create(nickname="alice", bots=["Crash"])
        assert created.status_code == 201, created.text
        socket_ = await alice.connect()
        local_id = await socket_.say("hello")
        sent = await socket_.message(local_id=local_id)
        if answer_first:
            await socket_.message(quoted_message_id=sent["id"], text="HELLO")
        # The delivery was committed with the message; the bot now hangs on it.
        await first.kill()
        (markers / "hang").unlink()

        second = ServerProcess(path)
        await second.start()
        try:
            alice.http.base_url = second.base_url + "/api/chat"
            alice.ws_url = second.ws_url
            resumed = await alice.connect(after=sent["seq"])
            await resumed.message(quoted_message_id=sent["id"], text="done")
            await resumed.sync()
            answers = [m for m in resumed.messages() if m.get("quoted_message_id") == sent["id"]]
            assert [m["text"] for m in answers] == ["HELLO", "done"]
            seqs = [m["seq"] for m in resumed.messages()]
            assert seqs == sorted(set(seqs))
            history = (await alice.history()).json()["results"]
            assert [m.get("text") for m in history].count("HELLO") == 1
        finally:
            await alice.close()
            await second.kill()
    finally:
        await alice.close()
        await first.kill()
