"""The FastAPI application: routes, error mapping, and the resources of its lifespan."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from tertulia.absences import AbsenceSweep
from tertulia.bots.checks import check_bot
from tertulia.chats import Chat, ChatRegistry
from tertulia.files import file_store
from tertulia.files.store import OWNER_MARK
from tertulia.ownership import other_owner
from tertulia.realtime.broker import REDIS_SCHEMES, create_broker
from tertulia.retention import Retention
from tertulia.settings import Settings
from tertulia.storage.database import open_database
from tertulia.storage.migrate import head_revision, upgrade_async
from tertulia.web import errors, health, media, metrics
from tertulia.web.deps import Services
from tertulia.web.hosts import HostCheck
from tertulia.web.origins import Origins
from tertulia.web.ratelimit import RateLimitMiddleware, RateLimits
from tertulia.web.responses import JSONBody
from tertulia.web.rest import conversations, messages, meta
from tertulia.web.schemas import documented_as_answered
from tertulia.web.sessions import CookieRenewal, Sessions
from tertulia.web.socketcap import SocketCounts
from tertulia.web.stopping import StopCancellations
from tertulia.web.ws import chat_socket

log = structlog.get_logger(__name__)
API = "/api/chat"
STATIC = Path(__file__).parent / "static"
CORS_HEADERS = [
    "accept",
    "accept-encoding",
    "authorization",
    "content-type",
    "dnt",
    "origin",
    "user-agent",
    "x-csrftoken",
    "x-requested-with",
]
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# The page runs only the server's own scripts and styles and talks only to its own origin
# (its WebSocket included: named too, as browsers before CSP 3 did not count ws: as 'self');
# images and players may show external files (http(s) URLs) and the previews of files
# being sent (blob:). Nothing from the server is parsed as HTML anyway (static/js/dom.js):
# this is the second wall.
POLICY = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob: https: http:",
    "media-src 'self' blob: https: http:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
]
HOST = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,255}$")


def page_headers(request_headers: Headers) -> dict[str, str]:
    """The page's headers: no caching, its Content-Security-Policy, no sniffing."""
    host = request_headers.get("host", "")
    sockets = f" ws://{host} wss://{host}" if HOST.match(host) else ""
    return {
        "Cache-Control": "no-cache",
        "Content-Security-Policy": "; ".join([*POLICY, f"connect-src 'self'{sockets}"]),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }


