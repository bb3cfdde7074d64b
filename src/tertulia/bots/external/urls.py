"""URLs as they may be shown: in logs and in stored delivery errors.

A bot's URL may carry a secret: ``https://user:password@host/...``, a token in the query (as
serverless functions take theirs) or in the path (Slack's and Discord's webhooks). What is
shown keeps where the request went (scheme, host, port) and only marks a path or a query.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def shown(url: str) -> str:
    """``url`` as ``scheme://host[:port]``, then ``/…`` for a path and ``?…`` for a query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an invalid URL)"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    path = "/…" if parts.path not in ("", "/") else parts.path
    query = "…" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, path, query, ""))
