"""What a process counts, for Prometheus: ``GET /metrics`` when ``metrics = true``.

Each process counts for itself since it started (scrape every process of several). The
metrics live in prometheus_client's default registry, which adds the process's own (CPU
seconds, resident memory, open files) and Python's (collections). Labels are bounded
whatever clients send: bot names (as many as configured bots, however many
conversations), HTTP methods and statuses, and WebSocket close codes (each from a fixed
set, the rest counted as ``other``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""The methods counted by name; any other counts as ``other`` (labels stay few whatever
clients send)."""
CLOSE_CODES = frozenset({1000, 1001, 1005, 1006, 1008, 1009, 1011, 1012, 1013, 4403, 4404, 4429})
"""The close codes counted by number: the protocol's own, and the server's (web/ws.py)."""

MESSAGES_STORED = Counter(
    "tertulia_messages_stored",
    "Messages stored: people's, bots', system events and manager commands.",
)
CONVERSATIONS_CREATED = Counter("tertulia_conversations_created", "Conversations created.")
WEBSOCKETS_OPEN = Gauge("tertulia_websockets_open", "WebSockets open: people's and external bots'.")
BOT_CALLS = Counter(
    "tertulia_bot_calls",
    "Calls of internal bots (each attempt of a delivery), by outcome: ok, error or timeout.",
    ["bot", "outcome"],
)
BOT_CALL_SECONDS = Histogram(
    "tertulia_bot_call_seconds",
    "How long calls of internal bots took, any wait for a free slot included.",
    ["bot"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
BOT_DELIVERIES_FAILED = Counter(
    "tertulia_bot_deliveries_failed",
    "Bot deliveries that failed for good, every retry spent.",
    ["bot"],
)
HTTP_REQUESTS = Counter(
    "tertulia_http_requests",
    "HTTP requests, by method (other: not one of the API's) and the status answered "
    "(0: none, the client went away first).",
    ["method", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "tertulia_http_request_seconds",
    "How long HTTP requests took, from their head read to their answer written.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
WEBSOCKETS_CLOSED = Counter(
    "tertulia_websockets_closed",
    "WebSockets ended, by close code: the client's, or the server's (other: a code of the "
    "client's not in the protocol; none: the connection broke without one).",
    ["code"],
)


def socket_closed(code: int | None) -> None:
    """Count an accepted WebSocket's end by its close code (None: it broke without one)."""
    label = "none" if code is None else str(code) if code in CLOSE_CODES else "other"
    WEBSOCKETS_CLOSED.labels(label).inc()
