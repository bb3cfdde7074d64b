"""``GET /metrics`` (only with ``metrics = true``): this process's metrics
(tertulia/metrics.py) in Prometheus's text format, never cached; and the middleware that
counts and times HTTP requests then (:class:`RequestMetrics`)."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tertulia.metrics import HTTP_METHODS, HTTP_REQUEST_SECONDS, HTTP_REQUESTS


class RequestMetrics:
    """Counts each HTTP request by method and the status it was answered with, and times
    it (``tertulia_http_requests``, ``tertulia_http_request_seconds``). Outermost, so that
    every refusal counts: the host check's, the rate limits', a stop's 503. A failure that
    no handler answered counts as 500, as uvicorn then answers; a request whose client went
    away before any answer, as 0."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            status = status or 500
            raise
        finally:
            method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
            HTTP_REQUESTS.labels(method, str(status)).inc()
            HTTP_REQUEST_SECONDS.observe(time.perf_counter() - started)


async def metrics(request: Request) -> Response:
    return Response(
        generate_latest(REGISTRY),
        media_type=CONTENT_TYPE_LATEST,
        headers={"Cache-Control": "no-store"},
    )
