"""Conversations: list (rooms, or the session's own), create, retrieve, join, rename a
participant."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from tertulia.chats import Chat
from tertulia.domain.conversations import (
    clean_bot_names,
    clean_conversation_name,
    clean_nickname,
    clean_participant_name,
)
from tertulia.domain.ids import canonical_id, new_id
from tertulia.domain.model import Conversation
from tertulia.domain.times import format_time, utcnow
from tertulia.errors import Conflict, PermissionDenied
from tertulia.storage import conversations as conv_repo
from tertulia.storage.database import Connection
from tertulia.storage.sessions import SessionRecord
from tertulia.web.bodies import read_object
from tertulia.web.deps import Services, chat_or_404, check_rename_rate, membership, services
from tertulia.web.pagination import (
    PAGE_QUERY,
    PAGE_SIZE,
    check_in_range,
    page_number,
    paginated,
    resolve_last,
)
from tertulia.web.responses import JSONBody
from tertulia.web.rest import route
from tertulia.web.schemas import (
    BODY_ERRORS,
    ERRORS,
    THROTTLED,
    ConversationCreate,
    ConversationOut,
    ConversationPage,
    JoinRequest,
    ParticipantOut,
    RenameRequest,
    request_body,
)

router = APIRouter(prefix="/conversations", tags=["conversations"], responses=ERRORS)


def _conversation(chat: Chat, my_participant_id: str | None) -> dict[str, Any]:
    conversation = chat.conversation
    return {
        "id": conversation.id,
        "name": conversation.name,
        "created_at": format_time(conversation.created_at),
        "participants": chat.public_participants(),
        "my_participant_id": my_participant_id,
    }


Rows = Sequence[tuple[Conversation, int, str | None]]
Fetch = Callable[[Connection, int, int], Awaitable[tuple[int, Rows]]]
MINE_QUERY = (
    "only the conversations of the caller's session, newest first (an extension; rooms on or off)"
)


@route(router, "", ["GET", "HEAD"], response_model=ConversationPage, name="list_conversations")
async def list_conversations(
    request: Request,
    page: Annotated[str | None, Query(description=PAGE_QUERY)] = None,
    mine: Annotated[bool, Query(description=MINE_QUERY)] = False,
) -> JSONBody:
    """All conversations, by name (only with rooms on; 403 otherwise); with ``mine=true``,
    those of the caller's session, newest first, rooms on or off."""
    svc = services(request)
    if not mine and not svc.settings.rooms:
        raise PermissionDenied()
    session = await svc.sessions.load(request)
    if mine:
        if session is None:  # (none of them: the first page, the last too, empty)
            wanted = page_number(page)
            check_in_range(wanted if isinstance(wanted, int) else 1, 0)
            return JSONBody(paginated(request, 1, 0, []))
        key = session.key

        async def fetch(conn: Connection, offset: int, limit: int) -> tuple[int, Rows]:
            return await conv_repo.list_session_conversations(conn, key, offset=offset, limit=limit)

        number, total, rows = await _page(svc, page, fetch)
    else:

        async def fetch(conn: Connection, offset: int, limit: int) -> tuple[int, Rows]:
            total, found = await conv_repo.list_conversations(conn, offset=offset, limit=limit)
            return total, [(c, count, None) for c, count in found]

        number, total, rooms = await _page(svc, page, fetch)
        ids = await svc.sessions.participations(session, [c.id for c, _, _ in rooms])
        rows = [(c, count, ids.get(c.id)) for c, count, _ in rooms]
    results = [
        {
            "id": c.id,
            "name": c.name,
            "created_at": format_time(c.created_at),
            "participant_count": count,
            "my_participant_id": participant_id,
        }
        for c, count, participant_id in rows
    ]
    return JSONBody(paginated(request, number, total, results))


async def _page(svc: Services, page: str | None, fetch: Fetch) -> tuple[int, int, Rows]:
    """The page asked for (a number, ``last`` or none: the first): its number, the total
    and its rows; 404 past the end."""
    wanted = page_number(page)
    number = wanted if isinstance(wanted, int) else 1
    async with svc.registry.db.read() as conn:
        total, rows = await fetch(conn, (number - 1) * PAGE_SIZE, PAGE_SIZE)
        if wanted == "last" and resolve_last(wanted, total) != number:
            number = resolve_last(wanted, total)
            total, rows = await fetch(conn, (number - 1) * PAGE_SIZE, PAGE_SIZE)
    check_in_range(number, total)
    return number, total, rows


