"""Which ``Origin`` may change state or open a socket (instead of CSRF tokens; PROTOCOL 4.1).

Allowed: no ``Origin`` header (not a browser), the server's own origin (the ``Host`` the
request came to, over http or https), or one configured in ``allowed_origins``. Origins
compare as browsers form them: case-insensitively, without a trailing slash, and without
a scheme's default port (``https://chat.example.com:443`` is ``https://chat.example.com``).
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_PORTS = {"http": "80", "https": "443"}


def normalized(origin: str) -> str:
    """``origin`` as compared: lower case, no trailing slash, no default port."""
    origin = origin.strip().lower().rstrip("/")
    scheme, separator, rest = origin.partition("://")
    port = DEFAULT_PORTS.get(scheme)
    if separator and port is not None and rest.endswith(f":{port}"):
        rest = rest[: -len(port) - 1]
    return f"{scheme}{separator}{rest}"


class Origins:
    """The configured origins, ready to check requests against."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self._allowed = {normalized(o) for o in allowed}

    def allow(self, origin: str | None, host: str) -> bool:
        """Whether a request with this ``Origin`` (None: none) to this ``Host`` may go on."""
        if origin is None or not origin:
            return True
        origin = normalized(origin)
        if origin in self._allowed:
            return True
        return origin in (normalized(f"http://{host}"), normalized(f"https://{host}"))
