"""Where the test services are, and how a test asks for one (skip, or fail under CI)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from support.blab import Person
from support.server import LiveServer
from tertulia.settings import Settings

POSTGRES_URL = os.environ.get(
    "TERTULIA_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TERTULIA_TEST_REDIS", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(url: str) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 1):
            return True
    except OSError:
        return False


def require_service(name: str, url: str) -> None:
    """Skip (or, under CI, fail) when a service the test needs is not running."""
    if _reachable(url):
        return
    message = f"{name} is not reachable at {url}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: services are required)")
    pytest.skip(message)


@dataclass(frozen=True)
class DatabaseTarget:
    url: str
    schema: str | None = None

    @property
    def kind(self) -> str:
        return "sqlite" if self.url.startswith("sqlite") else "postgresql"


SettingsFactory = Callable[..., Settings]
PersonFactory = Callable[[LiveServer], Person]
