"""A conversation's messages: history and posting (JSON or multipart)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tertulia.domain.times import parse_query_time
from tertulia.errors import ValidationFailed
from tertulia.web.bodies import read_object
from tertulia.web.deps import membership, services
from tertulia.web.pagination import PAGE_SIZE, check_in_range, page_number, paginated
from tertulia.web.responses import JSONBody
from tertulia.web.rest import route
from tertulia.web.schemas import ERRORS, MessageCreate, MessageOut, MessagePage, request_body

router = APIRouter(prefix="/conversations/{conversation_id}/messages", tags=["messages"],
                   responses=ERRORS)


def _limit(raw: str | None, cap: int | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit():
        raise ValidationFailed(detail=f"Invalid limit: {raw}")
    value = int(raw)
    return min(value, cap) if cap is not None else value


@route(router, "", ["GET", "HEAD"], response_model=MessagePage)
async def list_messages(conversation_id: str, request: Request) -> JSONBody:
    """The visible history: filtered by ``since`` / ``until`` (inclusive; ISO 8601 or
    ``now``), the newest ``limit`` of them, oldest first, 100 a page."""
    member = await membership(request, conversation_id)
    query = request.query_params
    until = parse_query_time(query["until"]) if "until" in query else None
    since = parse_query_time(query["since"]) if "since" in query else None
    limit = _limit(query.get("limit"), services(request).settings.history_max_limit)
    page = page_number(query.get("page"))
    number = page if isinstance(page, int) else 1
    total, results = await member.chat.history(until=until, since=since, limit=limit, page=number)
    if page == "last":
        number = max(1, -(-total // PAGE_SIZE))
        total, results = await member.chat.history(until=until, since=since, limit=limit,
                                                   page=number)
    check_in_range(number, total)
    return JSONBody(paginated(request, number, total, results))


@route(router, "", ["POST"], status_code=201, response_model=MessageOut,
       openapi_extra=request_body(MessageCreate, multipart=True, form=False))
async def post_message(conversation_id: str, request: Request) -> JSONBody:
    """Send a message as the session's participant, through the same rules as the socket.

    A repeated ``local_id`` stores nothing and answers 200 with the stored message."""
    member = await membership(request, conversation_id)
    data = await read_object(request, form=False)
    result = await member.chat.submit(member.participant, data)
    return JSONBody(member.chat.public(result.message), status_code=200 if result.duplicate else 201)
