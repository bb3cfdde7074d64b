"""The API root, installed bots and upload limits."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tertulia.web.deps import services
from tertulia.web.responses import JSONBody
from tertulia.web.rest import route
from tertulia.web.schemas import BotsOut, LimitsOut

router = APIRouter(tags=["meta"])


@route(router, "", ["GET", "HEAD"])
async def api_root(request: Request) -> JSONBody:
    """Links to the collections, and whether the conversations are listed to anyone
    (``rooms``; a Tertulia extension: the web client asks before listing them)."""
    return JSONBody(
        {
            "conversations": str(request.url_for("list_conversations")),
            "rooms": services(request).settings.rooms,
        }
    )


@route(router, "/bots", ["GET", "HEAD"], response_model=BotsOut)
async def bots(request: Request) -> JSONBody:
    """Names of the bots a conversation may invite (the manager is not among them).

    ``limit`` and ``page`` are ignored: the list is never paginated."""
    settings = services(request).settings
    names = [name for name in settings.bots if name != settings.manager]
    return JSONBody({"results": names})


@route(router, "/limits", ["GET", "HEAD"], response_model=LimitsOut)
async def limits(request: Request) -> JSONBody:
    """Upload limits in bytes per kind of file; 0 means that kind is disabled."""
    return JSONBody(services(request).settings.chat_limits)
