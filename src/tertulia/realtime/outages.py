"""A service's outage in the log: one line when it begins, a reminder at a low rate while it
lasts, one when it is over.

A reader or a renewal that retries a lost service fails on every attempt; logging each
(with its traceback) buries everything else. What an operator needs is when it began and
why, that it goes on, and when it ended.
"""

from __future__ import annotations

import time
from typing import Any

from tertulia.errors import describe

REMINDER_EVERY = 60.0
"""Seconds between two "still failing" lines of one outage."""


class OutageLog:
    """Counts the failures in a row of one thing that retries, and logs them as an outage.

    Args:
        log: the logger (structlog's).
        failing: the event when the first attempt fails (an error, without a traceback:
            the ``error`` field says what failed).
        back: the event when an attempt succeeds after failures (info).
        level: the level of ``failing`` and of its reminders (``failing`` + ``(still)``).
    """

    def __init__(self, log: Any, *, failing: str, back: str, level: str = "error") -> None:
        self._log = log
        self._failing = failing
        self._back = back
        self._level = level
        self.failures = 0
        """Attempts failed in a row (0: working)."""
        self._since = 0.0
        self._reminded = 0.0

    def failed(self, error: BaseException) -> None:
        """An attempt failed: logged if it is the first of an outage, or if the last
        line about it is ``REMINDER_EVERY`` seconds old."""
        now = time.monotonic()
        self.failures += 1
        if self.failures == 1:
            self._since = self._reminded = now
            getattr(self._log, self._level)(self._failing, error=describe(error))
        elif now - self._reminded >= REMINDER_EVERY:
            self._reminded = now
            getattr(self._log, self._level)(
                f"{self._failing} (still)",
                error=describe(error),
                attempts=self.failures,
                seconds=round(now - self._since),
            )

    def succeeded(self) -> None:
        """An attempt worked: logs the end of the outage, if there was one."""
        if self.failures:
            self._log.info(
                self._back,
                attempts=self.failures,
                seconds=round(time.monotonic() - self._since, 1),
            )
            self.failures = 0
