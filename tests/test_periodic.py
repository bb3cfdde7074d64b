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


async def test_close_ends_a_job_that_swallowed_its_cancellation() -> None:
    """A library the job awaits may take the cancellation close() sends for its own (a
    timeout of its own firing at the same moment: redis-py's, asyncio.wait_for's on 3.11),
    and the job goes on as if nothing happened. close() still ends it, and it does not run
    again: a server stopping waited for the absences' sweep for ever (seen in CI: SIGTERM,
    then the sweep logged on, and the process was still there 10 s later)."""
    runs = 0
    cancelled = asyncio.Event()

    async def job() -> None:
        nonlocal runs
        runs += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()  # (and swallowed)
        if runs == 1:
            await asyncio.sleep(3600)  # (still at work when the next cancellation comes)

    periodic = Periodic("job", job, every=0.01, failed="job failed")
    periodic.start()
    await until(lambda: runs == 1)
    closing = asyncio.create_task(periodic.close())
    done, _ = await asyncio.wait({closing}, timeout=5)
    if not done:  # (the old way: waiting for ever; the test ends it)
        assert periodic._task is not None
        periodic._task.cancel()
        await closing
    assert done, "close() waits for ever"
    assert cancelled.is_set()
    assert runs == 1
    assert periodic._task is not None
    assert periodic._task.done()
