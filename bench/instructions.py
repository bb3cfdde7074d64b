"""CPU instructions the server spends per answered message, counted by callgrind.

Run by hand: ``.venv/bin/python -m bench.instructions [--compare PATH] [--scenario NAME]``.

Wall-clock figures on a shared virtual machine move by a factor of two from one hour to the
next (other guests take the CPU: see the ``steal`` column of ``/proc/stat``), which hides any
change worth less than that. Instructions do not move: the server runs under valgrind's
callgrind tool (about 50 times slower), instrumentation is switched on only after the
set-up, and the instructions executed for a fixed workload are divided by the number of
answers. Two runs of the same code agree within about 2 %.

Scenarios (the client is this package's protocol client, run normally):

- ``throughput``: ``--loops`` conversations with ECHO, each a closed loop of ``--trips``
  round trips (all loops at once, as ``bench.run``'s ``throughput``).
- ``create``: ``--trips`` conversations created one after the other.

``--server bare`` measures the bare limit (``bench.echo_server``, the same stack storing
nothing) with the same workload instead: the floor of what one answer costs in Python here;
``--server stored`` the stored limit (the same with ``--store``: Tertulia's rows, nothing else).

``--compare PATH`` also measures another checkout's ``src`` (say a ``git worktree`` of the
previous commit) with the same workload, first, so that both lines come from one run.
Needs ``valgrind`` (Debian's package); the server's batching differs under callgrind's
slowness (larger batches), so compare counts with counts, not with ``bench.run``'s CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from bench.client import Api, Counters, open_many
from bench.scenarios import Sizes, _round_trips
from bench.servers import (
    REPO,
    ServerSpec,
    Target,
    checkouts,
    free_port,
    server_argv,
    stop,
    wait_ready,
)

READY_TIMEOUT = 600.0  # seconds: start-up is slow under callgrind


async def _control(pid: int, switch: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "callgrind_control",
        "-i",
        switch,
        str(pid),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if await process.wait() != 0:
        raise RuntimeError(f"callgrind_control -i {switch} failed")


Switch = Callable[[str], Awaitable[None]]
"""Called with ``"on"`` just before the measured part and ``"off"`` just after it."""


async def workload(target: Target, scenario: str, loops: int, trips: int, switch: Switch) -> int:
    """Set up, switch the measure on, run the measured part; returns the operations."""
    sizes = replace(Sizes(), answer_timeout=120.0, setup_timeout=3600.0)
    http = target.http(max(loops, 1))
    api = Api(http)
    try:
        if scenario == "create":
            for i in range(3):
                await api.create(f"warm{i}", ["ECHO"])
            await switch("on")
            for i in range(trips):
                await api.create(f"bench{i}", ["ECHO"])
            await switch("off")
            return trips
        counters = Counters()
        members = [await api.create(f"loop{i}", ["ECHO"]) for i in range(loops)]
        sockets, failures = await open_many(target.ws_base, members, counters)
        if failures:
            raise failures[0]
        try:
            await asyncio.gather(*(_round_trips(s, sizes, count=3) for s in sockets))
            await switch("on")
            done = await asyncio.gather(*(_round_trips(s, sizes, count=trips) for s in sockets))
            await asyncio.sleep(1.0)  # the deliveries' outcomes are written in this window
            await switch("off")
        finally:
            for sock in sockets:
                await sock.close()
        late = sum(trip.timed_out for loop in done for trip in loop)
        if late:
            raise RuntimeError(f"{late} answers did not come in time")
        return sum(len(loop) for loop in done)
    finally:
        await http.aclose()


def _total(out: Path) -> int:
    for line in reversed(out.read_text().splitlines()):
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


async def measure(source: Path | None, workdir: Path, args: argparse.Namespace) -> float:
    """Instructions per operation for the code in ``source`` (None: this checkout)."""
    workdir.mkdir(parents=True)
    port = free_port()
    out = workdir / "callgrind.out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    if args.server in ("bare", "stored"):
        env["PYTHONPATH"] = str(REPO)
    spec = ServerSpec(args.server, args.server, str(Path(sys.executable).parent / "tertulia"))
    callgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
    argv = [
        *callgrind,
        f"--callgrind-out-file={out}",
        *server_argv(spec, workdir, port, None, False),
    ]
    log = workdir / "server.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # stop() signals the process group
        )
    try:
        await wait_ready(proc, port, log, READY_TIMEOUT)

        async def switch(state: str) -> None:
            await _control(proc.pid, state)

        target = Target("instructions", False, port, proc.pid, log)
        operations = await workload(target, args.scenario, args.loops, args.trips, switch)
    finally:
        stop(proc, timeout=120)
    return _total(out) / operations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=("throughput", "create"), default="throughput")
    parser.add_argument("--loops", type=int, default=20, help="conversations (throughput)")
    parser.add_argument("--trips", type=int, default=20, help="round trips per loop, or creates")
    parser.add_argument("--compare", type=Path, help="another checkout to measure first")
    parser.add_argument(
        "--server",
        choices=("tertulia", "bare", "stored"),
        default="tertulia",
        help="bare: bench.echo_server, the same stack storing nothing (the limit); "
        "stored: the same with --store, writing Tertulia's rows and nothing else",
    )
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    unit = "answer" if args.scenario == "throughput" else "conversation created"
    runs = checkouts(args.compare)
    with tempfile.TemporaryDirectory(prefix="tertulia-instructions-") as temporary:
        for index, (label, source) in enumerate(runs):
            per = asyncio.run(measure(source, Path(temporary) / str(index), args))
            print(f"{label}: {per / 1000:,.0f} thousand instructions per {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
