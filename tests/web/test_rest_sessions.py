"""The ``sessionid`` session over REST: renewal, expiry, odd cookies, bot sessions
(PROTOCOL 2.1)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from support.blab import Person
from support.bots import bot_person
from support.rest import PersonFactory, call, set_cookie
from support.server import LiveServer
from tertulia.domain.times import utcnow
from tertulia.storage.tables import sessions


async def expires_at(server: LiveServer, key: str):  # type: ignore[no-untyped-def]
    async with server.registry.db.read() as conn:
        return (
            await conn.execute(select(sessions.c.expires_at).where(sessions.c.key == key))
        ).scalar_one()


async def set_expiry(server: LiveServer, key: str, delta: timedelta) -> None:
    async with server.registry.db.write() as conn:
        await conn.execute(
            update(sessions).where(sessions.c.key == key).values(expires_at=utcnow() + delta)
        )


async def test_session_is_renewed_on_use(alice: Person, server: LiveServer) -> None:
    """A session used after a day gets its full lifetime again (BLAB only renewed on writes)."""
    assert alice.session is not None
    await set_expiry(server, alice.session, timedelta(days=1))
    response = await alice.http.get(f"/conversations/{alice.conversation_id}/messages/")
    assert response.status_code == 200
    renewed = await expires_at(server, alice.session)
    assert renewed - utcnow() > timedelta(days=13)
    # The browser's cookie is renewed with it (it would lapse two weeks after the create).
    cookie = response.headers.get("set-cookie", "")
    assert cookie.startswith(f"sessionid={alice.session};")
    assert f"Max-Age={server.settings.session_max_age}" in cookie
    again = await alice.http.get(f"/conversations/{alice.conversation_id}/messages/")
    assert "set-cookie" not in again.headers  # renewed at most once an hour


async def test_expired_session_counts_as_none(alice: Person, server: LiveServer) -> None:
    """An expired session may not read; a create with it starts a fresh session."""
    assert alice.session is not None
    old = alice.session
    await set_expiry(server, old, timedelta(seconds=-1))
    refused = await alice.history()
    assert refused.status_code == 403
    created = await alice.create(nickname="again")
    assert created.status_code == 201
    assert alice.session not in (None, old)
    assert (await alice.history()).status_code == 200


async def test_odd_cookies_are_ignored(alice: Person, server: LiveServer) -> None:
    """Malformed, too short, too long or unparsable ``sessionid`` cookies are no session."""
    path = f"/api/chat/conversations/{alice.conversation_id}/messages/"
    for cookie in (
        "sessionid=",
        "sessionid=abc",
        f"sessionid={'x' * 65}",
        'sessionid="unterminated',
        "sessionid=!#$%&'*+-.^_`|~!#$%&",
        "other=1; sessionid",
    ):
        response = await call(server, "GET", path, headers={"Cookie": cookie})
        assert response.status_code == 403, cookie
        created = await call(
            server, "POST", "/api/chat/conversations/", json={}, headers={"Cookie": cookie}
        )
        assert created.status_code == 201, cookie
        assert set_cookie(created) is not None, cookie


async def test_session_cookie_among_others(alice: Person, server: LiveServer) -> None:
    """The session is found among other cookies, as browsers send them."""
    response = await call(
        server,
        "GET",
        f"/api/chat/conversations/{alice.conversation_id}/messages/",
        headers={"Cookie": f"csrftoken=abc; sessionid={alice.session}; theme=dark"},
    )
    assert response.status_code == 200


async def test_bot_session_is_scoped_to_its_conversation(
    alice: Person, server: LiveServer, people: PersonFactory
) -> None:
    """A bot's session reads its own conversation only: it cannot join another, and a create
    with it starts a separate session for a person."""
    created = (await alice.http.get(f"/conversations/{alice.conversation_id}/")).json()
    echo = created["participants"][1]["id"]
    bot = await bot_person(server, created["id"], echo)
    try:
        assert (await bot.history()).status_code == 200
        mine = (await bot.http.get(f"/conversations/{created['id']}/")).json()
        assert mine["my_participant_id"] == echo
        other = people(server)
        await other.create(nickname="other")
        refused = await bot.join(other.conversation_id, nickname="sneaky")
        assert refused.status_code == 403
        fresh = await call(
            server,
            "POST",
            "/api/chat/conversations/",
            json={"nickname": "bot as a person"},
            headers={"Cookie": f"sessionid={bot.session}"},
        )
        assert fresh.status_code == 201
        cookie = set_cookie(fresh)
        assert cookie is not None
        assert not cookie.startswith(f"sessionid={bot.session};")
    finally:
        await bot.close()
