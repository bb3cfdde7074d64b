"""The application's lifespan: what it opens, it closes, even when start-up fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import tertulia.web.app as app_module
from support.bots import watch_logs
from support.environment import SettingsFactory
from tertulia.chats import Chat
from tertulia.realtime.broker import create_broker as real_create_broker
from tertulia.settings import Settings
from tertulia.storage.migrate import head_revision
from tertulia.web.app import create_app


class BrokenStart(RuntimeError):
    pass


async def test_a_failed_start_closes_what_was_already_open(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker cannot start (a Redis that is down): the database opened before it is
    closed, the broker itself is closed, and the error reaches the server."""
    closed: list[str] = []
    real_open = app_module.open_database

    async def open_database(*args: Any, **kwargs: Any) -> Any:
        db = await real_open(*args, **kwargs)
        real_close = db.close

        async def close() -> None:
            closed.append("database")
            await real_close()

        db.close = close
        return db

    def create_broker(url: str, **options: Any) -> Any:
        broker = real_create_broker(url, **options)
        real_close = broker.close

        async def start() -> None:
            raise BrokenStart("the broker is down")

        async def close() -> None:
            closed.append("broker")
            await real_close()

        broker.start = start
        broker.close = close
        return broker

    monkeypatch.setattr(app_module, "open_database", open_database)
    monkeypatch.setattr(app_module, "create_broker", create_broker)
    app = create_app(settings)
    with pytest.raises(BrokenStart):
        async with app.router.lifespan_context(app):
            pass  # pragma: no cover
    assert closed == ["broker", "database"]


async def test_a_clean_stop_closes_everything_and_unbinds_chat(settings: Settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services = app.state.services
        assert Chat.registry() is services.registry
    assert services.http.is_closed
    with pytest.raises(RuntimeError):
        Chat.registry()


@pytest.mark.parametrize("rooms", [True, False])
async def test_rooms_in_production_are_warned_about(
    make_settings: SettingsFactory, rooms: bool
) -> None:
    """Rooms let anyone read every conversation: allowed (a trusted network may want it),
    but a production start with them on says so in its log."""
    settings = make_settings(production=True, session_cookie_secure=True, rooms=rooms)
    app = create_app(settings)
    with watch_logs() as logs:
        async with app.router.lifespan_context(app):
            pass
    warned = [e for e in logs.entries if e["event"].startswith("rooms are on in production")]
    assert len(warned) == (1 if rooms else 0)
    assert all(e["log_level"] == "warning" for e in warned)


async def test_sqlite_with_a_redis_broker_is_warned_about(
    make_settings: SettingsFactory, redis_unix_url: str
) -> None:
    """A Redis broker is for several processes, a SQLite file for one: allowed, but the
    start says so in its log (found by QA: nothing did)."""
    settings = make_settings(broker_url=redis_unix_url)
    app = create_app(settings)
    with watch_logs() as logs:
        async with app.router.lifespan_context(app):
            pass
    warned = [e for e in logs.entries if e["event"].startswith("a Redis broker with a SQLite")]
    assert len(warned) == (1 if settings.is_sqlite else 0)
    assert all(e["log_level"] == "warning" for e in warned)


async def test_the_start_line_names_the_schema_when_one_is_set(
    make_settings: SettingsFactory,
) -> None:
    """(QA: two installations in one PostgreSQL database logged the same database URL.)
    ``tertulia started`` has ``schema`` when ``database_schema`` is set, and not otherwise."""
    settings = make_settings()
    app = create_app(settings)
    with watch_logs() as logs:
        async with app.router.lifespan_context(app):
            pass
    started = [e for e in logs.entries if e["event"] == "tertulia started"]
    assert len(started) == 1
    assert started[0].get("schema") == settings.database_schema
    assert ("schema" in started[0]) == (settings.database_schema is not None)


@pytest.mark.parametrize("hosts", [None, ["chat.example.com"]])
async def test_production_without_allowed_hosts_is_warned_about(
    make_settings: SettingsFactory, hosts: list[str] | None
) -> None:
    """Unset, a connection to an address other than loopback is served whatever its Host
    (web/hosts.py): a production start says allowed_hosts should be set."""
    settings = make_settings(production=True, session_cookie_secure=True, allowed_hosts=hosts)
    app = create_app(settings)
    with watch_logs() as logs:
        async with app.router.lifespan_context(app):
            pass
    warned = [e for e in logs.entries if e["event"].startswith("allowed_hosts is not set")]
    assert len(warned) == (1 if hosts is None else 0)
    assert all(e["log_level"] == "warning" for e in warned)


async def test_a_start_that_migrates_says_so(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    """(Multi-process QA: nothing in the log said whether a start applied a migration.) The
    first start on a new database logs ``database migrated`` from none to this code's
    revision; the next start, on a database already current, does not."""
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'new.db'}", database_schema=None
    )
    said = []
    for _ in range(2):
        app = create_app(settings)
        with watch_logs() as logs:
            async with app.router.lifespan_context(app):
                pass
        said.append([e for e in logs.entries if e["event"] == "database migrated"])
    assert [(e["from_revision"], e["to_revision"]) for e in said[0]] == [("none", head_revision())]
    assert said[1] == []


@pytest.mark.parametrize("prefix", [None, "staging"])
async def test_the_start_line_names_the_broker_prefix_when_one_is_set(
    make_settings: SettingsFactory, prefix: str | None
) -> None:
    """(Multi-process QA: a process with another ``broker_prefix`` than its peers hears
    none of their messages, and nothing at its start told it apart.)"""
    app = create_app(make_settings(broker_prefix=prefix))
    with watch_logs() as logs:
        async with app.router.lifespan_context(app):
            pass
    [started] = [e for e in logs.entries if e["event"] == "tertulia started"]
    assert started.get("broker_prefix") == prefix
