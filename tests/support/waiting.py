"""Waiting on a condition with a time limit (tests never sleep a fixed time)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> None:
    """Return once ``check()`` (or what it returns, awaited) is true; ``TimeoutError`` after
    ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.01)
