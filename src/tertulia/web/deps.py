"""What routes share: the app's services and the session/participant checks."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from starlette.requests import HTTPConnection

from tertulia.chats import Chat, ChatRegistry
from tertulia.domain.ids import canonical_id
from tertulia.domain.model import Participant
from tertulia.errors import NotFound, PermissionDenied, Throttled
from tertulia.logs import Sampled
from tertulia.settings import Settings
from tertulia.storage.sessions import SessionRecord
from tertulia.web.ratelimit import RateLimits
from tertulia.web.sessions import Sessions
from tertulia.web.socketcap import SocketCounts


@dataclass(frozen=True, slots=True)
class Services:
    """Built in the lifespan, kept on ``app.state.services``."""

    settings: Settings
    registry: ChatRegistry
    sessions: Sessions
    http: httpx.AsyncClient
    rate_limits: RateLimits
    sockets: SocketCounts
    outages: Sampled
    """The warnings of requests, frames and sockets refused by an outage."""


def services(connection: HTTPConnection) -> Services:
    found: Services = connection.app.state.services
    return found


async def chat_or_404(conversation_id: str) -> Chat:
    """The conversation's controller; NotFound for an unknown or malformed id."""
    chat = await Chat.get_chat(conversation_id) if canonical_id(conversation_id) else None
    if chat is None:
        raise NotFound()
    return chat


@dataclass(frozen=True, slots=True)
class Membership:
    chat: Chat
    participant: Participant
    session: SessionRecord


async def membership(connection: HTTPConnection, conversation_id: str) -> Membership:
    """The session's participant in the conversation.

    Raises:
        PermissionDenied: no session, or the session is not in this conversation (also
            when the conversation does not exist, as in BLAB).
    """
    svc = services(connection)
    session = await svc.sessions.load(connection)
    key = canonical_id(conversation_id)
    if session is None or key is None:
        raise PermissionDenied()
    participant_id = await svc.sessions.participant_id(session, key)
    if participant_id is None:
        raise PermissionDenied()
    chat = await Chat.get_chat(key)
    participant = await chat.participant(participant_id) if chat else None
    if chat is None or participant is None:
        raise PermissionDenied()
    return Membership(chat, participant, session)


async def check_message_rate(connection: HTTPConnection, participant: Participant) -> None:
    """Count one message of a participant (REST and WebSocket together).

    A manager bot is counted against its own, higher limit (``manager``): it serves everyone
    in its conversation, with a command for every message, and under the people's limit its
    commands were refused, delayed and stored out of order.

    Raises:
        Throttled: over the ``message`` rate limit (a manager's: ``manager``).
    """
    kind = "manager" if participant.is_manager else "message"
    await _count(connection, kind, participant.id, "Too many messages; slow down.")


async def check_rename_rate(connection: HTTPConnection, participant: Participant) -> None:
    """Count one rename of a participant (each is a write and a ``state`` frame to every
    socket of the conversation).

    Raises:
        Throttled: over the ``rename`` rate limit.
    """
    await _count(connection, "rename", participant.id, "Too many renames; try again later.")


async def _count(connection: HTTPConnection, kind: str, key: str, detail: str) -> None:
    """Count one hit of ``key`` against the ``kind`` limit; Throttled (with the wait)
    when over it."""
    limits = services(connection).rate_limits
    if not await limits.hit(kind, key):
        wait = await limits.retry_after(kind, key)
        raise Throttled(detail, retry_after=wait)
