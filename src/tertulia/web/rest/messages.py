"""A conversation's messages: history and posting (JSON or multipart)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from tertulia.domain.times import parse_query_time
from tertulia.errors import ValidationFailed
from tertulia.web.bodies import read_object
from tertulia.web.deps import check_message_rate, membership, services
from tertulia.web.pagination import (
    PAGE_QUERY,
    check_in_range,
    page_number,
    paginated,
    resolve_last,
)
from tertulia.web.params import whole_number
from tertulia.web.responses import JSONBody
from tertulia.web.rest import route
from tertulia.web.schemas import (
    BODY_ERRORS,
    ERRORS,
    NO_SPACE,
    THROTTLED,
    MessageCreate,
    MessageOut,
    MessagePage,
    request_body,
)
from tertulia.web.uploads import NOT_A_FILE, is_multipart, post_multipart

router = APIRouter(
    prefix="/conversations/{conversation_id}/messages", tags=["messages"], responses=ERRORS
)
TIME_QUERY = "ISO 8601 date-time (`Z` or an offset; naive is UTC), a bare date, or `now`"


def _limit(raw: str | None, cap: int | None) -> int | None:
    if raw is None:
        return None
    value = whole_number(raw)
    if value is None:
        raise ValidationFailed(detail=f"Invalid limit: {raw}")
    return min(value, cap) if cap is not None else value


@route(router, "", ["GET", "HEAD"], response_model=MessagePage)
async def list_messages(
    conversation_id: str,
    request: Request,
    until: Annotated[str | None, Query(description=TIME_QUERY + " (inclusive upper bound)")] = None,
    since: Annotated[str | None, Query(description=TIME_QUERY + " (inclusive lower bound)")] = None,
    limit: Annotated[
        str | None,
        Query(
            description="decimal digits: keep only the newest `limit` messages",
            # documented only: anything else is the protocol's 400 "Invalid limit"
            json_schema_extra={"pattern": "^[0-9]+$"},
        ),
    ] = None,
    page: Annotated[str | None, Query(description=PAGE_QUERY)] = None,
) -> JSONBody:
    """The visible history: filtered by ``since`` / ``until`` (inclusive; ISO 8601 or
    ``now``), the newest ``limit`` of them, oldest first, 100 a page."""
    member = await membership(request, conversation_id)
    until_time = parse_query_time(until) if until is not None else None
    since_time = parse_query_time(since) if since is not None else None
    newest = _limit(limit, services(request).settings.history_max_limit)
    wanted = page_number(page)
    number = wanted if isinstance(wanted, int) else 1
    total, results = await member.chat.history(
        until=until_time, since=since_time, limit=newest, page=number
    )
    if wanted == "last" and resolve_last(wanted, total) != number:
        number = resolve_last(wanted, total)
        total, results = await member.chat.history(
            until=until_time, since=since_time, limit=newest, page=number
        )
    check_in_range(number, total)
    return JSONBody(paginated(request, number, total, results))


@route(
    router,
    "",
    ["POST"],
    status_code=201,
    response_model=MessageOut,
    responses={
        200: {"model": MessageOut, "description": "a repeated local_id: the stored message"},
        **BODY_ERRORS,
        **THROTTLED,
        **NO_SPACE,
    },
    openapi_extra=request_body(MessageCreate, multipart=True, form=False),
)
async def post_message(conversation_id: str, request: Request) -> JSONBody:
    """Send a message as the session's participant, through the same rules as the socket.

    A repeated ``local_id`` stores nothing and answers 200 with the stored message. Files
    come as multipart (streamed, see :mod:`tertulia.web.uploads`); JSON carries at most an
    ``external_file_url``."""
    member = await membership(request, conversation_id)
    await check_message_rate(request, member.participant)
    if is_multipart(request):
        return await post_multipart(request, member)
    data = await read_object(request, form=False)
    if data.get("file") is not None:
        raise ValidationFailed({"file": [NOT_A_FILE]})
    result = await member.chat.submit(member.participant, data)
    status = 200 if result.duplicate else 201
    return JSONBody(member.chat.public(result.message), status_code=status)
