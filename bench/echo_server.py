"""The bare limit: the least server that speaks enough of the protocol for the bench client.

Same stack as Tertulia (Starlette on uvicorn with uvloop, httptools and websockets-sansio), no
database, no validation beyond what the client needs, nothing stored but the in-memory map of
sessions, conversations and open sockets. Every Tertulia figure is reported as a fraction of
what this server reaches on the same machine with the same client.

What it does:

- `GET /api/chat/bots/` → `{"results": ["ECHO", "Calculator"]}` (the runner's readiness probe);
- `POST /api/chat/conversations/` → 201 with `id`, `participants`, `my_participant_id` and
  `Set-Cookie: sessionid=<key>`;
- `POST /api/chat/conversations/<id>/join/` → reuses the session's participant, else (rooms on)
  adds a new human with a new session;
- `GET /api/chat/conversations/<id>/messages/` → an empty page (403 without membership);
- `/ws/chat/<id>/`: on connect, a `state` frame and a `participant-joined` message to the new
  socket only (the protocol wants a message promptly after connecting); each text frame is
  broadcast to the conversation's sockets as a stored-looking message (`id`, `time`,
  `sender_id`, `local_id`, `sent_by_human`), then, when the conversation has a bot, the
  upper-cased answer from the first bot quoting it. Bad frames get an `{"error": ...}` frame.

With `--store FILE` it is the *stored limit* instead: the same, plus the rows Tertulia writes
for each message (the person's text and its delivery to the bot in one commit, the answer and
the delivery's completion in the next; conversations and participants at create and join),
in SQLite with Tertulia's schema, each frame sent only after its commit (`bench/stored.py`).

Run: `python -m bench.echo_server --port 8001 [--store stored.db]`.
"""

from __future__ import annotations

import argparse
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import uuid_utils
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

if TYPE_CHECKING:
    from bench.stored import Store

BOTS = ("ECHO", "Calculator")
EMPTY_PAGE: dict[str, Any] = {"count": 0, "next": None, "previous": None, "results": []}


class OrjsonResponse(Response):
    """JSON response encoded with orjson, as Tertulia does."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


@dataclass(slots=True, eq=False)
class Conversation:
    """An in-memory conversation: participants and open sockets."""

    id: str
    participants: list[dict[str, str]]
    bot_id: str | None
    sockets: set[WebSocket] = field(default_factory=set)

    def body(self, my_participant_id: str) -> dict[str, Any]:
        """The create/join response body."""
        return {
            "id": self.id,
            "name": "",
            "created_at": now(),
            "participants": self.participants,
            "my_participant_id": my_participant_id,
        }


@dataclass(slots=True)
class EchoState:
    """Sessions (key → {conversation id → participant id}) and conversations."""

    rooms: bool = True
    sessions: dict[str, dict[str, str]] = field(default_factory=dict)
    conversations: dict[str, Conversation] = field(default_factory=dict)

    def participant(self, session_key: str | None, conversation_id: str) -> str | None:
        """The session's participant in the conversation, if any."""
        return self.sessions.get(session_key or "", {}).get(conversation_id)

    def enrol(self, session_key: str | None, conversation_id: str, participant_id: str) -> str:
        """Records the participant in the session (a new one if needed); returns its key."""
        if session_key not in self.sessions:
            session_key = secrets.token_hex(16)
            self.sessions[session_key] = {}
        self.sessions[session_key][conversation_id] = participant_id
        return session_key


