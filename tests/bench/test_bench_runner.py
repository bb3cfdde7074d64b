"""The benchmark runner, end to end: real servers (Tertulia, the stored and the bare limit),
every scenario at the smoke-test sizes, and the page it writes."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

import bench.run
from bench.report import NOTES_MARKER
from bench.scenarios import QUICK, SCENARIOS
from bench.servers import STORED_SCENARIOS, ServerSpec
from support.bench import run_module

URL = "database-url=postgresql+asyncpg://nobody@127.0.0.1:1/none"  # (never reached here)
RUNNER_SECONDS = 240  # about 45 s on two idle cores


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m bench.run ARGS``, stopped (with its servers) past ``RUNNER_SECONDS``."""
    return run_module("bench.run", *args, seconds=RUNNER_SECONDS)


# Every scenario, in two halves of about 20 s each (one test took 50 s, the suite's longest).
HALVES = ["roundtrip,throughput,create,manager", "history,fanout,connections"]


@pytest.mark.slow
@pytest.mark.timeout(RUNNER_SECONDS + 90)
@pytest.mark.parametrize("scenarios", HALVES)
def test_every_scenario_runs_on_every_server_and_the_notes_are_kept(
    tmp_path: Path, scenarios: str
) -> None:
    page, raw = tmp_path / "performance.md", tmp_path / "raw.json"
    page.write_text(f"# Performance\n\nan old table\n\n{NOTES_MARKER}\n\n## By hand\n\nkept\n")
    done = run_bench(
        "--quick",
        "--only",
        scenarios,
        "--servers",
        "tertulia,stored,bare",
        "--output",
        str(page),
        "--json",
        str(raw),
    )
    assert done.returncode == 0, done.stderr[-3000:]

    asked = scenarios.split(",")
    results = json.loads(raw.read_text())
    assert set(results) == {"tertulia-sqlite", "stored", "bare"}
    for server, outcomes in results.items():
        wanted = [s for s in asked if server != "stored" or s in STORED_SCENARIOS]
        assert set(outcomes) == set(wanted), server
        for scenario, outcome in outcomes.items():
            assert outcome["errors"] == [], (server, scenario)
            [figures] = outcome["runs"]
            lost = {k: v for k, v in figures.items() if k.split("_")[0] in ("lost", "wrong")}
            assert not any(lost.values()), (server, scenario, lost)

    text = page.read_text()
    assert "an old table" not in text
    assert "## Errors" not in text
    assert text.endswith(f"{NOTES_MARKER}\n\n## By hand\n\nkept\n")
    assert text.count(NOTES_MARKER) == 1
    for scenario in asked:
        assert f"| {scenario} | problems |" in text


def test_the_halves_cover_every_scenario() -> None:
    covered = [s for half in HALVES for s in half.split(",")]
    assert sorted(covered) == sorted(SCENARIOS)


def test_a_page_whose_notes_would_be_lost_stops_the_runner_before_it_measures(
    tmp_path: Path,
) -> None:
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\nnotes written by hand, no marker\n")
    done = run_bench("--quick", "--only", "roundtrip", "--output", str(page))
    assert done.returncode == 2
    assert NOTES_MARKER in done.stderr
    assert "open-files limit" not in done.stderr  # nothing was started
    assert page.read_text() == "# Performance\n\nnotes written by hand, no marker\n"


def test_a_page_that_loses_its_marker_while_measuring_is_left_and_the_results_go_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "performance.md"
    page.write_text(f"# Performance\n\n{NOTES_MARKER}\n\nnotes\n")
    edited = "# Performance\n\nnotes, the marker deleted by hand meanwhile\n"

    async def measure(*_: object) -> dict[str, object]:
        page.write_text(edited)
        return {}

    monkeypatch.setattr(bench.run, "measure", measure)
    monkeypatch.setattr(bench.run.signal, "signal", lambda *_: None)  # keep pytest's SIGTERM
    assert bench.run.main(["--quick", "--only", "roundtrip", "--output", str(page)]) == 0
    assert page.read_text() == edited
    beside = tmp_path / "performance.md.new"
    assert beside.read_text().startswith("# Performance\n")
    assert beside.read_text().endswith(f"\n{NOTES_MARKER}\n")


def test_servers_take_turns_and_postgresql_runs_after_the_embedded_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within a scenario the servers take turns run by run; those on PostgreSQL come after
    every embedded server's runs (its work after a load must not slow their runs)."""
    order: list[tuple[str, str, int]] = []

    async def measure_run(spec: ServerSpec, name: str, run: int, *_: object) -> bool:
        order.append((spec.name, name, run))
        return True

    monkeypatch.setattr(bench.run, "measure_run", measure_run)
    args = bench.run.parse_args(
        ["--only=roundtrip,history", "--runs=2", "--servers=tertulia,stored,bare", f"--{URL}"]
    )
    asyncio.run(bench.run.measure(args, QUICK, tmp_path))

    embedded = [
        (server, scenario, run)
        for scenario in ("roundtrip", "history")
        for run in (1, 2)
        for server in ("tertulia-sqlite", "stored", "bare")
        if server != "stored" or scenario in STORED_SCENARIOS
    ]
    on_postgresql = [
        ("tertulia-postgresql", scenario, run)
        for scenario in ("roundtrip", "history")
        for run in (1, 2)
    ]
    assert order == embedded + on_postgresql


def test_a_compared_checkout_runs_on_postgresql_too_beside_this_one(tmp_path: Path) -> None:
    """With ``--compare`` and ``--database-url``, the other checkout's Tertulia runs on
    PostgreSQL too (its own src, the same database), next to this one's there."""
    args = bench.run.parse_args(
        ["--servers=tertulia", f"--compare={tmp_path / 'base'}", f"--{URL}"]
    )
    specs = {spec.name: spec for spec in bench.run.server_specs(args)}
    assert list(specs) == [
        "tertulia-sqlite-compared",
        "tertulia-sqlite",
        "tertulia-postgresql-compared",
        "tertulia-postgresql",
    ]
    compared = specs["tertulia-postgresql-compared"]
    assert compared.source == (tmp_path / "base" / "src").resolve()
    assert compared.database_url == specs["tertulia-postgresql"].database_url is not None
    assert specs["tertulia-postgresql"].source is None
