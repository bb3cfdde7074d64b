"""A job a server process runs now and then for as long as it serves (retention's sweep,
the absences' sweep): started and closed in the app's lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)

CANCEL_AGAIN_AFTER = 0.1
"""Seconds :meth:`Periodic.close` waits for the job to end before cancelling it again."""


class Periodic:
    """Run ``job`` at :meth:`start` and then every ``every`` seconds (``retry`` seconds
    after a failure, which is logged as ``failed``: the database or broker away, say)."""

    def __init__(
        self,
        name: str,
        job: Callable[[], Awaitable[Any]],
        *,
        every: float,
        retry: float | None = None,
        failed: str,
    ) -> None:
        self.name, self.every, self.retry = name, every, every if retry is None else retry
        self._job, self._failed = job, failed
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        """Stop the job, at once if it is running.

        A library the job awaits may take the cancellation for its own (its own timeout
        firing at the same moment: redis-py's, ``asyncio.wait_for``'s on Python 3.11) and
        let the job go on: the job is cancelled again until it ends, and once closed it
        does not run again (a stopping server waited for the absences' sweep for ever)."""
        self._closed = True
        task = self._task
        if task is None:
            return
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_AGAIN_AFTER)

    async def _run(self) -> None:
        while not self._closed:
            try:
                await self._job()
                wait = self.every
            except Exception:
                log.exception(self._failed)
                wait = self.retry
            if not self._closed:
                await asyncio.sleep(wait)
