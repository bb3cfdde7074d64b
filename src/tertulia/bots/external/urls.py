"""URLs as they may be shown: in logs and in stored delivery errors.

A bot's URL may carry a secret (``https://user:password@host/...``, or a token in the query,
as serverless functions take theirs). What is shown keeps where the request went (scheme,
host, port, path) and drops the rest.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def shown(url: str) -> str:
    """``url`` without its user, password, query or fragment (``?…`` marks a query)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an invalid URL)"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    query = "…" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
