"""A uvicorn server as a task of the running event loop (an external bot's trigger inside
its program; the test suite's live servers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

LIMIT = 20.0  # seconds to start, and to stop


async def _serve(server: uvicorn.Server) -> None:
    """``server.serve()``, whose failed start-up (uvicorn calls ``sys.exit(3)``) would
    otherwise leave this task with a ``SystemExit`` that ends the caller's event loop."""
    try:
        await server.serve()
    except SystemExit as exc:
        raise RuntimeError(f"the server failed to start (exit status {exc.code})") from exc


@asynccontextmanager
async def serving(server: uvicorn.Server) -> AsyncIterator[int]:
    """Start ``server``, yield the port it is bound to (its config may ask for port 0), and
    stop it when the block ends.

    Raises:
        TimeoutError: it did not start, or did not stop, within ``LIMIT`` seconds.
        RuntimeError: it stopped during start-up (the error it ended on, when it had one).
    """
    task = asyncio.create_task(_serve(server))
    try:
        async with asyncio.timeout(LIMIT):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the server stopped during start-up")
                await asyncio.sleep(0.005)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, LIMIT)
