"""The schedule of a process's periodic jobs (retention, absences): src/tertulia/periodic.py."""

from __future__ import annotations

import asyncio
import itertools

from structlog.testing import capture_logs

from support.waiting import until
from tertulia.periodic import Periodic


async def test_a_job_runs_at_start_then_every_period_and_stops_when_closed() -> None:
    runs: list[float] = []

    async def job() -> None:
        runs.append(asyncio.get_running_loop().time())

    periodic = Periodic("job", job, every=0.05, failed="job failed")
    periodic.start()
    try:
        await until(lambda: len(runs) >= 3)
    finally:
        await periodic.close()
    assert all(later - earlier >= 0.04 for earlier, later in itertools.pairwise(runs))
    assert periodic._task is not None
    assert periodic._task.done()  # (no timer left behind)


async def test_a_failure_is_logged_and_tried_again_after_the_retry_wait() -> None:
    """The database or broker is away once: the job is not lost, and goes on."""
    calls = 0

    async def job() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("broker away")

    periodic = Periodic("job", job, every=3600, retry=0.01, failed="job failed")
    with capture_logs() as logs:
        periodic.start()
        try:
            await until(lambda: calls >= 2)
        finally:
            await periodic.close()
    assert [entry["event"] for entry in logs] == ["job failed"]
    assert logs[0]["log_level"] == "error"
