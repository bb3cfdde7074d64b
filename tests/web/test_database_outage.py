"""The database out of reach under a running server (PostgreSQL stopped or cut off, SQLite
locked past its busy_timeout): requests are answered 503 ``unavailable`` with Retry-After,
logged as warnings without a traceback (one per kind every few seconds); sockets get an
``unavailable`` error frame or are closed with 1013 (storage/postgres.py, storage/sqlite.py,
web/errors.py, web/ws.py)."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from support.blab import Person
from support.bots import watch_logs
from support.environment import POSTGRES_URL, PersonFactory, SettingsFactory, require_service
from support.proxy import ProxyFactory
from support.server import live_server
from tertulia.errors import DatabaseUnavailable
from tertulia.logs import configure_logging
from tertulia.storage import postgres
from tertulia.storage import sqlite as sqlite_storage
from tertulia.storage.sqlite import SQLiteDatabase
from tertulia.web.health import HEALTH_TIMEOUT


def through(url: str, port: int) -> str:
    """``url`` with its port replaced (to go through a proxy)."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.hostname}:{port}").geturl()


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "unavailable"
    assert response.json()["retry_after"] == DatabaseUnavailable.RETRY_AFTER
    assert response.headers["retry-after"] == str(DatabaseUnavailable.RETRY_AFTER)


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_postgresql_cut_off_is_503_and_a_warning_per_kind(
    make_settings: SettingsFactory,
    people: PersonFactory,
    proxy_to: ProxyFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """PostgreSQL unreachable (its connections cut, new ones refused): REST answers 503
    ``unavailable`` with Retry-After, not 500; each kind of refusal is a warning (at most
    one every 10 s) and no traceback (nor uvicorn's "Exception in ASGI application"); a
    served socket's message gets an ``unavailable`` error frame and a new socket is closed
    with 1013; all works again once the database is back."""
    require_service("PostgreSQL", POSTGRES_URL)
    proxy = await proxy_to(urlsplit(POSTGRES_URL).port or 5432)
    settings = make_settings(database_url=through(POSTGRES_URL, proxy.listen_port))
    configure_logging("json", "INFO")  # (the server's own: third parties' lines too)
    async with live_server(settings) as server:
        alice: Person = people(server)
        created = await alice.create(nickname="alice", bots=[])
        assert created.status_code == 201, created.text
        with watch_logs() as logs:
            served = await alice.connect()
            await served.state()
            proxy.refusing = True
            proxy.drop()
            assert_unavailable(await alice.post(type="T", text="while down"))
            assert_unavailable(await alice.history())
            local_id = await served.say("while down")
            refused = await served.error()
            assert refused["code"] == "unavailable"
            assert refused["local_id"] == local_id
            opened = await alice.connect()
            assert await opened.closed_with() == 1013
            proxy.refusing = False
            posted = await alice.post(type="T", text="back")
            assert posted.status_code == 201, posted.text
    warned = [e for e in logs.entries if e["event"].startswith("database unreachable")]
    assert sorted(e["event"] for e in warned) == [
        "database unreachable; answered 503",  # (the second, 10 s later, would say left_out)
        "database unreachable; message refused",
        "database unreachable; socket closed",
    ], warned
    assert all(e["log_level"] == "warning" for e in warned)
    assert all(e["error"] for e in warned)
    assert not logs.errors()
    assert not [e for e in logs.entries if "exc_info" in e]
    written = capsys.readouterr().err
    assert "Traceback" not in written
    assert "Exception in ASGI application" not in written


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_postgresql_that_stops_answering_is_503_within_its_timeouts(
    make_settings: SettingsFactory,
    people: PersonFactory,
    proxy_to: ProxyFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL holds its connections without answering (a partition, a frozen host):
    a request is answered 503 once a statement has waited STATEMENT_TIMEOUT, twice that at
    most, not when TCP gives up; a socket's message gets its error frame; /health says so
    within its 2 s; all works again once the bytes flow. Before, every request and message
    waited for the whole outage, and /health too (chaos QA: 35 s and more)."""
    require_service("PostgreSQL", POSTGRES_URL)
    # (past /health's own 2 s, to see that it does not wait for the statement)
    monkeypatch.setattr(postgres, "STATEMENT_TIMEOUT", HEALTH_TIMEOUT + 2)
    monkeypatch.setattr(postgres, "CONNECT_TIMEOUT", HEALTH_TIMEOUT + 2)
    proxy = await proxy_to(urlsplit(POSTGRES_URL).port or 5432)
    settings = make_settings(database_url=through(POSTGRES_URL, proxy.listen_port))
    async with live_server(settings) as server:
        alice: Person = people(server)
        created = await alice.create(nickname="alice", bots=[])
        assert created.status_code == 201, created.text
        served = await alice.connect()
        await served.state()
        proxy.hold()
        started = time.monotonic()
        health = await alice.http.get(server.base_url + "/health")
        assert (health.status_code, health.json()["database"]) == (503, "unavailable")
        assert time.monotonic() - started < HEALTH_TIMEOUT + 1
        started = time.monotonic()
        assert_unavailable(await alice.post(type="T", text="while held"))
        assert time.monotonic() - started < 2 * postgres.STATEMENT_TIMEOUT + 1
        local_id = await served.say("while held")
        refused = await served.error(timeout=2 * postgres.STATEMENT_TIMEOUT + 1)
        assert (refused["code"], refused["local_id"]) == ("unavailable", local_id)
        proxy.release()
        posted = await alice.post(type="T", text="back", local_id="back")
        assert posted.status_code == 201, posted.text


@asynccontextmanager
async def own_database() -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A PostgreSQL database of the test's own (its URL, and an administrator's connection
    to the server's ``postgres`` database), dropped afterwards."""
    require_service("PostgreSQL", POSTGRES_URL)
    parts = urlsplit(POSTGRES_URL.replace("+asyncpg", ""))
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username or "postgres",
        database="postgres",
    )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield (
                parts._replace(path=f"/{name}")
                .geturl()
                .replace("postgresql:", "postgresql+asyncpg:", 1),
                admin,
            )
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_postgresql_refusing_new_connections_is_503(
    make_settings: SettingsFactory, people: PersonFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """(Docs QA 2: a database that refuses connections, ``ALLOW_CONNECTIONS false``, gave
    500 and tracebacks: PostgreSQL's refusal at connection time, SQLSTATE 55000, was not
    taken for an outage.) Whatever PostgreSQL answers while a connection is being made
    (not accepting connections, too many, starting up, the database gone) is the database
    out of reach: 503 ``unavailable`` and a warning, until it takes connections again."""
    async with own_database() as (url, admin):
        configure_logging("json", "INFO")
        async with live_server(make_settings(database_url=url, database_schema=None)) as server:
            alice: Person = people(server)
            assert (await alice.create(nickname="alice", bots=[])).status_code == 201
            name = url.rsplit("/", 1)[1]
            with watch_logs() as logs:
                await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    name,
                )
                assert_unavailable(await alice.history())
                assert_unavailable(await alice.post(type="T", text="while refused"))
                await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
                posted = await alice.post(type="T", text="back", local_id="back")
                assert posted.status_code == 201, posted.text
    warned = [e for e in logs.entries if e["event"].startswith("database unreachable")]
    assert warned, logs.entries
    assert all(e["log_level"] == "warning" for e in warned)
    assert not logs.errors()
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_sqlite_locked_past_its_busy_timeout_is_503(
    make_settings: SettingsFactory,
    people: PersonFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process holds SQLite's write lock past ``busy_timeout``: a write is 503
    ``unavailable`` (not 500 ``database is locked``), logged as one warning; it works once
    the lock is let go."""
    monkeypatch.setattr(sqlite_storage, "BUSY_TIMEOUT_MS", 100)
    settings = make_settings()
    async with live_server(settings) as server:
        alice: Person = people(server)
        created = await alice.create(nickname="alice", bots=[])
        assert created.status_code == 201, created.text
        path = sqlite_storage.sqlite_path(settings.database_url)
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # (another process's writer)
            with watch_logs() as logs:
                assert_unavailable(await alice.post(type="T", text="locked out"))
            other.execute("ROLLBACK")
        finally:
            other.close()
        posted = await alice.post(type="T", text="in again")
        assert posted.status_code == 201, posted.text
    assert [e["event"] for e in logs.entries if e["log_level"] != "info"] == [
        "database unreachable; answered 503"
    ]
    assert "locked" in logs.entries[-1]["error"]
    assert isinstance(server.registry.db, SQLiteDatabase)
