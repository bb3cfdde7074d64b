"""``GET /health``: whether this process can serve, for load balancers and supervisors.

200 when the database answers a ``SELECT 1`` and the broker a ping, each within
:data:`HEALTH_TIMEOUT`; 503 otherwise, naming the part that did not. The body is public,
so the reason goes to the log only. Not rate-limited, never cached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import structlog
from fastapi import APIRouter, Request

from tertulia.web.deps import services
from tertulia.web.responses import JSONBody
from tertulia.web.rest import route

HEALTH_TIMEOUT = 2.0
"""Seconds each part has to answer."""

log = structlog.get_logger(__name__)
router = APIRouter(tags=["meta"])


@route(router, "/health", ["GET", "HEAD"])
async def health(request: Request) -> JSONBody:
    """``{"status": "ok", "database": "ok", "broker": "ok"}``, or 503 with
    ``"unavailable"`` for the status and each part that did not answer."""
    registry = services(request).registry
    database, broker = await asyncio.gather(
        _check("database", registry.db.ping()), _check("broker", registry.broker.ping())
    )
    healthy = database and broker
    body = {
        "status": "ok" if healthy else "unavailable",
        "database": "ok" if database else "unavailable",
        "broker": "ok" if broker else "unavailable",
    }
    return JSONBody(
        body, status_code=200 if healthy else 503, headers={"Cache-Control": "no-store"}
    )


async def _check(part: str, probe: Awaitable[None]) -> bool:
    try:
        await asyncio.wait_for(probe, HEALTH_TIMEOUT)
    except Exception as exc:  # whatever stops it, the part is not serving
        reason = "no answer" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        log.warning("health check failed", part=part, error=reason)
        return False
    return True
