"""The benchmark's by-hand measures, each run once at a small size so that none of them rots
between the rounds that use it (figures are not checked: they mean little at these sizes).

`bench.instructions` is left out: under callgrind a server takes minutes to start. It shares
its workload with `bench.cpu`, which runs here.
"""

from __future__ import annotations

import pytest

from bench.storing import VARIANTS
from support.bench import run_module
from support.environment import POSTGRES_URL, require_service

TOOL_SECONDS = 45  # each takes under 10 s; stopped (with its servers) before the test's 60


def run_tool(module: str, *args: str) -> str:
    """``python -m MODULE ARGS``; its output, after it succeeded."""
    done = run_module(module, *args, seconds=TOOL_SECONDS)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_storing_measures_every_variant() -> None:
    out = run_tool("bench.storing", "--answers", "300", "--runs", "1")
    for variant in VARIANTS:
        assert f"\n{variant.name} " in out


def test_statements_measures_every_way_of_running_sql() -> None:
    out = run_tool("bench.statements", "--transactions", "30")
    assert out.count("per transaction") == 4


def test_pool_measures_both_ways_of_returning_a_connection() -> None:
    require_service("PostgreSQL", POSTGRES_URL)
    url = POSTGRES_URL.replace("+asyncpg", "")
    out = run_tool("bench.pool", "--url", url, "--use-cases", "30", "--runs", "1")
    assert "asyncpg's reset on release" in out
    assert "no reset query (Tertulia)" in out


@pytest.mark.slow
def test_cpu_measures_tertulia_and_both_limits() -> None:
    out = run_tool("bench.cpu", "--server", "all", "--loops", "2", "--trips", "5", "--runs", "1")
    for server in ("tertulia", "stored", "bare"):
        assert f"{server} run 1: " in out


@pytest.mark.slow
def test_uploads_keep_the_servers_memory_flat_and_oversize_ones_are_refused() -> None:
    out = run_tool("bench.upload_memory", "--size-mb", "1", "--limit-mb", "2", "--over-mb", "3")
    assert out.rstrip().endswith("OK")
    assert out.count("HTTP 413") == 2


@pytest.mark.slow
def test_paced_measures_the_latency_of_a_steady_load() -> None:
    sizes = ("--rate", "40", "--conversations", "4", "--seconds", "1", "--warmup", "0.5")
    out = run_tool("bench.paced", *sizes, "--runs", "1", "--limits")
    for server in ("this checkout", "stored", "bare"):
        assert f"{server} run 1: " in out
    assert out.count("late 0, lost 0") == 3


@pytest.mark.slow
def test_soak_follows_the_servers_memory_while_conversations_come_and_go() -> None:
    out = run_tool("bench.soak", "--seconds", "3", "--workers", "2", "--messages", "2")
    assert "this checkout run 1: " in out
    assert ", 0 late or lost" in out
    assert out.count(" MiB") == 1
    assert len(out.splitlines()) == 14  # the memory at each tenth of the run
    assert "KiB per 1,000 conversations" in out
