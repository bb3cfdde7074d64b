"""Run ``tertulia serve`` as a real subprocess (for crash and multi-process tests)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from support.blab import Person
from support.environment import POSTGRES_URL, REDIS_URL, DatabaseTarget, require_service
from support.server import LiveServer, live_server
from tertulia.settings import Settings, load_settings

TESTS = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def write_config(path: Path, values: dict[str, Any]) -> Path:
    """Write Settings fields as TOML (tables for ``bots`` and ``limits``)."""
    lines = []
    tables = {}
    for key, value in values.items():
        if value is None:
            continue
        if key in ("bots", "limits"):
            tables[key] = value
        else:
            lines.append(f"{key} = {toml_value(value)}")
    for name, spec in tables.get("bots", {}).items():
        lines.append(f"[bots.{name}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in spec.items())
    if "limits" in tables:
        lines.append("[limits]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in tables["limits"].items())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class ServerProcess:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    async def stop(self, sig: signal.Signals = signal.SIGKILL, timeout: float = 10.0) -> int:
        """Send ``sig`` and wait for the exit; returns the exit status (``-sig`` if killed)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
        return await asyncio.to_thread(self.process.wait, timeout)

    def person(self, like: Person | None = None) -> Person:
        """A client of this server (with ``like``'s session and conversation, if given)."""
        person = Person(self.base_url, self.ws_url)
        if like is not None:
            assert like.session is not None
            person.http.cookies.set("sessionid", like.session)
            person.conversation_id = like.conversation_id
            person.participant_id = like.participant_id
        return person


@asynccontextmanager
async def server_process(
    config: Path,
    workdir: Path,
    *,
    port: int | None = None,
    name: str | None = None,
    timeout: float = 30,
) -> AsyncIterator[ServerProcess]:
    """Start ``python -m tertulia serve`` and wait until it answers; always stop it.

    The test-only bots of ``tests/support`` are importable by the server (``support.*``);
    its log goes to ``<workdir>/<name or server-PORT>.log``.
    """
    port = port or free_port()
    log = workdir / f"{name or f'server-{port}'}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TERTULIA_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tertulia",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--config",
                str(config),
            ],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    running = ServerProcess(process, port, log)
    failure: Exception | None = None  # the test's, within the block
    try:
        async with httpx.AsyncClient() as client, asyncio.timeout(timeout):
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
                try:
                    response = await client.get(f"{running.base_url}/api/chat/bots/")
                    if response.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        try:
            yield running
        except Exception as exc:
            failure = exc
            raise
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                # Waited for off the loop: a server in the test's own process may share a
                # database with this one, which may need it (a row it holds) to stop.
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                running.kill()
        if failure is not None:
            # The failure's report shows the server's side too (once it has stopped: its
            # shutdown's lines included).
            failure.add_note(log_tail(log))


LOG_TAIL = 200
"""Lines of a server process's log a failing test's report shows (its last ones)."""


def log_tail(log: Path, lines: int = LOG_TAIL) -> str:
    """The last ``lines`` lines of a server process's log, headed by its name."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        return f"--- {log.name}: unreadable ({exc}) ---"
    cut = f", its last {lines} of {len(text)} lines" if len(text) > lines else ""
    return "\n".join([f"--- {log.name}{cut} ---", *text[-lines:], f"--- end of {log.name} ---"])


@asynccontextmanager
async def two_servers(
    database: DatabaseTarget, workdir: Path, **values: Any
) -> AsyncIterator[tuple[LiveServer, ServerProcess, Settings]]:
    """Two server processes sharing PostgreSQL (``database``) and Redis, with ``values``
    more settings: one in this process, one a child; and the settings they share. Skips
    (fails under CI) when either service is down."""
    require_service("Redis", REDIS_URL)
    require_service("PostgreSQL", POSTGRES_URL)
    shared = {
        "database_url": database.url,
        "database_schema": database.schema,
        "broker_url": REDIS_URL,
        "rooms": True,  # (people join each other's conversations, on either process)
        **values,
    }
    config = write_config(workdir / "tertulia.toml", {**shared, "log_format": "json"})
    settings = load_settings(None, **shared)
    async with live_server(settings) as one, server_process(config, workdir) as two:
        yield one, two, settings