class OriginCheck:
    """Refuses state-changing requests from foreign origins (instead of CSRF tokens).

    Allowed: no ``Origin`` header, the server's own origin, or a configured one
    (web/origins.py).
    """

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        self.origins = Origins(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            headers = dict(scope["headers"])
            origin = headers.get(b"origin", b"").decode("latin-1")
            host = headers.get(b"host", b"").decode("latin-1")
            if not self.origins.allow(origin, host):
                response = JSONBody(
                    {"detail": "Origin not allowed.", "code": "origin"}, status_code=403
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class RevalidatedStaticFiles(StaticFiles):
    """The client's files, each use revalidated (``no-cache``; unchanged, a 304): after an
    upgrade no browser runs an old module beside new ones, as the heuristic freshness of a
    file without ``Cache-Control`` (a tenth of its age) would let it. Each is sent with
    ``nosniff``, and a page (``/static/index.html`` is the client too) with the page's
    headers, its Content-Security-Policy and ``frame-ancestors 'none'`` among them: served
    without them, the client could be framed (security QA)."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        if str(full_path).endswith(".html"):
            response.headers.update(page_headers(Headers(scope=scope)))
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


class ListedOriginsCORS(CORSMiddleware):
    """Starlette's CORS, but silent for unlisted origins: they get no CORS headers at all
    (Starlette would still send its allow-credentials, methods and headers)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            origin = Headers(scope=scope).get("origin")
            if origin is not None and not self.is_allowed_origin(origin):
                await self.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def preflight_response(self, request_headers: Headers) -> Response:
        """Starlette's answer, with a refusal in Tertulia's JSON error shape (Starlette
        writes it as plain text: "Disallowed CORS headers")."""
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        kept = {
            k: v for k, v in response.headers.items() if k not in ("content-type", "content-length")
        }
        detail = bytes(response.body).decode()
        return JSONBody({"detail": detail, "code": "cors"}, status_code=400, headers=kept)


def _docs_pages_as_other_paths(app: FastAPI, pages: list[str]) -> None:
    """The documentation pages (FastAPIOffline's ``GET`` routes) answer ``HEAD`` too, and
    without their trailing slash, as every path under ``/api/chat/`` does."""
    for route in list(app.routes):
        if isinstance(route, APIRoute) and route.path in pages and route.methods:
            route.methods.add("HEAD")
            app.add_api_route(
                route.path.rstrip("/"),
                route.endpoint,
                methods=["GET", "HEAD"],
                include_in_schema=False,
            )


def create_app(settings: Settings) -> FastAPI:
    """Build the application; its resources are made in the lifespan, not here.

    Args:
        settings: a checked configuration (see :func:`tertulia.settings.load_settings`).

    Raises:
        ConfigurationError: a bot's class says its configuration cannot work.
    """
    bots = {name: (spec, spec.resolve()) for name, spec in settings.bots.items()}
    for name, (spec, cls) in bots.items():
        check_bot(name, spec, cls)  # (``tertulia serve`` did already: preflight)
    rate_limits = RateLimits(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_migrate:
            found = await upgrade_async(settings.database_url, settings.database_schema)
            if found != (head := head_revision()):  # (a start that migrated says so)
                log.info("database migrated", from_revision=found or "none", to_revision=head)
        # Each resource's close is registered as soon as it exists, so a start that fails
        # half-way (a broker that cannot be reached) still closes what was opened; they
        # close in reverse: registry, sessions, Chat, http, rate limits, broker, database.
        async with AsyncExitStack() as resources:
            db = await open_database(settings.database_url, schema=settings.database_schema)
            resources.push_async_callback(db.close)
            broker = create_broker(
                settings.broker_url,
                presence_lease=settings.presence_lease,
                prefix=settings.broker_prefix,
            )
            resources.push_async_callback(broker.close)
            await broker.start()
            resources.push_async_callback(rate_limits.close)
            await rate_limits.start()
            http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
            resources.push_async_callback(http.aclose)
            registry = ChatRegistry(settings, db, broker, bots, http=http)
            resources.callback(Chat.bind, None)
            Chat.bind(registry)
            resources.push_async_callback(registry.close)
            await registry.start()
            absences = AbsenceSweep(registry)
            resources.push_async_callback(absences.close)
            absences.start()
            app.state.absences = absences  # (tests wait on its sweeps)
            sessions = Sessions(db, settings, registry.outages)
            resources.push_async_callback(sessions.close)
            registry.forgetting.append(sessions.forget_conversation)
            retention = None
            if settings.retention_days is not None:
                retention = Retention(registry, settings.retention_days)
                resources.push_async_callback(retention.close)
                retention.start()
            app.state.retention = retention  # (tests sweep at once with it)
            sockets = SocketCounts(settings.ws_max_sockets_per_participant)
            app.state.services = Services(
                settings, registry, sessions, http, rate_limits, sockets, registry.outages
            )
            # (The schema only when set: one database may hold several installations.)
            where = {"schema": settings.database_schema} if settings.database_schema else {}
            if settings.broker_prefix:  # (processes that should hear each other share it)
                where["broker_prefix"] = settings.broker_prefix
            log.info(
                "tertulia started",
                database=db.display_url,
                **where,
                broker=settings.broker_url.split("@")[-1],
                bots=list(bots),
            )
            if settings.is_sqlite and settings.broker_url.startswith(REDIS_SCHEMES):
                log.warning(
                    "a Redis broker with a SQLite database: Redis is for several server "
                    "processes, and a SQLite file serves one; for several, use PostgreSQL"
                )
            if settings.production and settings.allowed_hosts is None:
                log.warning(
                    "allowed_hosts is not set in production: a connection to an address "
                    "other than loopback is served whatever its Host, which a page can "
                    "make its own name (DNS rebinding); list the server's public names"
                )
            # (made here too for a server started without ``tertulia serve``'s preflight; a
            # root that cannot be made is the uploads' trouble, answered 503, not the start's)
            with contextlib.suppress(OSError):
                settings.media_root.mkdir(parents=True, exist_ok=True)
            owner = await other_owner(db.url, db.schema, file_store(settings.media_root))
            if owner is not None:
                log.warning(
                    "media_root holds the files of another database: this one deletes none "
                    f"there (a copy's; give it a media_root of its own). If this database "
                    f"replaced that one (moved elsewhere), remove {OWNER_MARK} from "
                    "media_root and start again",
                    media_root=str(settings.media_root.resolve()),
                    owner=owner[:300],
                )
            if settings.production and settings.rooms:
                log.warning(
                    "rooms are on in production: anyone can list, join and read every "
                    "conversation (rooms = false unless that is meant)"
                )
            yield
        log.info("tertulia stopped")

    # (FastAPI as it is, with Swagger UI's and ReDoc's files served from /_docs/static/
    # rather than loaded from a CDN: the pages work on a server with no way out)
    app = FastAPIOffline(
        title="Tertulia",
        summary="A chat controller for people and bots, wire-compatible with BLAB.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=f"{API}/_docs/",
        openapi_url=f"{API}/_docs/openapi.json",
        redoc_url=f"{API}/_docs/redoc/",
        static_url=f"{API}/_docs/static",
        swagger_ui_oauth2_redirect_url=f"{API}/_docs/oauth2-redirect",
        redirect_slashes=False,
        default_response_class=JSONBody,
    )
    _docs_pages_as_other_paths(app, [f"{API}/_docs/", f"{API}/_docs/redoc/"])
    errors.install(app)
    documented_as_answered(app)
    for router in (meta.router, conversations.router, messages.router):
        app.include_router(router, prefix=API)
    app.include_router(media.router)
    app.include_router(health.router)
    if settings.metrics:
        app.add_api_route("/metrics", metrics.metrics, methods=["GET"], include_in_schema=False)
    app.add_api_websocket_route("/ws/chat/{conversation_id}/", chat_socket)
    app.add_api_websocket_route("/ws/chat/{conversation_id}", chat_socket)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def home(request: Request) -> FileResponse:
        """The browser client (static files under ``/static/``, no build step)."""
        return FileResponse(STATIC / "index.html", headers=page_headers(request.headers))

    app.mount("/static", RevalidatedStaticFiles(directory=STATIC), name="static")

    app.add_middleware(CookieRenewal)
    app.add_middleware(RateLimitMiddleware, limits=rate_limits, api=API)
    app.add_middleware(OriginCheck, allowed=settings.allowed_origins)
    if settings.allowed_origins:
        app.add_middleware(
            ListedOriginsCORS,
            allow_origins=settings.allowed_origins,
            allow_credentials=True,
            # (the methods some route serves: a preflight for DELETE or PUT was allowed, and
            # the request itself then answered 405)
            allow_methods=["GET", "HEAD", "OPTIONS", "PATCH", "POST"],
            allow_headers=CORS_HEADERS,
            max_age=86400,
        )
    app.add_middleware(HostCheck, allowed=settings.allowed_hosts)  # before all that reads Host
    app.add_middleware(StopCancellations)  # whatever a cancellation cut short
    if settings.metrics:
        app.add_middleware(metrics.RequestMetrics)  # outermost: every answer counts
    return app
