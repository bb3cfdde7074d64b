"""``GET /health``: whether this process can serve, for load balancers and supervisors.

200 when the database answers a ``SELECT 1`` and the broker a ping, each within
:data:`HEALTH_TIMEOUT`; 503 otherwise, naming the part that did not. The body is public,
so the reason goes to the log only. Not rate-limited, never cached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

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


_abandoned: set[asyncio.Task[None]] = set()
"""Probes past their time, cancelled and left to end on their own (kept referenced)."""


async def _check(part: str, probe: Coroutine[Any, Any, None]) -> bool:
    task = asyncio.ensure_future(probe)
    done, _ = await asyncio.wait({task}, timeout=HEALTH_TIMEOUT)
    if not done:
        # Not waited for: a probe cancelled on a connection the database holds without
        # answering (a partition) may take as long to end as the outage, and wait_for
        # waited for it (chaos QA: /health answered after 35 s, not 2).
        task.cancel()
        _abandoned.add(task)
        task.add_done_callback(_ended)
        log.warning("health check failed", part=part, error="no answer")
        return False
    if (exc := task.exception()) is not None:  # whatever stops it, the part is not serving
        log.warning("health check failed", part=part, error=f"{type(exc).__name__}: {exc}")
        return False
    return True


def _ended(task: asyncio.Task[None]) -> None:
    """An abandoned probe ended: let it go, its error read (said already as "no answer";
    unread, asyncio would log it as never retrieved, once per probe)."""
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()
