"""What a pooled PostgreSQL use case costs, with asyncpg's reset on release and without it.

Run by hand: ``.venv/bin/python -m bench.pool [--url postgresql://…] [--use-cases 5000]``.

Each use case is the smallest Tertulia runs: a connection taken from the pool, a
transaction around one statement, the connection given back. asyncpg's pool, by default,
sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` each time a
connection goes back; Tertulia's pool (``storage/postgres.py``) skips it (``reset=``, its
``keep_session``). Printed per use case, the two ways taking turns: wall time, the
database backend's CPU (from ``/proc``, so PostgreSQL must run on this machine) and this
process's CPU. A pool of one connection, so every use case has the same backend.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from bench.cpu import cpu_seconds
from tertulia.storage.postgres import keep_session

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


async def measure(
    url: str, reset: Callable[[Any], Awaitable[None]] | None, use_cases: int
) -> tuple[float, float, float]:
    """Microseconds per use case: wall, the backend's CPU, this process's CPU."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1, reset=reset)
    try:
        async with pool.acquire() as conn:
            backend = conn.get_server_pid()
            await conn.fetchval("SELECT 1")
        cpu0, mine0, wall0 = sum(cpu_seconds(backend)), sum(os.times()[:2]), time.perf_counter()
        for i in range(use_cases):
            async with pool.acquire() as conn, conn.transaction():
                await conn.fetchval("SELECT $1::int + 1", i)
        cpu1, mine1, wall1 = sum(cpu_seconds(backend)), sum(os.times()[:2]), time.perf_counter()
    finally:
        await pool.close()
    return (
        1e6 * (wall1 - wall0) / use_cases,
        1e6 * (cpu1 - cpu0) / use_cases,
        1e6 * (mine1 - mine0) / use_cases,
    )


async def compare(url: str, use_cases: int, runs: int) -> None:
    ways: dict[str, Callable[[Any], Awaitable[None]] | None] = {
        "asyncpg's reset on release": None,
        "no reset query (Tertulia)": keep_session,
    }
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in ways}
    for _ in range(runs):
        for name, reset in ways.items():
            results[name].append(await measure(url, reset, use_cases))
    print(f"per use case, medians of {runs} runs of {use_cases:,}")
    for name, runs_of in results.items():
        wall, backend, mine = (statistics.median(r[i] for r in runs_of) for i in range(3))
        print(
            f"{name:28} wall {wall:5.0f} µs, backend CPU {backend:4.0f} µs, "
            f"this process {mine:4.0f} µs"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="a PostgreSQL database on this machine")
    parser.add_argument("--use-cases", type=int, default=5000, help="use cases per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per way (medians shown)")
    args = parser.parse_args(argv)
    asyncio.run(compare(args.url, args.use_cases, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
