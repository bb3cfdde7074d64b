"""``web.responses.refuse``: the one way a request or a handshake is refused before its
route, with or without the ASGI server's WebSocket denial response."""

from __future__ import annotations

import orjson
import pytest
from starlette.types import Message, Scope

from tertulia.web.responses import JSONBody, refuse

BODY = {"detail": "No.", "code": "nope"}


async def _refused(scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("a refusal reads nothing")

    async def send(message: Message) -> None:
        sent.append(message)

    response = JSONBody(BODY, status_code=429, headers={"Retry-After": "7"})
    await refuse(scope, receive, send, response, close_code=4429)
    return sent


def _scope(kind: str, extensions: dict[str, object]) -> Scope:
    return {"type": kind, "headers": [], "extensions": extensions}


@pytest.mark.parametrize(
    ("kind", "prefix"), [("http", "http.response"), ("websocket", "websocket.http.response")]
)
async def test_the_response_is_sent_where_it_can_be(kind: str, prefix: str) -> None:
    """An HTTP request, or a handshake on a server with the denial response: the status,
    the headers and the JSON body reach the client."""
    start, body = await _refused(_scope(kind, {"websocket.http.response": {}}))
    assert start["type"] == f"{prefix}.start"
    assert start["status"] == 429
    assert (b"retry-after", b"7") in start["headers"]
    assert body["type"] == f"{prefix}.body"
    assert orjson.loads(body["body"]) == BODY


async def test_a_handshake_without_the_denial_response_is_closed_with_the_code() -> None:
    """A server that cannot send a denial response: closed before accept with the code
    given (the client sees HTTP 403), and nothing else sent."""
    assert await _refused(_scope("websocket", {})) == [{"type": "websocket.close", "code": 4429}]
