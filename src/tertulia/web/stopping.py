"""Requests cut short by the server's stop: answered "try again", never 500.

On SIGTERM uvicorn stops accepting connections, gives the running requests its graceful
time (``timeout_graceful_shutdown``: :func:`tertulia.cli.serve`) and then cancels their
tasks. A cancelled task must end by its ``CancelledError``; uvicorn catches it, logs it as
an error with its traceback and, when no answer has been begun, answers ``500 Internal
Server Error``. Nothing was wrong with the request (an upload from a slow phone still
arriving, say), but a client takes 500 as final: BLAB's web client marks the file "Not
sent" for good.

:class:`StopCancellations`, the outermost middleware, begins the answer itself before the
``CancelledError`` goes on: ``503 {"detail", "code": "unavailable", "retry_after"}`` with
``Retry-After`` and ``Connection: close``. uvicorn, finding the answer begun, only closes
the connection once it is written: the client reads a 503 and sends the same request
again to the restarted server (or, when it was still sending a body the server can no
longer read, finds its connection closed, which it also retries). An answer already begun
(a file being downloaded) cannot be changed any more: its connection closes mid-body, which
its client sees as cut short. What the request had half-stored is undone by its own code as
the cancellation unwinds it (an upload's spool file and kept file: ``uploads.py``); a
message is stored in one transaction, which a cancellation before its commit rolls back.

Each such request is logged here once, as a warning with its method and path; uvicorn's
error for the same cancellation, a traceback saying nothing more, is left out of the log
(:class:`tertulia.logs.QuietStopCancellations`).
"""

from __future__ import annotations

import asyncio

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tertulia.errors import Unavailable
from tertulia.web.responses import JSONBody

log = structlog.get_logger(__name__)

RETRY_AFTER = 5  # seconds: a restart's usual length (start-up migrates, then resumes)
STOPPING = "The server is restarting; send the request again."


class StopCancellations:
    """Answers 503 (retryable) to a request cancelled before its answer began (module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        begun = False

        async def sending(message: Message) -> None:
            nonlocal begun
            begun = begun or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except asyncio.CancelledError:
            log.warning(
                "request cancelled by the server's stop",
                method=scope.get("method"),
                path=scope.get("path"),
                answered=503 if not begun else "cut short",
            )
            if not begun:
                error = Unavailable(STOPPING, retry_after=RETRY_AFTER)
                response = JSONBody(
                    error.body(),
                    status_code=error.status,
                    headers={**(error.headers() or {}), "Connection": "close"},
                )
                # (The cancellation has been delivered, so these awaits run: a few
                # hundred bytes handed to the transport, which uvicorn then closes.)
                await response(scope, receive, send)
            raise


__all__ = ["RETRY_AFTER", "StopCancellations"]