@route(
    router,
    "",
    ["POST"],
    status_code=201,
    response_model=ConversationOut,
    responses={**BODY_ERRORS, **THROTTLED},
    openapi_extra=request_body(ConversationCreate, multipart=True),
)
async def create_conversation(request: Request) -> JSONBody:
    """Create a conversation with the requested bots (and the manager, if configured).

    The caller becomes its first participant; the response sets the ``sessionid`` cookie."""
    svc = services(request)
    data = await read_object(request)
    name = clean_conversation_name(data.get("name"))
    nickname = clean_nickname(data.get("nickname"))
    settings = svc.settings
    bots = clean_bot_names(
        data.get("bots"),
        installed=settings.bots,
        manager=settings.manager,
        most=settings.max_participants - 1 - (settings.manager is not None),
    )

    session = await svc.sessions.load(request)
    new_session = None
    if session is None or session.bot_conversation_id is not None:
        session = new_session = svc.sessions.new(nickname=nickname)
    effective = nickname or session.nickname or None

    conversation = Conversation(id=new_id(), name=name, created_at=utcnow())
    participants = await Chat.on_create_conversation(
        effective, bots, conversation, session_key=session.key, new_session=new_session
    )
    # (remembered once the conversation is made: a refused nickname, a bot's, say, is not)
    if new_session is None and nickname is not None and nickname != session.nickname:
        await svc.sessions.remember_nickname(session, nickname)
    chat = await chat_or_404(conversation.id)
    response = JSONBody(_conversation(chat, participants[0].id), status_code=201)
    svc.sessions.set_cookie(response, session)
    return response


@route(router, "/{conversation_id}", ["GET", "HEAD"], response_model=ConversationOut)
async def retrieve_conversation(conversation_id: str, request: Request) -> JSONBody:
    """One conversation with its participants (rooms off: participants only)."""
    svc = services(request)
    chat = await chat_or_404(conversation_id)
    session = await svc.sessions.load(request)
    mine = await svc.sessions.participant_id(session, chat.conversation.id) if session else None
    if mine is None and not svc.settings.rooms:
        raise PermissionDenied()
    await chat.refresh()
    return JSONBody(_conversation(chat, mine))


@route(
    router,
    "/{conversation_id}/join",
    ["POST"],
    response_model=ConversationOut,
    responses={**BODY_ERRORS, **THROTTLED},
    openapi_extra=request_body(JoinRequest, multipart=True),
)
async def join_conversation(conversation_id: str, request: Request) -> JSONBody:
    """Re-enter a conversation the session is in, or (rooms on) join it as a new person."""
    svc = services(request)
    chat = await chat_or_404(conversation_id)
    data = await read_object(request)
    nickname = clean_nickname(data.get("nickname"))
    session: SessionRecord | None = await svc.sessions.load(request)
    if session is not None:
        mine = await svc.sessions.participant_id(session, chat.conversation.id)
        if mine is not None and await chat.participant(mine) is not None:
            await chat.refresh()  # another server process may have added participants
            return _joined(svc, chat, mine, session)
        if session.bot_conversation_id is not None:
            raise PermissionDenied()
    if not svc.settings.rooms:
        raise PermissionDenied()
    if session is None:
        session = await svc.sessions.create()
    try:
        participant = await chat.join(nickname or session.nickname or None, session_key=session.key)
    except Conflict:
        # The same session joined at the same moment and won: nothing of this join was
        # stored (one transaction), so answer as a re-entry into the winner's participant.
        await chat.refresh()
        mine = await svc.sessions.participant_id(session, chat.conversation.id)
        if mine is None:
            raise
        return _joined(svc, chat, mine, session)
    return _joined(svc, chat, participant.id, session)


def _joined(svc: Services, chat: Chat, participant_id: str, session: SessionRecord) -> JSONBody:
    response = JSONBody(_conversation(chat, participant_id))
    svc.sessions.set_cookie(response, session)
    return response


@route(
    router,
    "/{conversation_id}/participants/{participant_id}",
    ["PATCH"],
    response_model=ParticipantOut,
    responses={**BODY_ERRORS, **THROTTLED},
    openapi_extra=request_body(RenameRequest, multipart=True, form=False, required=True),
)
async def rename_participant(
    conversation_id: str, participant_id: str, request: Request
) -> JSONBody:
    """Rename oneself (the web client's "Change my name"); people only."""
    member = await membership(request, conversation_id)
    await check_rename_rate(request, member.participant)
    if member.participant.id != canonical_id(participant_id):
        raise PermissionDenied()
    if not member.participant.is_human:
        # A bot keeps its spec's name: a manager's redirects find bots by name, so a bot
        # renamed after another would receive what was meant for that one.
        raise PermissionDenied()
    data = await read_object(request, form=False)
    name = clean_participant_name(data.get("name"))
    renamed = await member.chat.rename(member.participant, name)
    return JSONBody(renamed.public())
