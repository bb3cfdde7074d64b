"""Rate limits per client address and per participant (PROTOCOL 9 #40, 4.1).

Built on the ``limits`` library (moving windows). Counters live in memory, or in Redis when
the broker is Redis, so that several processes share them. Limits (``rate_limits``):

- ``create``: conversations created per client address,
- ``join``: joins per client address,
- ``handshake``: WebSocket handshakes per client (BLAB's web client reconnects every 500 ms
  forever after a failure): per address, session cookie and conversation, so that a stale
  tab's refused handshakes, or a bot host's hundreds of conversations, do not use up the
  budget of the other clients behind the same address; and, against a client that makes
  up cookies, at most ``HANDSHAKES_PER_ADDRESS`` times as many per address. Refused
  handshakes count too (each costs a session lookup). A throttled handshake is answered
  HTTP 429 with ``Retry-After``, not the 403 of a refusal: a client may come back later.
- ``message``: messages per participant, REST and WebSocket together,
- ``manager``: the same for a manager bot's participant, in place of ``message``: it sends
  a command for each message of its conversation (``tertulia.settings.DEFAULT_RATE_LIMITS``
  says why it is higher, and why it is a limit all the same).
- ``rename``: renames per participant (each publishes a ``state`` frame to the whole
  conversation).

When Redis fails (refused, reset, or no answer within ``REDIS_TIMEOUT``), the limits fail
over deliberately to this process's own counters, for ``REDIS_RETRY`` seconds at a time, and
go back to Redis when it answers again: a request is never refused with a 500, nor held up
for long, because the counters are unreachable, and the limits still hold per process.

The client address is the one uvicorn reports: behind a reverse proxy, uvicorn takes it
from ``X-Forwarded-For`` when the proxy is trusted (``--forwarded-allow-ips``). An IPv6
address is counted by its /64 network, an IPv4-mapped one as its IPv4 address
(:func:`counted_address`).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import math
import time

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import BlockingConnectionPool
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from tertulia.domain.ids import canonical_id
from tertulia.realtime.broker import REDIS_SCHEMES
from tertulia.realtime.redis import REDIS_CONNECTIONS
from tertulia.settings import Settings
from tertulia.web.responses import JSONBody, refuse
from tertulia.web.sessions import cookie_key

log = structlog.get_logger(__name__)
REDIS_TIMEOUT = 1.0  # seconds a hit may wait for Redis
REDIS_RETRY = 5.0  # seconds on local counters before Redis is tried again
HANDSHAKES_PER_ADDRESS = 10  # times the ``handshake`` limit one address may make in all


class RateLimits:
    """Checks and counts hits against the configured limits.

    Counters need :meth:`start` (in the app's lifespan) and :meth:`close` for Redis.
    """

    def __init__(self, settings: Settings) -> None:
        self._url = settings.broker_url
        # (Installations sharing a Redis database number count apart: broker_prefix.)
        self._key_prefix = "tertulia-limits" + (
            f":{settings.broker_prefix}" if settings.broker_prefix else ""
        )
        self._pool: BlockingConnectionPool | None = None
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._limiter = self._local
        self._redis_down_until: float | None = None
        self._rules: dict[str, RateLimitItem] = {
            kind: parse(rule) for kind, rule in settings.rate_limits.items() if rule
        }
        handshake = self._rules.get("handshake")
        if handshake is not None:
            self._rules["handshake_address"] = type(handshake)(
                handshake.amount * HANDSHAKES_PER_ADDRESS, handshake.multiples
            )

    async def start(self) -> None:
        if self._url.startswith(REDIS_SCHEMES) and self._rules:
            # (At most as many connections as the broker's pool holds, a hit waiting
            # REDIS_TIMEOUT for a free one: past redis-py's plain pool's 100 a hit failed
            # at once, and was counted locally as if Redis were down.)
            self._pool = BlockingConnectionPool.from_url(
                self._url,
                max_connections=REDIS_CONNECTIONS,
                timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
                socket_timeout=REDIS_TIMEOUT,
            )
            # (The pool connects; the library wants its own name for the scheme all the same:
            # redis-py's unix:// is its redis+unix://.)
            scheme, rest = self._url.split("://", 1)
            storage: Storage = RedisStorage(
                f"async+{'redis+unix' if scheme == 'unix' else scheme}://{rest}",
                implementation="redispy",
                key_prefix=self._key_prefix,
                connection_pool=self._pool,  # type: ignore[arg-type]
                wrap_exceptions=True,
            )
            self._limiter = MovingWindowRateLimiter(storage)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    def _counters(self) -> MovingWindowRateLimiter:
        """Where hits are counted now: Redis, unless it failed less than ``REDIS_RETRY``
        seconds ago (or there is none), this process's own counters."""
        down_until = self._redis_down_until
        if down_until is not None and time.monotonic() < down_until:
            return self._local
        return self._limiter

    async def hit(self, kind: str, key: str) -> bool:
        """Count one hit; False when the limit is already reached (the hit is refused)."""
        rule = self._rules.get(kind)
        if rule is None:
            return True
        if self._counters() is self._local:
            return await self._local.hit(rule, kind, key)
        down_until = self._redis_down_until
        try:
            async with asyncio.timeout(REDIS_TIMEOUT * 2):
                allowed = await self._limiter.hit(rule, kind, key)
        except Exception as exc:  # StorageError, a timeout: whatever keeps Redis from counting
            if down_until is None:
                log.warning("rate limits unreachable in redis; counting locally", error=repr(exc))
            self._redis_down_until = time.monotonic() + REDIS_RETRY
            return await self._local.hit(rule, kind, key)
        if down_until is not None:
            log.info("rate limits back in redis")
            self._redis_down_until = None
        return allowed

    async def retry_after(self, kind: str, key: str) -> int:
        """Whole seconds (at least 1) until ``key`` may hit ``kind`` again: when the oldest
        hit of its window expires. Asked only after a refused hit; when the counters cannot
        say, the window's whole length."""
        rule = self._rules[kind]
        try:
            async with asyncio.timeout(REDIS_TIMEOUT * 2):
                stats = await self._counters().get_window_stats(rule, kind, key)
        except Exception:  # (as in hit: Redis away) the longest it can be
            return rule.get_expiry()
        return min(rule.get_expiry(), max(1, math.ceil(stats.reset_time - time.time())))


IPV6_CLIENT_PREFIX = 64  # bits of an IPv6 address that name one client


def counted_address(host: str) -> str:
    """Under what a client address is counted: an IPv6 one by its /64 network (a host is
    usually given a whole /64, so counting each address would let one client make up as
    many as it likes), an IPv4-mapped one (``::ffff:198.51.100.7``) as its IPv4 address,
    anything else (IPv4, or no address at all) as it is."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False)
        return str(network)
    return str(address)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return counted_address(client[0]) if client else "unknown"


def _handshake_client(scope: Scope) -> str:
    """Who a handshake's ``handshake`` limit counts: its address, its session cookie (a
    digest: the key is a bearer secret, kept out of Redis) and its path's conversation (in
    its canonical form: another spelling of the same id is the same client; anything else
    in the path counts as one, so made-up paths add no keys)."""
    key = cookie_key(HTTPConnection(scope)) or ""
    digest = hashlib.blake2b(key.encode(), digest_size=12).hexdigest() if key else "-"
    path: str = scope.get("path", "")
    conversation = canonical_id(path.removeprefix("/ws/chat/").rstrip("/")) or "-"
    return f"{_client(scope)} {digest} {conversation}"


class RateLimitMiddleware:
    """Applies ``create``, ``join`` and ``handshake`` limits before routing."""

    def __init__(self, app: ASGIApp, limits: RateLimits, api: str) -> None:
        self.app = app
        self.limits = limits
        self.create_paths = {f"{api}/conversations", f"{api}/conversations/"}
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "websocket" and path.startswith("/ws/chat/"):
            if not await self._handshake(scope, receive, send):
                return
        elif scope["type"] == "http" and scope["method"] == "POST":
            kind = None
            if path in self.create_paths:
                kind = "create"
            elif path.rstrip("/").endswith("/join") and path.startswith(self.api):
                kind = "join"
            if kind is not None and not await self.limits.hit(kind, _client(scope)):
                response = JSONBody(
                    {"detail": "Request was throttled.", "code": "throttled"},
                    status_code=429,
                    headers={"Retry-After": "10"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _handshake(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Count a handshake; when over a limit, answer it HTTP 429 and return False."""
        # (the address first: its one key bounds how many client keys it can make)
        for kind, key in (
            ("handshake_address", _client(scope)),
            ("handshake", _handshake_client(scope)),
        ):
            if not await self.limits.hit(kind, key):
                break
        else:
            return True
        wait = await self.limits.retry_after(kind, key)
        response = JSONBody(
            {"detail": "Too many handshakes; try again later.", "code": "throttled"},
            status_code=429,
            headers={"Retry-After": str(wait)},
        )
        await refuse(scope, receive, send, response, close_code=4429)
        return False
