"""What a process counts, for Prometheus: ``GET /metrics`` when ``metrics = true``.

Each process counts for itself since it started (scrape every process of several). The
metrics live in prometheus_client's default registry, which adds the process's own (CPU
seconds, resident memory, open files) and Python's (collections). Bot names are the only
labels: there are as many as configured bots, however many conversations.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
