"""Latency at a steady, moderate load: conversations that each send at a fixed pace.

Run by hand: ``.venv/bin/python -m bench.paced [--rate 200] [--seconds 20] [--compare PATH]``.

``throughput`` saturates the server with closed loops. A chat server mostly runs well below
that, where what people notice is how long each answer takes, and any pause of the writers
(SQLite's quiet windows: docs/performance-history.md) shows in the tail of those times. Here each
of ``--conversations`` conversations with ECHO sends a text once every ``conversations /
rate`` seconds, their turns spread evenly over that period; a text sends, waits for ECHO's
answer, then waits for its next turn (a turn missed while waiting is skipped, not made up).
After ``--warmup`` seconds (SQLite's log grows past the point where its restarts begin),
the answers to the texts of the next ``--seconds`` are measured. Printed per run: answers
per second, latency percentiles, and the answers that came late (after 5 s) or never. With
``--compare PATH`` another checkout's Tertulia (its ``src``) takes turns with this one's;
with ``--limits`` the stored and the bare limit do too (a paced load leaves the processes
idle between texts, and on a virtual machine waking costs: the limits show how much).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench.client import Api, Counters, RoundTrip, Socket, close_all, new_hex, open_many
from bench.scenarios import Sizes, _in_time, _settle
from bench.servers import ServerSpec, running_server, tertulia_checkouts
from bench.stats import latency_summary

ANSWER_TIMEOUT = Sizes().answer_timeout


async def _paced(
    sock: Socket, period: float, first: float, measured_from: float, stop: float
) -> list[RoundTrip]:
    """Round trips at `first`, `first + period`, ... until `stop`; those sent from
    `measured_from` on are returned."""
    turn = first
    measured: list[RoundTrip] = []
    while turn < stop:
        await asyncio.sleep(max(0.0, turn - time.perf_counter()))
        trip = await sock.round_trip(f"bench {new_hex()}", ANSWER_TIMEOUT)
        if trip.sent_at >= measured_from:
            measured.append(trip)
        turn += period
        while turn < time.perf_counter():
            turn += period  # a turn missed while waiting for the answer is skipped
    return measured


async def measure(spec: ServerSpec, workdir: Path, args: argparse.Namespace) -> dict[str, float]:
    """One server process, one paced run: its figures."""
    counters = Counters()
    async with running_server(spec, workdir) as target:
        http = target.http(args.conversations)
        try:
            api = Api(http)
            members = [await api.create(f"paced{i}", ["ECHO"]) for i in range(args.conversations)]
            sockets, failures = await open_many(target.ws_base, members, counters)
            try:
                if failures:
                    raise failures[0]
                await counters.quiet(0.2, 10.0)
                period = args.conversations / args.rate
                start = time.perf_counter()
                measured_from = start + args.warmup
                stop = measured_from + args.seconds
                loops = await asyncio.gather(
                    *(
                        _paced(sock, period, start + i * period / len(sockets), measured_from, stop)
                        for i, sock in enumerate(sockets)
                    )
                )
                trips = [trip for loop in loops for trip in loop]
                lost = await _settle(trips)
            finally:
                await close_all(sockets)
        finally:
            await http.aclose()
    answered = _in_time(trips)
    late = sum(trip.timed_out for trip in trips) - lost
    return {
        "answers_per_s": len(answered) / args.seconds,
        **latency_summary(answered),
        "late": late,
        "lost": lost,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="texts a second, in all")
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured")
    parser.add_argument("--warmup", type=float, default=4.0, help="seconds before the measure")
    parser.add_argument("--runs", type=int, default=2, help="server processes per checkout")
    parser.add_argument(
        "--compare", type=Path, help="another checkout: its Tertulia takes turns with this one's"
    )
    parser.add_argument(
        "--limits",
        action="store_true",
        help="also the bare and the stored limit, taking turns (the machine's share)",
    )
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.conversations < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error(
            "--rate, --conversations and --seconds must be positive, --warmup not negative"
        )
    servers = tertulia_checkouts(args.compare)
    if args.limits:
        servers += [(kind, ServerSpec(kind, kind)) for kind in ("stored", "bare")]
    with tempfile.TemporaryDirectory(prefix="tertulia-paced-") as temporary:
        for run in range(1, args.runs + 1):
            for index, (label, spec) in enumerate(servers):
                workdir = Path(temporary) / f"{index}-{run}"
                got = asyncio.run(measure(spec, workdir, args))
                print(
                    f"{label} run {run}: {got['answers_per_s']:,.0f} answers/s, latency p50 "
                    f"{got['p50_ms']:.2f}, p90 {got['p90_ms']:.2f}, p99 {got['p99_ms']:.2f}, "
                    f"max {got['max_ms']:.1f} ms; late {got['late']:.0f}, lost {got['lost']:.0f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
