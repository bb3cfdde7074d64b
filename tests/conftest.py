"""Fixtures shared by every test: databases (SQLite and PostgreSQL), settings, live servers.

Every test that asks for ``database`` runs twice: on a fresh SQLite file and on a fresh
PostgreSQL schema. PostgreSQL is at ``TERTULIA_TEST_POSTGRES`` (default
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``); where it is not reachable those runs
are skipped, except with ``CI=true``, where a missing service fails the run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import structlog

from support.blab import Person
from support.environment import (
    POSTGRES_URL,
    DatabaseTarget,
    PersonFactory,
    SettingsFactory,
    require_service,
)
from support.proxy import Proxy, ProxyFactory
from support.redis_socket import redis_on_a_socket
from support.server import LiveServer, live_server
from tertulia.settings import DEFAULT_RATE_LIMITS, Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No TERTULIA_* variables leak in; logging is as it was after each test. Each test runs
    in its own directory: a setting left at its default (``./media``, ``./tertulia.db``)
    lands there, not in the checkout, where one test's files (say media_root's owner's
    mark) met the next test's."""
    for key in list(os.environ):
        if key.startswith("TERTULIA_") and not key.startswith("TERTULIA_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    structlog_config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**structlog_config)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseTarget]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield DatabaseTarget(f"sqlite+aiosqlite:///{tmp_path / 'tertulia.db'}")
        return
    require_service("PostgreSQL", POSTGRES_URL)
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield DatabaseTarget(POSTGRES_URL, schema)
    asyncio.run(_drop_schema(schema))


async def _drop_schema(schema: str) -> None:
    import asyncpg

    parts = urlsplit(POSTGRES_URL.replace("+asyncpg", ""))
    conn = await asyncpg.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username or "postgres",
        database=parts.path.lstrip("/") or "test",
    )
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def redis_unix_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The ``unix://`` URL of a private Redis on a Unix socket, for the whole run (started
    only when a test asks for it)."""
    with redis_on_a_socket(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def make_settings(database: DatabaseTarget, tmp_path: Path) -> SettingsFactory:
    """Settings on the test's database; keyword arguments override fields."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database.url,
            "database_schema": database.schema,
            "presence_grace": 0,
            "media_root": tmp_path / "media",
            "log_format": "json",
            # tests/web/test_rate_limits.py tests the limits; elsewhere they would only
            # throttle tests that send quickly from one address
            "rate_limits": dict.fromkeys(DEFAULT_RATE_LIMITS, ""),
            # Most tests have several people in one conversation; those of rooms off (the
            # default) say so.
            "rooms": True,
        }
        values.update(overrides)
        return load_settings(None, **values)

    return make


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    """A live server with the default bots (ECHO, Calculator), rooms on, no manager."""
    async with live_server(settings) as running:
        yield running


@pytest.fixture
async def people() -> AsyncIterator[PersonFactory]:
    """Make clients for a server; all are closed after the test."""
    made: list[Person] = []

    def make(target: LiveServer) -> Person:
        person = Person(target.base_url, target.ws_url)
        made.append(person)
        return person

    yield make
    for person in made:
        await person.close()


@pytest.fixture
async def alice(server: LiveServer, people: PersonFactory) -> Person:
    """A person in a new conversation with ECHO (no socket yet)."""
    person = people(server)
    response = await person.create(nickname="alice", name="room", bots=["ECHO"])
    assert response.status_code == 201, response.text
    return person


@pytest.fixture
async def proxy_to() -> AsyncIterator[ProxyFactory]:
    """Start TCP proxies to given loopback ports; all are closed after the test."""
    made: list[Proxy] = []

    async def make(port: int) -> Proxy:
        proxy = Proxy(port)
        await proxy.start()
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        await proxy.close()
