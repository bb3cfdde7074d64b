"""tertulia.serving: a uvicorn server as a task of the running loop."""

from __future__ import annotations

import socket

import pytest
import uvicorn

from tertulia.serving import serving


async def app(scope: dict, receive: object, send: object) -> None:  # pragma: no cover
    raise AssertionError("never called")


async def test_a_server_that_cannot_start_raises_runtime_error() -> None:
    """A port already taken: uvicorn exits with status 3 during start-up; the caller gets
    the RuntimeError ``serving`` promises, and its own event loop goes on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None)
        with pytest.raises(RuntimeError, match="failed to start"):
            async with serving(uvicorn.Server(config)):
                pass  # pragma: no cover
