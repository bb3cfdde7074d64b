"""Server-side sessions: the ``sessionid`` cookie's key and what it participates in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tertulia.storage.tables import session_participations, sessions


@dataclass(frozen=True, slots=True)
class SessionRecord:
    key: str
    nickname: str | None
    expires_at: datetime
    bot_conversation_id: str | None = None


async def create_session(
    conn: AsyncConnection,
    key: str,
    *,
    now: datetime,
    expires_at: datetime,
    nickname: str | None = None,
    bot_conversation_id: str | None = None,
) -> SessionRecord:
    await conn.execute(
        sessions.insert().values(
            key=key,
            nickname=nickname,
            created_at=now,
            expires_at=expires_at,
            bot_conversation_id=bot_conversation_id,
        )
    )
    return SessionRecord(key, nickname, expires_at, bot_conversation_id)


async def get_session(conn: AsyncConnection, key: str, *, now: datetime) -> SessionRecord | None:
    """The session, unless unknown or expired."""
    row = (await conn.execute(select(sessions).where(sessions.c.key == key))).first()
    if row is None or row.expires_at <= now:
        return None
    return SessionRecord(row.key, row.nickname, row.expires_at, row.bot_conversation_id)


async def renew(conn: AsyncConnection, key: str, *, expires_at: datetime) -> None:
    await conn.execute(update(sessions).where(sessions.c.key == key).values(expires_at=expires_at))


async def set_nickname(conn: AsyncConnection, key: str, nickname: str) -> None:
    await conn.execute(update(sessions).where(sessions.c.key == key).values(nickname=nickname))


async def participation(conn: AsyncConnection, key: str, conversation_id: str) -> str | None:
    """The session's participant id in the conversation, or ``None``."""
    return (
        await conn.execute(
            select(session_participations.c.participant_id).where(
                session_participations.c.session_key == key,
                session_participations.c.conversation_id == conversation_id,
            )
        )
    ).scalar_one_or_none()


async def participations(
    conn: AsyncConnection, key: str, conversation_ids: list[str]
) -> dict[str, str]:
    """conversation id -> participant id, for those of ``conversation_ids`` the session is in."""
    if not conversation_ids:
        return {}
    rows = await conn.execute(
        select(
            session_participations.c.conversation_id, session_participations.c.participant_id
        ).where(
            session_participations.c.session_key == key,
            session_participations.c.conversation_id.in_(conversation_ids),
        )
    )
    return {r.conversation_id: r.participant_id for r in rows}


async def add_participation(
    conn: AsyncConnection, key: str, conversation_id: str, participant_id: str
) -> None:
    await conn.execute(
        session_participations.insert().values(
            session_key=key, conversation_id=conversation_id, participant_id=participant_id
        )
    )


async def expire_bot_sessions(
    conn: AsyncConnection, conversation_id: str, *, now: datetime
) -> None:
    """End the sessions handed to external bots of a conversation (it has ended)."""
    await conn.execute(
        update(sessions)
        .where(sessions.c.bot_conversation_id == conversation_id)
        .values(expires_at=now)
    )


async def purge_expired(conn: AsyncConnection, *, now: datetime) -> None:
    expired = select(sessions.c.key).where(sessions.c.expires_at <= now)
    await conn.execute(
        delete(session_participations).where(session_participations.c.session_key.in_(expired))
    )
    await conn.execute(delete(sessions).where(sessions.c.expires_at <= now))
