"""Wire schemas of the REST API, for the OpenAPI document (``/api/chat/_docs/``).

Requests are parsed by BLAB's rules (:mod:`tertulia.web.bodies`, :mod:`tertulia.domain`),
which accept JSON, form and multipart alike; these models describe the same shapes.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field


class ConversationCreate(BaseModel):
    name: str | None = Field(default=None, max_length=50, description="trimmed")
    nickname: str | None = Field(
        default=None, max_length=50, description="blank: the session's, then ANON_<id>"
    )
    bots: list[str] = Field(default_factory=list, description="names from bots/")


class JoinRequest(BaseModel):
    nickname: str | None = Field(default=None, max_length=50)


class RenameRequest(BaseModel):
    name: str = Field(
        min_length=1,
        max_length=50,
        pattern=r"\S",
        description="1 to 50 characters once spaces at either end are cut",
    )


class MessageCreate(BaseModel):
    type: Literal["T", "V", "a", "v", "i", "A"]
    text: str | None = Field(default="", max_length=4000, description="null is taken as empty")
    local_id: str | None = Field(default=None, max_length=32, description="idempotency key")
    quoted_message_id: str | None = None
    options: list[str] | None = Field(default=None, max_length=100)
    external_file_url: str | None = Field(default=None, max_length=1000)
    command: str | dict[str, Any] | None = Field(
        default=None, description="manager only: a JSON object, or a string holding one"
    )


class ParticipantOut(BaseModel):
    id: str = Field(description="UUID, 36 characters")
    name: str
    type: Literal["H", "B"]


class ConversationOut(BaseModel):
    id: str
    name: str | None
    created_at: str = Field(description="ISO 8601, UTC, Z")
    participants: list[ParticipantOut]
    my_participant_id: str | None


class ConversationSummary(BaseModel):
    id: str
    name: str | None
    created_at: str
    participant_count: int
    my_participant_id: str | None


class MessageOut(BaseModel):
    type: Literal["S", "T", "V", "a", "v", "i", "A"]
    time: str = Field(description="ISO 8601, UTC, Z, 0 or 6 fractional digits")
    id: str
    sent_by_human: bool
    event: str | None = Field(default=None, description="system messages only")
    additional_metadata: dict[str, str] | None = Field(default=None, description="system only")
    quoted_message_id: str | None = None
    sender_id: str | None = None
    local_id: str | None = None
    text: str | None = None
    file_url: str | None = None
    file_size: int | None = None
    file_name: str | None = None
    options: list[str]
    seq: int | None = Field(default=None, description="position in the visible stream")


class MessagePage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[MessageOut]


class ConversationPage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[ConversationSummary]


class BotsOut(BaseModel):
    results: list[str]


class LimitsOut(BaseModel):
    MAX_ATTACHMENT_SIZE: int
    MAX_IMAGE_SIZE: int
    MAX_VIDEO_SIZE: int
    MAX_AUDIO_SIZE: int
    MAX_VOICE_SIZE: int


class ErrorOut(BaseModel):
    detail: str
    code: str


def request_body(
    model: type[BaseModel], *, multipart: bool = False, form: bool = True, required: bool = False
) -> dict[str, Any]:
    """``openapi_extra`` describing a body parsed by hand."""
    schema = model.model_json_schema()
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if form:
        content["application/x-www-form-urlencoded"] = {"schema": schema}
    if multipart:
        content["multipart/form-data"] = {"schema": schema}
    return {"requestBody": {"required": required, "content": content}}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "invalid input: field errors, or a list of texts"},
    403: {"model": ErrorOut, "description": "not a participant / rooms off"},
    404: {"model": ErrorOut, "description": "no such conversation, or invalid page"},
}
"""What any route of a router may answer besides its own success."""

BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorOut, "description": "the body (or an uploaded file) is too large"},
    415: {"model": ErrorOut, "description": "a body of a media type the route does not take"},
}
"""What a route that reads a body may also answer."""

THROTTLED: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorOut, "description": "over a rate limit (``rate_limits``); try later"},
}
"""What a rate-limited route may also answer."""

NO_SPACE: dict[int | str, dict[str, Any]] = {
    507: {
        "model": ErrorOut,
        "description": "no_space: storing the file would leave the server's disk below its "
        "free-space floor (``media_min_free``)",
    },
}
"""What a route that stores uploaded files may also answer."""


ANY_ROUTE: dict[str, dict[str, Any]] = {
    "400": {"description": "host: a Host the server is not reached by (``allowed_hosts``)"},
    "503": {
        "description": "unavailable: the database or the broker out of reach (with "
        "``retry_after`` and ``Retry-After``); ``/health``: its own body",
    },
}
"""What every route may answer whatever it does (web/hosts.py, the outages)."""
WRITING_ROUTE: dict[str, dict[str, Any]] = {
    "409": {"description": "conflict: a concurrent change won; try again"},
}
"""What a route that writes (``POST``, ``PATCH``) may also answer."""


def documented_as_answered(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document name what its routes answer.

    FastAPI lists a 422 with its ``HTTPValidationError`` body on every route that has
    parameters; Tertulia answers invalid input with 400 in the shapes of PROTOCOL 1.4
    (:data:`ERRORS`) and never with 422, so a client generated from the document would wait
    for a status and a body that never come: it is left out. What any route may answer
    (:data:`ANY_ROUTE`, :data:`WRITING_ROUTE`) is added where a route does not say it
    already (docs QA 3: no route named 503, nor 409).
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()  # (kept as app.openapi_schema: changed in place, once)
        for operations in document.get("paths", {}).values():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                also = {**ANY_ROUTE, **(WRITING_ROUTE if method in ("post", "patch") else {})}
                for status, response in also.items():
                    responses.setdefault(status, response)
        shapes = document.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            shapes.pop(name, None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
