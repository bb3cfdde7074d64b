"""Which ``Host`` a request or WebSocket handshake may name: the wall against DNS rebinding.

A page of ``attacker.example`` whose name the attacker then points at 127.0.0.1 is, to the
browser, of the same origin as the server: its requests carry ``Host: attacker.example:8000``
and a matching ``Origin``, which the origin check (web/origins.py) lets through as the
server's own. Only the ``Host`` tells them apart, so it is checked before anything else:

- ``allowed_hosts`` set: the names it lists, as Starlette's ``TrustedHostMiddleware``
  matches them (which judges them here): ``chat.example.com``, ``*.example.com`` (its
  subdomains), ``[2001:db8::1]``, or ``*`` (any); any port.
- unset: a connection that came to a loopback address (the server listening on 127.0.0.1
  or ::1, or reached from its own machine however it listens) may name only ``localhost``,
  ``127.0.0.1`` or ``[::1]``, which no page can point elsewhere; one that came to another
  address (reached over a network, under whatever names lead to it) may name any host, and
  ``production`` warns at start that ``allowed_hosts`` should be set.

``/health`` answers whatever the ``Host``: a load balancer's probe names the address it
checks, and the answer says only whether the process can serve.

Refused: HTTP 400 ``{"detail": "Host not allowed.", "code": "host"}``, a WebSocket
handshake too (as its denial response), and a warning in the log (at most one every
``OUTAGE_WARNING_EVERY`` seconds, with the host and how many were left out).
"""

from __future__ import annotations

import ipaddress

import structlog
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tertulia.logs import OUTAGE_WARNING_EVERY, Sampled
from tertulia.web.responses import JSONBody, refuse

log = structlog.get_logger(__name__)
LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"]
UNCHECKED_PATHS = {"/health"}
_PASSED = "tertulia.host_passed"


async def _passed(scope: Scope, receive: Receive, send: Send) -> None:
    scope[_PASSED] = True


async def _nothing() -> Message:  # (never read: a judge only answers)
    return {"type": "http.disconnect"}


async def _discard(message: Message) -> None:
    """Starlette's plain-text refusal, not sent: Tertulia answers in its JSON shape."""


def _to_loopback(scope: Scope) -> bool:
    """Whether the connection came to a loopback address of this machine (not a Unix
    socket, nor an in-process test client's made-up ``testserver``)."""
    server = scope.get("server")
    if not server:
        return False
    try:
        address = ipaddress.ip_address(server[0])
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


class HostCheck:
    """Refuses HTTP requests and WebSocket handshakes whose ``Host`` is not allowed.

    Args:
        app: the application within.
        allowed: the ``allowed_hosts`` setting (None: unset, see the module's docstring).
    """

    def __init__(self, app: ASGIApp, allowed: list[str] | None) -> None:
        self.app = app
        # Starlette's middleware judges; its answer (plain text) is not sent: a judge's
        # inner app only marks the scope it was handed as passed.
        self._configured = (
            None if allowed is None else TrustedHostMiddleware(_passed, allowed, www_redirect=False)
        )
        self._loopback = TrustedHostMiddleware(_passed, LOOPBACK_NAMES, www_redirect=False)
        self._refusals = Sampled(every=OUTAGE_WARNING_EVERY)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] in ("http", "websocket")
            and scope.get("path") not in UNCHECKED_PATHS
            and not await self._allowed(scope)
        ):
            await self._refuse(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _allowed(self, scope: Scope) -> bool:
        if sum(name == b"host" for name, _ in scope["headers"]) > 1:
            # (RFC 9112 3.2: answered 400; the check below reads the first only, and a
            # proxy or a log reading the last would disagree with it)
            return False
        judge = self._configured
        if judge is None:
            if not _to_loopback(scope):
                return True
            judge = self._loopback
        probe = dict(scope)  # (the mark stays off the request's own scope)
        await judge(probe, _nothing, _discard)
        return bool(probe.get(_PASSED, False))

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        self._refusals.warning(
            log,
            "Host not allowed (allowed_hosts); answered 400",
            host=host[:100],
            path=str(scope.get("path", ""))[:200],
        )
        response = JSONBody({"detail": "Host not allowed.", "code": "host"}, status_code=400)
        await refuse(scope, receive, send, response, close_code=1008)
