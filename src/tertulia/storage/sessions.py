"""Server-side sessions: the ``sessionid`` cookie's key and what it participates in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, select, update

from tertulia.domain.times import utcnow
from tertulia.storage.database import Connection
from tertulia.storage.tables import session_participations, sessions

_KEY = sessions.c.key == bindparam("key")
_INSERT = sessions.insert()
_GET = select(sessions).where(_KEY)
# Only a session still valid: one expired meanwhile (its required bot left, say)
# stays expired, whatever a request that read it a moment earlier asks.
_RENEW = (
    update(sessions)
    .where(_KEY, sessions.c.expires_at > bindparam("now"))
    .values(expires_at=bindparam("expires_at"))
)
_SET_NICKNAME = update(sessions).where(_KEY).values(nickname=bindparam("nickname"))
_PARTICIPATION = select(session_participations.c.participant_id).where(
    session_participations.c.session_key == bindparam("key"),
    session_participations.c.conversation_id == bindparam("conversation_id"),
)
_ADD_PARTICIPATION = session_participations.insert()
_IN_CHUNK = 50  # conversation ids per statement of participations()
_PARTICIPATIONS_IN = select(
    session_participations.c.conversation_id, session_participations.c.participant_id
).where(
    session_participations.c.session_key == bindparam("key"),
    session_participations.c.conversation_id.in_([bindparam(f"c{i}") for i in range(_IN_CHUNK)]),
)
_EXPIRE_BOT = (
    update(sessions)
    .where(
        sessions.c.bot_conversation_id == bindparam("conversation_id"),
        sessions.c.key.in_(
            select(session_participations.c.session_key).where(
                session_participations.c.participant_id == bindparam("participant")
            )
        ),
    )
    .values(expires_at=bindparam("now"))
)
# One bot session, if still valid (a trigger's retry ends its earlier attempts').
_END_BOT_SESSION = (
    update(sessions)
    .where(
        _KEY, sessions.c.bot_conversation_id.is_not(None), sessions.c.expires_at > bindparam("now")
    )
    .values(expires_at=bindparam("now"))
)
# A batch of expired sessions, the same in both statements of one purge (ordered by key).
_EXPIRED = (
    select(sessions.c.key)
    .where(sessions.c.expires_at <= bindparam("now"))
    .order_by(sessions.c.key)
    .limit(bindparam("limit"))
)
_PURGE_PARTICIPATIONS = delete(session_participations).where(
    session_participations.c.session_key.in_(_EXPIRED)
)
_PURGE = delete(sessions).where(sessions.c.key.in_(_EXPIRED))


@dataclass(frozen=True, slots=True)
class SessionRecord:
    key: str
    nickname: str | None
    expires_at: datetime
    bot_conversation_id: str | None = None


async def create_session(
    conn: Connection,
    key: str,
    *,
    now: datetime,
    expires_at: datetime,
    nickname: str | None = None,
    bot_conversation_id: str | None = None,
) -> SessionRecord:
    await conn.execute(
        _INSERT,
        {
            "key": key,
            "nickname": nickname,
            "created_at": now,
            "expires_at": expires_at,
            "bot_conversation_id": bot_conversation_id,
        },
    )
    return SessionRecord(key, nickname, expires_at, bot_conversation_id)


async def insert_session(conn: Connection, session: SessionRecord, *, now: datetime) -> None:
    """Store a session record made in advance (see :func:`create_session`)."""
    await create_session(
        conn,
        session.key,
        now=now,
        expires_at=session.expires_at,
        nickname=session.nickname,
        bot_conversation_id=session.bot_conversation_id,
    )


async def get_session(conn: Connection, key: str, *, now: datetime) -> SessionRecord | None:
    """The session, unless unknown or expired."""
    row = (await conn.execute(_GET, {"key": key})).first()
    if row is None or row.expires_at <= now:
        return None
    return SessionRecord(row.key, row.nickname, row.expires_at, row.bot_conversation_id)


async def renew(
    conn: Connection, key: str, *, expires_at: datetime, now: datetime | None = None
) -> bool:
    """Move a session's expiry to ``expires_at``, unless it has expired by ``now`` (default:
    the current time). Returns whether it was renewed."""
    values = {"key": key, "expires_at": expires_at, "now": now or utcnow()}
    result = await conn.execute(_RENEW, values)
    return bool(result.rowcount)


async def set_nickname(conn: Connection, key: str, nickname: str) -> None:
    await conn.execute(_SET_NICKNAME, {"key": key, "nickname": nickname})


async def participation(conn: Connection, key: str, conversation_id: str) -> str | None:
    """The session's participant id in the conversation, or ``None``."""
    result = await conn.execute(_PARTICIPATION, {"key": key, "conversation_id": conversation_id})
    found: str | None = result.scalar_one_or_none()
    return found


async def participations(conn: Connection, key: str, conversation_ids: list[str]) -> dict[str, str]:
    """conversation id -> participant id, for those of ``conversation_ids`` the session is in.

    Asked :data:`_IN_CHUNK` ids at a time, the rest of a chunk padded with an id that
    matches nothing, so that one statement serves every page. Built per call with an IN
    list as long as the page, it compiled at every rooms list and took a place in the
    statement cache each time (soak QA: 541 of its 1,000 entries)."""
    found: dict[str, str] = {}
    for start in range(0, len(conversation_ids), _IN_CHUNK):
        chunk = conversation_ids[start : start + _IN_CHUNK]
        params = {"key": key, **{f"c{i}": "" for i in range(_IN_CHUNK)}}
        params.update({f"c{i}": conversation_id for i, conversation_id in enumerate(chunk)})
        rows = await conn.execute(_PARTICIPATIONS_IN, params)
        found.update({r.conversation_id: r.participant_id for r in rows})
    return found


async def add_participation(
    conn: Connection, key: str, conversation_id: str, participant_id: str
) -> None:
    await conn.execute(
        _ADD_PARTICIPATION,
        {"session_key": key, "conversation_id": conversation_id, "participant_id": participant_id},
    )


async def expire_bot_sessions(
    conn: Connection, conversation_id: str, participant_id: str, *, now: datetime
) -> None:
    """End the sessions handed to one external bot of a conversation: a required bot that
    left, ending the conversation. The other bots' sessions hold: the conversation keeps
    accepting their messages (PROTOCOL 4.4, 9.4)."""
    values = {"conversation_id": conversation_id, "participant": participant_id, "now": now}
    await conn.execute(_EXPIRE_BOT, values)


async def end_bot_sessions(conn: Connection, keys: Sequence[str], *, now: datetime) -> list[str]:
    """End these bot sessions; returns those that were still valid."""
    ended = []
    for key in keys:  # (a trigger's few attempts)
        if (await conn.execute(_END_BOT_SESSION, {"key": key, "now": now})).rowcount:
            ended.append(key)
    return ended


async def purge_expired(conn: Connection, *, now: datetime, limit: int = 1000) -> int:
    """Delete up to ``limit`` sessions expired by ``now``, with their participations;
    returns how many sessions (fewer than ``limit``: none are left)."""
    params = {"now": now, "limit": limit}
    await conn.execute(_PURGE_PARTICIPATIONS, params)
    return (await conn.execute(_PURGE, params)).rowcount
