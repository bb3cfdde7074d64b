"""CPU time the server spends per answered message, user and system, read from ``/proc``.

Run by hand: ``.venv/bin/python -m bench.cpu [--server tertulia|bare|both] [--runs N]``, or
``--compare PATH`` to alternate this checkout's Tertulia with another checkout's (say a
``git worktree`` of the previous commit).

The same workload as ``bench.instructions`` (``--loops`` conversations with ECHO, each a
closed loop of ``--trips`` round trips, all at once), with the server running normally: the
server process's user and system CPU seconds between the start and the end of the measured
part, divided by the answers. Unlike instructions, this counts the kernel's work (socket and
file writes, locks) and the machine's speed, so compare two servers or two versions within
one run, interleaved (``--server both`` alternates Tertulia and the bare limit, ``all`` adds
the stored limit: ``bench.echo_server --store``, the bare limit plus Tertulia's rows).
Linux only (``/proc/<pid>/stat``).

``--syscalls`` also counts the server's system calls of each kind per answer over the
measured part (``perf stat`` on the server's process with the ``syscalls:sys_enter_*``
tracepoints: needs ``perf``, Debian's ``linux-perf``, and root or a low
``kernel.perf_event_paranoid``). Counting adds a little to every system call, so take CPU
figures to compare from runs without it.

``--database-url postgresql+asyncpg://…`` runs Tertulia on PostgreSQL instead (a schema of
its own per run, dropped afterwards; the limits store nothing there, so pair it with
``--server tertulia`` or ``--compare``), and also prints the CPU the database server's
processes spent per answer (every process named ``postgres`` on this machine: meaningful
only when PostgreSQL runs here, with nothing else using it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.instructions import workload
from bench.servers import ServerSpec, checkouts, running_server

TICKS = os.sysconf("SC_CLK_TCK")
SYSCALLS = (
    "pwrite64",
    "pread64",
    "write",
    "read",
    "fcntl",
    "getpid",
    "epoll_wait",
    "epoll_pwait",
    "futex",
    "fdatasync",
)
"""The system calls ``--syscalls`` counts: the log's and the database file's writes and
reads, the sockets', SQLite's locks, CPython 3.11's per-``get_running_loop`` process id,
the event loop's polls, threads' hand-overs, and flushes to disk."""


def _stat(text: str) -> tuple[str, float, float]:
    """A process's name, user and system CPU seconds, from its ``/proc/<pid>/stat``."""
    name, rest = text.split(" (", 1)[1].rsplit(")", 1)
    fields = rest.split()
    return name, int(fields[11]) / TICKS, int(fields[12]) / TICKS


def cpu_seconds(pid: int) -> tuple[float, float]:
    """The process's user and system CPU seconds so far."""
    _, user, system = _stat(Path(f"/proc/{pid}/stat").read_text())
    return user, system


