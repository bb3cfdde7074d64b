"""Sessions and access: expired sessions purged, ended bot sessions staying ended, what a
bot's session may not do, cookie attributes in production, Origin checks (PROTOCOL 2)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from websockets.exceptions import InvalidStatus

from support.blab import Person
from support.bots import bot_person
from support.rest import PersonFactory, SettingsFactory, call, set_cookie
from support.server import LiveServer, live_server
from support.waiting import until
from tertulia.domain.times import utcnow
from tertulia.storage import sessions as repo
from tertulia.storage.tables import session_participations, sessions


async def count_sessions(server: LiveServer, key: str) -> tuple[int, int]:
    """(sessions, participations) stored under ``key``."""
    async with server.registry.db.read() as conn:
        stored = (
            await conn.execute(select(func.count()).where(sessions.c.key == key))
        ).scalar_one()
        joined = (
            await conn.execute(
                select(func.count()).where(session_participations.c.session_key == key)
            )
        ).scalar_one()
    return stored, joined


async def test_expired_sessions_are_purged(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """Sessions past their expiry are deleted with their participations once the server
    runs (every anonymous create stores one: without a purge the table only ever grows);
    valid ones stay."""
    settings = make_settings()
    async with live_server(settings) as first:
        alice, bob = people(first), people(first)
        assert (await alice.create(nickname="alice")).status_code == 201
        assert (await bob.create(nickname="bob")).status_code == 201
        old, kept = alice.session, bob.session
        assert old is not None
        assert kept is not None
        async with first.registry.db.write() as conn:
            await conn.execute(
                update(sessions)
                .where(sessions.c.key == old)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
    async with live_server(settings) as server:  # (the same database, restarted)
        assert await count_sessions(server, old) == (1, 1)
        fresh = await call(server, "POST", "/api/chat/conversations/", json={})
        assert fresh.status_code == 201

        async def purged() -> bool:
            return await count_sessions(server, old) == (0, 0)

        await until(purged)
        assert await count_sessions(server, kept) == (1, 1)


async def test_renewal_does_not_revive_an_ended_bot_session(
    alice: Person, server: LiveServer
) -> None:
    """A renewal racing the end of a bot's session (a required bot that left; the session
    was read as valid just before) must not bring the ended session back to life."""
    assert alice.conversation_id is not None
    created = (await alice.http.get(f"/conversations/{alice.conversation_id}/")).json()
    echo = created["participants"][1]["id"]
    bot = await bot_person(server, alice.conversation_id, echo)
    try:
        assert bot.session is not None
        async with server.registry.db.write() as conn:
            now = utcnow()
            await repo.expire_bot_sessions(conn, alice.conversation_id, echo, now=now)
            await repo.renew(conn, bot.session, expires_at=now + timedelta(days=1))
        async with server.registry.db.read() as conn:
            assert await repo.get_session(conn, bot.session, now=utcnow()) is None
    finally:
        await bot.close()


async def test_a_bot_session_cannot_rename_its_bot(alice: Person, server: LiveServer) -> None:
    """Renaming is the web client's "Change my name": an external bot's session may not
    rename its bot (a manager's redirects find bots by name: a bot renamed after another
    would receive what was meant for that one)."""
    created = (await alice.http.get(f"/conversations/{alice.conversation_id}/")).json()
    echo = created["participants"][1]["id"]
    assert alice.conversation_id is not None
    bot = await bot_person(server, alice.conversation_id, echo)
    try:
        renamed = await bot.http.patch(
            f"/conversations/{alice.conversation_id}/participants/{echo}/",
            json={"name": "Calculator"},
        )
        assert renamed.status_code == 403, renamed.text
        assert renamed.json()["code"] == "not_participant"
        after = (await alice.http.get(f"/conversations/{alice.conversation_id}/")).json()
        assert after["participants"][1]["name"] == "ECHO"
    finally:
        await bot.close()


async def test_production_cookie_attributes(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """With ``production = true`` the session cookie is Secure, HttpOnly, SameSite=Lax,
    Path=/, with no Domain, on create and on join."""
    settings = make_settings(production=True, session_cookie_secure=True)
    async with live_server(settings) as server:
        created = await call(server, "POST", "/api/chat/conversations/", json={})
        conversation_id = created.json()["id"]
        joined = await call(server, "POST", f"/api/chat/conversations/{conversation_id}/join/")
        for response in (created, joined):
            cookie = set_cookie(response)
            assert cookie is not None
            attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
            assert {"secure", "httponly", "samesite", "path", "max-age"} <= attributes
            assert "domain" not in attributes
            assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
            assert "Path=/;" in cookie + ";"


async def test_cross_site_posts_with_the_cookie_are_refused(alice: Person) -> None:
    """A cross-site form POST (foreign Origin) or one from an opaque origin (``null``:
    sandboxed frames, data: URLs) is refused even with a valid cookie; nothing is stored."""
    path = f"/conversations/{alice.conversation_id}/messages/"
    for origin in ("http://evil.example", "null", "http://127.0.0.1.evil.example"):
        refused = await alice.http.post(
            path,
            content=b'{"type": "T", "text": "csrf"}',
            headers={"Origin": origin, "Content-Type": "application/json"},
        )
        assert refused.status_code == 403, origin
        assert refused.json()["code"] == "origin"
    history = (await alice.history()).json()
    assert not [m for m in history["results"] if m.get("text") == "csrf"]


async def test_null_origin_websocket_is_refused(server: LiveServer, alice: Person) -> None:
    """A WebSocket handshake from an opaque origin is refused (HTTP 403) like a foreign one."""
    with pytest.raises(InvalidStatus) as refused:
        await alice.connect(headers={"Origin": "null"})
    assert refused.value.response.status_code == 403


async def test_forwarded_for_from_an_untrusted_peer_does_not_reset_limits(
    make_settings: SettingsFactory,
) -> None:
    """A client that is not a trusted proxy cannot dodge a limit by inventing
    ``X-Forwarded-For`` addresses (uvicorn trusts 127.0.0.1 only)."""
    settings = make_settings(rate_limits={"create": "2/minute"})
    async with live_server(settings) as server:
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=server.base_url, transport=transport) as client:
            statuses = [
                (
                    await client.post(
                        "/api/chat/conversations/",
                        json={},
                        headers={"X-Forwarded-For": f"203.0.113.{n}"},
                    )
                ).status_code
                for n in range(3)
            ]
    assert statuses == [201, 201, 429]
