"""The session behind an open socket: kept while the socket is open, and the socket
closed once the session has ended (web/sessions.SessionWatch, web/ws.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from support.blab import Person
from support.server import LiveServer
from support.waiting import until
from tertulia.domain.times import utcnow
from tertulia.storage.tables import sessions
from tertulia.web import sessions as web_sessions


async def expiry(server: LiveServer, key: str):  # type: ignore[no-untyped-def]
    async with server.registry.db.read() as conn:
        found = await conn.execute(select(sessions.c.expires_at).where(sessions.c.key == key))
        return found.scalar_one()


async def expire_in(server: LiveServer, key: str, delta: timedelta) -> None:
    async with server.registry.db.write() as conn:
        await conn.execute(
            update(sessions).where(sessions.c.key == key).values(expires_at=utcnow() + delta)
        )


@pytest.fixture(autouse=True)
def renew_often(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions renewed when last renewed over 0.1 s ago (an open socket's looked at every
    0.05 s), not an hour."""
    monkeypatch.setattr(web_sessions, "RENEW_AFTER", timedelta(seconds=0.1))


async def test_a_socket_in_use_renews_its_session(alice: Person, server: LiveServer) -> None:
    """Talking over one socket for longer than the session's renewal period renews it, as
    REST requests do: a bot (or a tab) that holds its socket open for days, answering, is
    not idle, and its next reconnection must not be refused."""
    assert alice.session is not None
    socket = await alice.connect()
    await socket.state()
    await expire_in(server, alice.session, timedelta(days=1))

    async def renewed() -> bool:
        assert alice.session is not None
        await socket.message(local_id=await socket.say("still here"))
        return await expiry(server, alice.session) - utcnow() > timedelta(days=13)

    await until(renewed)


async def test_a_handshake_that_renews_the_session_renews_the_cookie(
    alice: Person, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tab that reconnects its socket and sends no request (the web client reads its
    history through the socket's replay) keeps its cookie: the handshake's answer sets it
    again when it renewed the session, as a request's answer does, and only then. Else the
    browser's cookie lapsed two weeks after the create, though the session was kept."""
    monkeypatch.setattr(web_sessions, "RENEW_AFTER", timedelta(hours=1))  # (the default)
    monkeypatch.setattr(web_sessions, "CACHE_TTL", timedelta(0))  # expire_in is seen at once
    assert alice.session is not None
    first = await alice.connect()
    await first.state()
    assert "set-cookie" not in first.connection.response.headers  # nothing renewed
    await first.close()
    await expire_in(server, alice.session, timedelta(days=1))
    again = await alice.connect()
    await again.state()
    cookie = again.connection.response.headers.get("set-cookie", "")
    assert cookie.startswith(f"sessionid={alice.session};"), cookie
    assert f"Max-Age={server.settings.session_max_age}" in cookie
    assert "HttpOnly" in cookie


async def test_an_open_socket_keeps_its_session(alice: Person, server: LiveServer) -> None:
    """A socket open while its client sends nothing (a tab left open, reading; a bot
    waiting for a question) renews its session all the same: an open socket is use, and
    the next message it sends must not be refused (QA A1)."""
    assert alice.session is not None
    socket = await alice.connect()
    await socket.state()
    await expire_in(server, alice.session, timedelta(seconds=0.5))

    async def renewed() -> bool:
        assert alice.session is not None
        return await expiry(server, alice.session) - utcnow() > timedelta(days=13)

    await until(renewed)


async def test_a_socket_whose_session_ended_is_closed(alice: Person, server: LiveServer) -> None:
    """A session that ended while its socket was open (purged, ended by hand, lapsed while
    the database was out of reach): the socket is closed with 4403 at once, as its
    handshake would be refused, not at its next frame (which would be lost)."""
    assert alice.session is not None
    socket = await alice.connect()
    await socket.state()
    await expire_in(server, alice.session, timedelta(seconds=-1))
    assert await socket.closed_with() == 4403
    history = await alice.history()
    assert history.status_code == 403  # (REST says the same)