def database_cpu_seconds() -> float:
    """User and system CPU seconds so far of every process named ``postgres`` (the
    database server and its backends; a backend that ends takes its own with it, but the
    server's pooled connections live as long as the server)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, user, system = _stat(stat.read_text())
        except OSError:  # the process ended meanwhile
            continue
        if name == "postgres":
            total += user + system
    return total


@dataclass(frozen=True, slots=True)
class PerAnswer:
    """Microseconds of CPU per answered message: the server's, and the load client's own
    (this process: it sends the texts and reads every frame)."""

    user_us: float
    system_us: float
    client_us: float
    syscalls: dict[str, float] = field(default_factory=dict)
    database_us: float | None = None

    @property
    def total_us(self) -> float:
        return self.user_us + self.system_us


class SyscallCount:
    """``perf stat`` counting one process's system calls between `start` and `stop`."""

    def __init__(self) -> None:
        self._perf: subprocess.Popen[str] | None = None

    def start(self, pid: int) -> None:
        events = ",".join(f"syscalls:sys_enter_{name}" for name in SYSCALLS)
        self._perf = subprocess.Popen(
            ["perf", "stat", "-x", ",", "-e", events, "-p", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> dict[str, int]:
        """The counts by call (``perf stat -x ,``: value, unit, event, …; one line each)."""
        assert self._perf is not None
        self._perf.send_signal(signal.SIGINT)
        _, report = self._perf.communicate(timeout=30)
        counts: dict[str, int] = {}
        for line in report.splitlines():
            value, _, event, *_ = [*line.split(","), "", ""]
            if value.isdigit() and "_enter_" in event:
                counts[event.rsplit("_enter_", 1)[1]] = int(value)
        if not counts:
            raise RuntimeError(f"perf stat counted nothing: {report.strip()[:500]}")
        return counts


async def measure(
    server: str,
    workdir: Path,
    loops: int,
    trips: int,
    source: Path | None = None,
    syscalls: bool = False,
    database_url: str | None = None,
) -> PerAnswer:
    """One server process, one measured workload (`source`: another checkout's ``src``;
    `database_url`: Tertulia's database, SQLite in `workdir` when None)."""
    executable = str(Path(sys.executable).parent / "tertulia")
    url = database_url if server == "tertulia" else None
    spec = ServerSpec(server, server, executable, database_url=url, source=source)
    marks: dict[str, tuple[float, float]] = {}
    client: dict[str, float] = {}
    database: dict[str, float] = {}
    count = SyscallCount()
    calls: dict[str, int] = {}
    async with running_server(spec, workdir) as target:

        async def switch(state: str) -> None:
            if syscalls and state == "on":
                count.start(target.pid)
                await asyncio.sleep(1.0)  # perf attaches in its own time
            if syscalls and state == "off":
                calls.update(count.stop())
            marks[state] = cpu_seconds(target.pid)
            client[state] = sum(os.times()[:2])
            if url is not None:
                database[state] = database_cpu_seconds()

        answers = await workload(target, "throughput", loops, trips, switch)
    (user0, system0), (user1, system1) = marks["on"], marks["off"]
    return PerAnswer(
        1e6 * (user1 - user0) / answers,
        1e6 * (system1 - system0) / answers,
        1e6 * (client["off"] - client["on"]) / answers,
        {name: n / answers for name, n in calls.items() if n},
        1e6 * (database["off"] - database["on"]) / answers if database else None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server",
        choices=("tertulia", "bare", "stored", "both", "all"),
        default="both",
        help="both: Tertulia and the bare limit; all: also the stored limit",
    )
    parser.add_argument("--loops", type=int, default=20, help="conversations, all at once")
    parser.add_argument("--trips", type=int, default=500, help="round trips per conversation")
    parser.add_argument("--runs", type=int, default=2, help="server processes per server")
    parser.add_argument(
        "--compare",
        type=Path,
        help="another checkout: its Tertulia alternates with this one's (instead of --server)",
    )
    parser.add_argument(
        "--syscalls", action="store_true", help="also count the server's system calls (perf)"
    )
    parser.add_argument(
        "--database-url", help="run Tertulia on this PostgreSQL database (not on SQLite)"
    )
    args = parser.parse_args(argv)
    # (label, server kind, source of Tertulia's code)
    servers: list[tuple[str, str, Path | None]]
    if args.compare is not None:
        servers = [(label, "tertulia", source) for label, source in checkouts(args.compare)]
    elif args.server in ("both", "all"):
        servers = [("tertulia", "tertulia", None), ("bare", "bare", None)]
        if args.server == "all":
            servers.insert(1, ("stored", "stored", None))
    else:
        servers = [(args.server, args.server, None)]
    with tempfile.TemporaryDirectory(prefix="tertulia-cpu-") as temporary:
        for run in range(args.runs):
            for index, (label, server, source) in enumerate(servers):
                workdir = Path(temporary) / f"{index}-{run}"
                per = asyncio.run(
                    measure(
                        server,
                        workdir,
                        args.loops,
                        args.trips,
                        source,
                        args.syscalls,
                        args.database_url,
                    )
                )
                print(
                    f"{label} run {run + 1}: {per.total_us:,.0f} µs of CPU per answer "
                    f"(user {per.user_us:,.0f}, system {per.system_us:,.0f}); "
                    f"the client: {per.client_us:,.0f} µs"
                    + (
                        f"; the database server: {per.database_us:,.0f} µs"
                        if per.database_us is not None
                        else ""
                    ),
                    flush=True,
                )
                if per.syscalls:
                    calls = ", ".join(f"{name} {n:.2f}" for name, n in per.syscalls.items())
                    print(f"  system calls per answer: {calls}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
