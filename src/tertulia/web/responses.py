"""JSON responses rendered with orjson (compact UTF-8, as PROTOCOL 1.3 asks), and the one
way a request or a WebSocket handshake is refused before it reaches a route."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send


class JSONBody(JSONResponse):  # a JSONResponse, so OpenAPI shows the response models
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def refuse(
    scope: Scope, receive: Receive, send: Send, response: Response, *, close_code: int
) -> None:
    """Answer a request, or refuse a WebSocket handshake, with ``response``.

    A handshake gets it as the denial response (its status and JSON body reach the
    client). A server without that ASGI extension cannot send one: the socket is closed
    before accept with ``close_code``, which the client sees as HTTP 403.
    """
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get(
        "extensions", {}
    ):
        await send({"type": "websocket.close", "code": close_code})
        return
    await response(scope, receive, send)  # (Starlette sends it as the denial response)
