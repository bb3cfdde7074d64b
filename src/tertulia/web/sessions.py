"""Anonymous server-side sessions carried by the ``sessionid`` cookie (PROTOCOL 2.1).

The cookie's value is the session key itself (external bots receive it in the trigger and
send it back). Expiry is renewed on use, at most once an hour, so a session used only over
WebSocket does not lapse two weeks after its creation (BLAB's bug); an open socket is use,
whether its client sends or not (:class:`SessionWatch`).

Expired sessions (and their participations) are deleted in the background, on the first
use of sessions after start-up and then at most once every ``PURGE_EVERY``: every
anonymous create stores a session, so without it the table would only grow.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from http.cookies import SimpleCookie

import structlog
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tertulia.domain.ids import new_session_key
from tertulia.domain.times import utcnow
from tertulia.logs import Sampled
from tertulia.settings import Settings
from tertulia.storage import sessions as repo
from tertulia.storage.database import Database
from tertulia.storage.sessions import SessionRecord

log = structlog.get_logger(__name__)
COOKIE = "sessionid"
PURGE_EVERY = timedelta(hours=1)
PURGE_RETRY = timedelta(minutes=1)
PURGE_BATCH = 1000  # sessions deleted per transaction
RENEW_AFTER = timedelta(hours=1)
CACHE_TTL = timedelta(minutes=1)
CACHE_SIZE = 10_000


def cookie_key(connection: HTTPConnection) -> str | None:
    """The session key sent by the client, if it looks like one."""
    key = connection.cookies.get(COOKIE)
    if key is None:
        # Starlette skips a cookie header it cannot parse whole; try the strict parser too.
        raw = connection.headers.get("cookie", "")
        parsed: SimpleCookie = SimpleCookie()
        try:
            parsed.load(raw)
        except Exception:
            return None
        morsel = parsed.get(COOKIE)
        key = morsel.value if morsel else None
    if key is None or not 8 <= len(key) <= 64:
        return None
    return key


class Sessions:
    """Loads, creates and renews sessions."""

    def __init__(self, db: Database, settings: Settings, outages: Sampled) -> None:
        self._db = db
        self._settings = settings
        self.outages = outages  # (the server's: sockets' sessions not looked at)
        self._cache: OrderedDict[str, tuple[SessionRecord, datetime]] = OrderedDict()
        self._participations: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._next_purge: datetime | None = None
        self._purging: asyncio.Task[None] | None = None

    @property
    def max_age(self) -> timedelta:
        return timedelta(seconds=self._settings.session_max_age)

    def _purge_if_due(self, now: datetime) -> None:
        """Start deleting expired sessions in the background, if it is time."""
        if self._next_purge is not None and now < self._next_purge:
            return
        if self._purging is not None and not self._purging.done():
            return
        self._next_purge = now + PURGE_EVERY
        self._purging = asyncio.get_running_loop().create_task(self._purge(now))

    async def close(self) -> None:
        """Stop a purge still running (before the database closes)."""
        task, self._purging = self._purging, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _purge(self, now: datetime) -> None:
        try:
            # In batches, each its own transaction: after an upgrade there may be many, and
            # SQLite's one writer must not be held up for all of them at once.
            while True:
                async with self._db.write() as conn:
                    purged = await repo.purge_expired(conn, now=now, limit=PURGE_BATCH)
                if purged < PURGE_BATCH:
                    break
        except Exception:
            # (the database is away, or closing at shutdown): tried again a bit later
            log.exception("purging expired sessions failed")
            self._next_purge = utcnow() + PURGE_RETRY

    def _cached(self, key: str, now: datetime) -> SessionRecord | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        session, fetched = entry
        if now - fetched > CACHE_TTL or session.expires_at <= now:
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return session

    def _cache_put(self, session: SessionRecord, now: datetime) -> None:
        # Only people's sessions: a bot's may be ended early (a required bot that left).
        if session.bot_conversation_id is not None:
            return
        self._cache[session.key] = (session, now)
        self._cache.move_to_end(session.key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    async def load(self, connection: HTTPConnection) -> SessionRecord | None:
        """The connection's valid session, renewed if it is getting old; None otherwise.

        People's sessions are kept in memory for up to a minute (they only ever change by
        renewal or a new nickname, both done here), so most requests cost no query."""
        now = utcnow()
        self._purge_if_due(now)
        key = cookie_key(connection)
        if key is None:
            return None
        session = self._cached(key, now)
        if session is None:
            async with self._db.read() as conn:
                session = await repo.get_session(conn, key, now=now)
            if session is None:
                return None
            self._cache_put(session, now)
        max_age = self._lifetime(bot=session.bot_conversation_id is not None)
        if session.expires_at - now < max_age - _renewal(max_age):
            expires = now + max_age
            async with self._db.write() as conn:
                renewed = await repo.renew(conn, key, expires_at=expires, now=now)
            if not renewed:  # ended meanwhile (a bot's conversation), or purged
                self._cache.pop(key, None)
                return None
            session = replace(session, expires_at=expires)
            self._cache_put(session, now)
            if session.bot_conversation_id is None:
                # The browser's cookie is renewed with it (CookieRenewal; a socket's
                # handshake answer, web/ws.py): else it would lapse two weeks after the
                # create or join that set it, however much used.
                connection.state.renewed_session = session
        return session

    def watch(
        self, connection: HTTPConnection, *, bot: bool, ended: Callable[[], None]
    ) -> SessionWatch:
        """For a socket open on the session ``connection`` carries (a bot's, or a
        person's): keeps it while the socket is open, and calls ``ended`` if it has ended.
        Stop it when the socket closes (:meth:`SessionWatch.stop`)."""
        # Twice per renewal period: a look leaves the session its lifetime less that
        # period at least (renewed if it had less), and the lifetime is twice the period
        # or more, so the next look finds it valid, with a quarter of its lifetime left.
        every = _renewal(self._lifetime(bot=bot)).total_seconds() / 2
        return SessionWatch(self, connection, every, ended)

    def _lifetime(self, *, bot: bool) -> timedelta:
        """A session's lifetime from its last renewal: a bot's, or a person's."""
        return timedelta(seconds=self._settings.bot_session_max_age) if bot else self.max_age

    def new(
        self,
        *,
        nickname: str | None = None,
        bot_conversation_id: str | None = None,
        max_age: timedelta | None = None,
    ) -> SessionRecord:
        """A new session, not stored yet: :meth:`create` stores it at once; a use case may
        store it in its own transaction instead (``storage.sessions.insert_session``)."""
        expires_at = utcnow() + (max_age or self.max_age)
        return SessionRecord(new_session_key(), nickname, expires_at, bot_conversation_id)

    async def create(
        self,
        *,
        nickname: str | None = None,
        bot_conversation_id: str | None = None,
        max_age: timedelta | None = None,
    ) -> SessionRecord:
        session = self.new(
            nickname=nickname, bot_conversation_id=bot_conversation_id, max_age=max_age
        )
        async with self._db.write() as conn:
            await repo.insert_session(conn, session, now=utcnow())
        return session

    async def participant_id(self, session: SessionRecord, conversation_id: str) -> str | None:
        """The session's participant in a conversation (bot sessions: only their own).

        Found participations are remembered: they never change, and go only with their
        conversation (:meth:`forget_conversation`)."""
        if session.bot_conversation_id not in (None, conversation_id):
            return None
        pair = (session.key, conversation_id)
        found = self._participations.get(pair)
        if found is not None:
            return found
        async with self._db.read() as conn:
            found = await repo.participation(conn, session.key, conversation_id)
        if found is not None:
            self._participations[pair] = found
            while len(self._participations) > CACHE_SIZE:
                self._participations.popitem(last=False)
        return found

    def forget_conversation(self, conversation_id: str) -> None:
        """A conversation was deleted: its places are no longer anyone's."""
        for pair in [p for p in self._participations if p[1] == conversation_id]:
            del self._participations[pair]

    async def participations(self, session: SessionRecord | None, ids: list[str]) -> dict[str, str]:
        if session is None:
            return {}
        async with self._db.read() as conn:
            found = await repo.participations(conn, session.key, ids)
        if session.bot_conversation_id is not None:
            found = {k: v for k, v in found.items() if k == session.bot_conversation_id}
        return found

    async def remember_nickname(self, session: SessionRecord, nickname: str) -> None:
        async with self._db.write() as conn:
            await repo.set_nickname(conn, session.key, nickname)
        self._cache.pop(session.key, None)

    def cookie_header(self, session: SessionRecord) -> tuple[bytes, bytes]:
        """The ``Set-Cookie`` header :meth:`set_cookie` writes, as a raw ASGI header."""
        response = Response()
        self.set_cookie(response, session)
        return next(h for h in response.raw_headers if h[0] == b"set-cookie")

    def set_cookie(self, response: Response, session: SessionRecord) -> None:
        """``sessionid=<key>; expires=…; HttpOnly; Max-Age=…; Path=/; SameSite=Lax`` as
        Django writes it (``Secure`` too when configured); never scoped to a host or port."""
        response.set_cookie(
            COOKIE,
            session.key,
            max_age=self._settings.session_max_age,
            expires=self._settings.session_max_age,
            path="/",
            httponly=True,
            samesite=self._settings.session_cookie_samesite.capitalize(),  # type: ignore[arg-type]
            secure=self._settings.session_cookie_secure,
        )


class CookieRenewal:
    """Sends a person's session cookie again on the answer to a request that renewed the
    session (:meth:`Sessions.load`), unless the answer sets it already (create, join)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def renewing(message: Message) -> None:
            if message["type"] == "http.response.start":
                session = scope.get("state", {}).get("renewed_session")
                headers = list(message.get("headers", []))
                if session is not None and not any(
                    name == b"set-cookie" and value.startswith(COOKIE.encode() + b"=")
                    for name, value in headers
                ):
                    sessions: Sessions = scope["app"].state.services.sessions
                    headers.append(sessions.cookie_header(session))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, renewing)


def _renewal(max_age: timedelta) -> timedelta:
    """How long after its last renewal a session is renewed again when used: an hour, or
    half a shorter lifetime."""
    return min(RENEW_AFTER, max_age / 2)


class SessionWatch:
    """Keeps the session of an open socket while the socket is open: looks at it again
    (:meth:`Sessions.load`: renewed if it is getting old) every ``every`` seconds, from a
    timer of its own, and calls ``ended`` if it has ended.

    An open socket is use, whether its client sends or not: a bot that says nothing for a
    day (a conversation quiet overnight, a manager that rarely routes to it) still receives
    the conversation's frames, and answers the next question on that socket. When only the
    frames a client sent renewed its session, such a bot's answer was refused (4403) and
    lost (QA). So a session does not lapse while a socket of it is open; its lifetime
    counts from its last socket's close or its last request. Nothing of this is done per
    frame: a timer per socket, and a look every half renewal period (half an hour by
    default: a read, and a write every other time).

    A session that ended all the same (purged, ended by hand, or lapsed while the database
    was out of reach) closes the socket at once, as a new handshake would be refused,
    rather than at its next frame, which would be lost.
    """

    __slots__ = ("_check", "_connection", "_ended", "_every", "_sessions", "_timer")

    def __init__(
        self,
        sessions: Sessions,
        connection: HTTPConnection,
        every: float,
        ended: Callable[[], None],
    ) -> None:
        self._sessions = sessions
        self._connection = connection
        self._every = every
        self._ended = ended
        self._check: asyncio.Task[None] | None = None
        # The first look at a random point of the first period: sockets opened together
        # (a restart's reconnections, thousands at once) do not all look at once.
        first = every * random.uniform(0.5, 1.0)
        self._timer = asyncio.get_running_loop().call_later(first, self._due)

    def _due(self) -> None:
        self._check = asyncio.get_running_loop().create_task(self._look(), name="session-watch")

    async def _look(self) -> None:
        try:
            valid = await self._sessions.load(self._connection) is not None
        except Exception as exc:
            # (the database out of reach, say): looked at again next time; a session
            # renewed within its renewal period has the rest of its lifetime left (23 of
            # a bot's 24 hours by default), so an outage shorter than that costs nothing
            self._sessions.outages.warning(
                log, "looking at a socket's session failed", error=repr(exc)
            )
            valid = True
        if valid:
            self._timer = asyncio.get_running_loop().call_later(self._every, self._due)
        else:
            self._ended()

    async def stop(self) -> None:
        """The socket has closed: no more looks (one under way is cancelled)."""
        self._timer.cancel()
        check, self._check = self._check, None
        if check is not None and not check.done():
            check.cancel()
            await asyncio.gather(check, return_exceptions=True)
