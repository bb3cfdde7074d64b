"""Memory over a long run: conversations keep coming and going; does the server's level off?

Run by hand: ``.venv/bin/python -m bench.soak [--seconds 600] [--workers 8] [--messages 5]``.

A server runs for days: every conversation it has served must leave nothing behind beyond
its bounded caches (the controllers of the 10,000 most recently used conversations, bot
states, sessions, history pages, compiled statements). Here each of ``--workers`` loops
creates a conversation with ECHO (REST), opens its socket, sends ``--messages`` texts one
after another (each waiting for ECHO's answer), closes the socket, and starts over, for
``--seconds``. The server's resident memory is read every second. Printed: conversations,
answers and problems; the memory at each tenth of the run with the conversations served by
then; and the growth per 1,000 conversations over the last half, which levels off (towards
zero) once more conversations have been served than the caches hold: a steady growth past
that is a leak.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.client import Api, Counters, Socket, new_hex
from bench.scenarios import Sizes
from bench.servers import ServerSpec, Target, rss_kib, running_server, tertulia_checkouts

ANSWER_TIMEOUT = Sizes().answer_timeout


@dataclass
class Soak:
    """What one run served, and the server's memory along the way."""

    conversations: int = 0
    answers: int = 0
    late: int = 0
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds since the start, conversations served by then, RSS in KiB)"""

    def at(self, fraction: float) -> tuple[float, int, int]:
        """The first sample at or after ``fraction`` of the run."""
        end = self.samples[-1][0]
        return next(s for s in self.samples if s[0] >= fraction * end)

    def growth_per_thousand(self) -> float:
        """KiB of memory per 1,000 conversations over the last half of the run."""
        (_, served0, rss0), (_, served1, rss1) = self.at(0.5), self.samples[-1]
        return 1000 * (rss1 - rss0) / max(served1 - served0, 1)


async def _worker(
    api: Api, target: Target, counters: Counters, soak: Soak, name: str, messages: int, stop: float
) -> None:
    turn = 0
    while time.perf_counter() < stop:
        turn += 1
        member = await api.create(f"{name}-{turn}", ["ECHO"])
        sock = await Socket.open(target.ws_base, member, counters)
        try:
            for _ in range(messages):
                trip = await sock.round_trip(f"soak {new_hex()}", ANSWER_TIMEOUT)
                soak.late += trip.timed_out
                soak.answers += not trip.timed_out
        finally:
            await sock.close()
        soak.conversations += 1


async def _sample(pid: int, soak: Soak, start: float, stop: float) -> None:
    while (now := time.perf_counter()) < stop:
        soak.samples.append((now - start, soak.conversations, rss_kib(pid)))
        await asyncio.sleep(1.0)


async def measure(spec: ServerSpec, workdir: Path, args: argparse.Namespace) -> Soak:
    """One server process, one soak."""
    soak = Soak()
    counters = Counters()
    async with running_server(spec, workdir) as target:
        http = target.http(args.workers)
        try:
            api = Api(http)
            start = time.perf_counter()
            stop = start + args.seconds
            workers = [
                _worker(api, target, counters, soak, f"soak{i}", args.messages, stop)
                for i in range(args.workers)
            ]
            await asyncio.gather(_sample(target.pid, soak, start, stop), *workers)
            soak.samples.append(
                (time.perf_counter() - start, soak.conversations, rss_kib(target.pid))
            )
        finally:
            await http.aclose()
    problems = {
        k: v
        for k, v in counters.as_dict().items()
        if k in ("errors", "closed", "duplicates", "unparsable") and v
    }
    if problems:
        raise RuntimeError(f"the server misbehaved: {problems}")
    return soak


def report(label: str, soak: Soak) -> str:
    lines = [
        f"{label}: {soak.conversations:,} conversations, {soak.answers:,} answers, "
        f"{soak.late} late or lost",
        "  seconds  conversations  RSS MiB",
    ]
    for tenth in range(0, 11):
        seconds, served, rss = soak.at(tenth / 10)
        lines.append(f"  {seconds:7.0f}  {served:13,}  {rss / 1024:7.1f}")
    lines.append(
        f"  over the last half: {soak.growth_per_thousand():+,.0f} KiB per 1,000 conversations"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--workers", type=int, default=8, help="conversations at a time")
    parser.add_argument("--messages", type=int, default=5, help="texts per conversation")
    parser.add_argument("--runs", type=int, default=1, help="server processes per checkout")
    parser.add_argument(
        "--compare", type=Path, help="another checkout: its Tertulia takes turns with this one's"
    )
    args = parser.parse_args(argv)
    if args.seconds < 2 or args.workers < 1 or args.messages < 1:
        parser.error("--seconds must be at least 2, --workers and --messages at least 1")
    with tempfile.TemporaryDirectory(prefix="tertulia-soak-") as temporary:
        for run in range(1, args.runs + 1):
            for index, (label, spec) in enumerate(tertulia_checkouts(args.compare)):
                soak = asyncio.run(measure(spec, Path(temporary) / f"{index}-{run}", args))
                print(report(f"{label} run {run}", soak), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
