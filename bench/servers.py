"""Server processes for the benchmark: configuration, start, readiness, RSS, stop.

Each scenario run gets a fresh server process in its own working directory (its TOML
configuration, its SQLite file, its log), so runs are independent and the RSS of the
`connections` scenario starts from a clean process. On PostgreSQL each run gets its own
schema (`database_schema`), dropped after the run. The process is started in a new session
and stopped with SIGTERM to its process group, then SIGKILL after a timeout; `running_server`
does that in a `finally`, so no server outlives the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bench.httpclient import HttpClient, HttpError

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
SQLITE_URL = "sqlite+aiosqlite:///./bench.db"

# The scenarios the stored limit (`bench.stored`) is measured in: those of the message path.
# It stores but never reads (its history is the bare limit's empty page), and has no manager.
STORED_SCENARIOS = ("roundtrip", "throughput", "fanout")

# The rate limits protect a public server from one address; every benchmark request comes
# from 127.0.0.1, so they are switched off ("" = off) to measure capacity, not the limiter.
BASE_CONFIG = """\
database_url = "{database_url}"
rooms = true
log_format = "json"
{manager_line}
[rate_limits]
create = ""
join = ""
handshake = ""
message = ""
manager = ""

[bots.ECHO]
module = "tertulia.bots.builtin"
class = "UpperCaseEchoBot"

[bots.Calculator]
module = "tertulia.bots.builtin"
class = "CalculatorBot"
"""

MANAGER_BOT = """
[bots.Manager]
module = "tertulia.bots.builtin"
class = "CalcOrEchoManagerBot"
kwargs = { calculator_bot_name = "Calculator", echo_bot_name = "ECHO" }
"""


class ServerError(Exception):
    """The server did not start or did not become ready; carries its log's tail."""


def checkouts(compare: Path | None) -> list[tuple[str, Path | None]]:
    """The code a by-hand measure runs, as (label, ``src`` to run from, None for this
    checkout's): with ``--compare PATH``, that checkout's first, then this one's."""
    mine: list[tuple[str, Path | None]] = [("this checkout", None)]
    return mine if compare is None else [(str(compare), compare.resolve() / "src"), *mine]


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """Which server to run.

    Attributes:
        name: label in the results (`tertulia-sqlite`, `tertulia-postgresql`, `bare`, `stored`).
        kind: `tertulia`, `bare` (the bare limit) or `stored` (the stored limit).
        executable: the `tertulia` command (unused for the limits).
        database_url: Tertulia's database; None for SQLite in the working directory.
        source: run Tertulia's code from this `src` directory (another checkout, say a
            `git worktree` of an earlier commit) instead of the installed one.
    """

    name: str
    kind: str
    executable: str = ""
    database_url: str | None = None
    source: Path | None = None


def tertulia_checkouts(compare: Path | None) -> list[tuple[str, ServerSpec]]:
    """:func:`checkouts` as the Tertulia servers to run (SQLite), by label: the by-hand
    measures that take turns with another checkout's (``--compare``)."""
    executable = str(Path(sys.executable).parent / "tertulia")
    return [
        (label, ServerSpec("tertulia-sqlite", "tertulia", executable, source=source))
        for label, source in checkouts(compare)
    ]


@dataclass(frozen=True, slots=True)
class Target:
    """A running server, as scenarios see it."""

    name: str
    bare: bool  # one of the limits (bench.echo_server): ECHO only, no manager
    port: int
    pid: int
    log: Path

    @property
    def ws_base(self) -> str:
        """The WebSocket base URL, without the `/ws/chat/...` path."""
        return f"ws://{HOST}:{self.port}"

    def http(self, max_connections: int = 64) -> HttpClient:
        """A new HTTP client to this server."""
        return HttpClient(HOST, self.port, max_connections=max_connections)


def raise_nofile_limit() -> int:
    """Raises the soft RLIMIT_NOFILE to the hard limit (inherited by servers); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def write_config(
    workdir: Path, database_url: str | None, schema: str | None, manager: bool
) -> Path:
    """Writes Tertulia's TOML configuration into `workdir`; returns its path."""
    text = BASE_CONFIG.format(
        database_url=database_url or SQLITE_URL,
        manager_line='manager = "Manager"\n' if manager else "",
    )
    if schema:
        text = f'database_schema = "{schema}"\n' + text
    if manager:
        text += MANAGER_BOT
    path = workdir / "tertulia.toml"
    path.write_text(text, encoding="utf-8")
    return path


def server_argv(
    spec: ServerSpec, workdir: Path, port: int, schema: str | None, manager: bool
) -> list[str]:
    """The command line that starts `spec` on `port`."""
    if spec.kind in ("bare", "stored"):
        argv = [sys.executable, "-m", "bench.echo_server", "--host", HOST, "--port", str(port)]
        return argv if spec.kind == "bare" else [*argv, "--store", str(workdir / "stored.db")]
    config = write_config(workdir, spec.database_url, schema, manager)
    return [spec.executable, "serve", "--host", HOST, "--port", str(port), "--config", str(config)]


def rss_kib(pid: int) -> int:
    """VmRSS in KiB of `pid` and all its descendants (0 for processes already gone)."""
    total = 0
    for each in [pid, *_descendants(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo and len(found) < 1000:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found.extend(children)
                todo.extend(children)
    return found


def log_tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    """Waits until `GET /api/chat/bots/` answers 200.

    Raises:
        ServerError: the process exited or `timeout` passed first.
    """
    client = HttpClient(HOST, port, max_connections=1, timeout=2.0)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerError(f"server exited with {proc.returncode}:\n{log_tail(log)}")
            with contextlib.suppress(HttpError, OSError, TimeoutError):
                if (await client.request("GET", "/api/chat/bots/")).status == 200:
                    return
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
    raise ServerError(f"server not ready after {timeout:.0f} s:\n{log_tail(log)}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM to the server's process group, SIGKILL if still there after `timeout`."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


@contextlib.asynccontextmanager
async def running_server(
    spec: ServerSpec, workdir: Path, *, manager: bool = False, ready_timeout: float = 60.0
) -> AsyncIterator[Target]:
    """Starts `spec` in `workdir`, yields it once ready, and always stops it.

    Args:
        spec: the server to run.
        workdir: a fresh directory: configuration, database and `server.log` go there.
        manager: start Tertulia with the `CalcOrEchoManagerBot` manager.
        ready_timeout: seconds allowed to start.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    schema = f"bench_{uuid.uuid4().hex[:12]}" if spec.database_url else None
    argv = server_argv(spec, workdir, port, schema, manager)
    log = workdir / "server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if spec.kind in ("bare", "stored"):
        env["PYTHONPATH"] = str(REPO)
    elif spec.source is not None:
        env["PYTHONPATH"] = str(spec.source)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        await wait_ready(proc, port, log, ready_timeout)
        yield Target(spec.name, spec.kind != "tertulia", port, proc.pid, log)
    finally:
        stop(proc)
        if spec.database_url and schema:
            await drop_schema(spec.database_url, schema)


async def drop_schema(database_url: str, schema: str) -> None:
    """Drops the run's own PostgreSQL schema (best effort: a failure is only printed)."""
    import asyncpg  # only needed with --database-url

    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE', timeout=60)
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        print(f"could not drop schema {schema}: {exc!r}", file=sys.stderr)
