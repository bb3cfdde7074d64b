"""A job a server process runs now and then for as long as it serves (retention's sweep,
the absences' sweep): started and closed in the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


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

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._job()
                wait = self.every
            except Exception:
                log.exception(self._failed)
                wait = self.retry
            await asyncio.sleep(wait)