def now() -> str:
    """The current time in the protocol's form."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def new_id() -> str:
    """A fresh canonical UUID, made as Tertulia makes its ids (version 7, ordered by time:
    with `--store` their index grows at its end, as Tertulia's does)."""
    return str(uuid_utils.uuid7())


async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, `{}` when absent or not an object."""
    body = await request.body()
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def with_session(body: dict[str, Any], status: int, session_key: str) -> Response:
    """A JSON response that sets the session cookie."""
    response = OrjsonResponse(body, status_code=status)
    response.set_cookie("sessionid", session_key, httponly=True, samesite="lax", path="/")
    return response


def create_app(rooms: bool = True, store: Store | None = None) -> Starlette:
    """Builds the echo application.

    Args:
        rooms: whether join may add new participants (as Tertulia's `rooms = true`).
        store: where to store what Tertulia would (None: store nothing, the bare limit).
    """
    state = EchoState(rooms=rooms)

    async def bots(request: Request) -> Response:
        return OrjsonResponse({"results": list(BOTS)})

    async def create(request: Request) -> Response:
        data = await read_json(request)
        human = {"id": new_id(), "name": str(data.get("nickname") or "anon"), "type": "H"}
        names = [b for b in data.get("bots") or [] if isinstance(b, str)]
        robots = [{"id": new_id(), "name": name, "type": "B"} for name in names]
        conv = Conversation(new_id(), [human, *robots], robots[0]["id"] if robots else None)
        state.conversations[conv.id] = conv
        if store is not None:
            await store.create(conv.id, conv.participants)
        key = state.enrol(request.cookies.get("sessionid"), conv.id, human["id"])
        return with_session(conv.body(human["id"]), 201, key)

    async def join(request: Request) -> Response:
        conv = state.conversations.get(request.path_params["cid"])
        if conv is None:
            return OrjsonResponse({"detail": "Not found."}, status_code=404)
        key = request.cookies.get("sessionid")
        participant_id = state.participant(key, conv.id)
        if participant_id is None:
            if not state.rooms:
                return OrjsonResponse({"detail": "rooms are off"}, status_code=403)
            data = await read_json(request)
            participant_id = new_id()
            name = str(data.get("nickname") or "anon")
            newcomer = {"id": participant_id, "name": name, "type": "H"}
            conv.participants.append(newcomer)
            if store is not None:
                await store.join(conv.id, newcomer, len(conv.participants) - 1)
        key = state.enrol(key, conv.id, participant_id)
        return with_session(conv.body(participant_id), 200, key)

    async def history(request: Request) -> Response:
        cid = request.path_params["cid"]
        if state.participant(request.cookies.get("sessionid"), cid) is None:
            return OrjsonResponse({"detail": "forbidden"}, status_code=403)
        return OrjsonResponse(EMPTY_PAGE)

    async def chat(ws: WebSocket) -> None:
        conv = state.conversations.get(ws.path_params["cid"])
        sender = state.participant(ws.cookies.get("sessionid"), ws.path_params["cid"])
        if conv is None or sender is None:
            await ws.close(code=4403)
            return
        await ws.accept()
        conv.sockets.add(ws)
        try:
            state_frame = {"state": {"participants": conv.participants}}
            await ws.send_text(orjson.dumps(state_frame).decode())
            await ws.send_text(orjson.dumps({"message": joined(sender)}).decode())
            await serve_socket(ws, conv, sender, store)
        finally:
            conv.sockets.discard(ws)

    return Starlette(
        routes=[
            Route("/api/chat/bots/", bots),
            Route("/api/chat/conversations/", create, methods=["POST"]),
            Route("/api/chat/conversations/{cid}/join/", join, methods=["POST"]),
            Route("/api/chat/conversations/{cid}/messages/", history, methods=["GET"]),
            WebSocketRoute("/ws/chat/{cid}/", chat),
        ]
    )


async def serve_socket(ws: WebSocket, conv: Conversation, sender: str, store: Store | None) -> None:
    """Reads frames until the peer leaves; echoes each text and the bot's answer."""
    while True:
        event = await ws.receive()
        if event["type"] == "websocket.disconnect":
            return
        text = event.get("text")
        if not text:
            continue
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            await ws.send_text('{"error":{"code":"invalid_frame","detail":"not a JSON object"}}')
            continue
        await answer(conv, sender, data, store)


async def answer(
    conv: Conversation, sender: str, data: dict[str, Any], store: Store | None
) -> None:
    """Broadcasts the sender's message, then the first bot's upper-cased answer (each
    stored first when there is a `store`)."""
    text = str(data.get("text") or "")
    message = message_body(sender, True, text, data.get("local_id"), data.get("quoted_message_id"))
    delivery = None
    if store is not None:
        message["seq"] = store.next_seq(conv.id)
        delivery = await store.message(conv.id, message, conv.bot_id)
    await broadcast(conv, message)
    if conv.bot_id is not None:
        reply = message_body(
            conv.bot_id, False, text.upper(), uuid_utils.uuid4().hex, message["id"]
        )
        if store is not None and delivery is not None:
            reply["seq"] = store.next_seq(conv.id)
            await store.answer(conv.id, reply, delivery)
        await broadcast(conv, reply)


def joined(participant_id: str) -> dict[str, Any]:
    """The `participant-joined` system message every new socket gets (PROTOCOL 4.4)."""
    return {
        "type": "S",
        "time": now(),
        "id": new_id(),
        "sent_by_human": False,
        "event": "participant-joined",
        "additional_metadata": {"participant_id": participant_id},
        "options": [],
    }


def message_body(sender: str, human: bool, text: str, local_id: Any, quoted: Any) -> dict[str, Any]:
    """A `T` message as the protocol represents it (section 5.1)."""
    return {
        "type": "T",
        "time": now(),
        "id": new_id(),
        "sent_by_human": human,
        "quoted_message_id": quoted,
        "sender_id": sender,
        "local_id": local_id,
        "text": text,
        "options": [],
    }


async def broadcast(conv: Conversation, message: dict[str, Any]) -> None:
    """Sends one message frame to every socket of the conversation."""
    frame = orjson.dumps({"message": message}).decode()
    for sock in tuple(conv.sockets):
        try:
            await sock.send_text(frame)
        except Exception:
            conv.sockets.discard(sock)


def main(argv: list[str] | None = None) -> None:
    """Command line: `python -m bench.echo_server [--host H] [--port P] [--no-rooms]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--no-rooms", action="store_true", help="join only re-enters")
    parser.add_argument(
        "--store", type=Path, help="store what Tertulia would, in this SQLite file (new)"
    )
    args = parser.parse_args(argv)
    store = None
    if args.store is not None:
        # Imported only here: the bare limit's memory stays that of the stack alone.
        from bench.stored import Store

        store = Store(args.store)
    uvicorn.run(
        create_app(rooms=not args.no_rooms, store=store),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
