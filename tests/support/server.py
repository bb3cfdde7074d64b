"""A real uvicorn server on port 0, in the test's own event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from tertulia.serving import serving
from tertulia.settings import Settings
from tertulia.web.app import create_app
from tertulia.web.httpprotocol import HttpProtocol
from tertulia.web.wsprotocol import WebSocketProtocol


@dataclass
class LiveServer:
    app: FastAPI
    settings: Settings
    port: int
    uvicorn: uvicorn.Server

    @property
    def requests(self) -> int:
        """HTTP requests being served now (their heads read, their answers not finished)."""
        return len(self.uvicorn.server_state.tasks)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def registry(self):  # type: ignore[no-untyped-def]
        return self.app.state.services.registry


@asynccontextmanager
async def live_server(settings: Settings, *, port: int = 0) -> AsyncIterator[LiveServer]:
    """Serve ``settings`` until the block ends; the lifespan runs for real."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        http=HttpProtocol,
        ws=WebSocketProtocol,
        ws_max_size=settings.ws_max_message,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    async with serving(server) as bound:
        yield LiveServer(app, settings, bound, server)
