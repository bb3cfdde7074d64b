"""The WebSocket endpoint ``/ws/chat/<conversation id>/`` (PROTOCOL 4).

One socket, one participant, authenticated by the ``sessionid`` cookie before the
handshake is accepted (refusals are HTTP 403). Then:

- Frames for the socket go through its own bounded queue, drained by one sender task, so
  frames leave in publication order and a slow reader never holds up anyone else: when its
  queue is full the socket is closed with 1013 (the client may reconnect and resume).
- ``?after=N`` (an extension) replays every visible message with ``seq > N`` first, then
  continues live with no gap and no duplicate: the socket subscribes before it reads the
  replay, holds live frames back meanwhile, and drops those the replay already carried.
- A bad frame is answered with ``{"error": {"code", "detail", "local_id"}}`` and the socket
  stays open; frames over the size cap close it with 1009 (uvicorn's ``ws_max_size``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from tertulia.chats import Chat
from tertulia.domain.ids import canonical_id, new_id
from tertulia.domain.model import Participant
from tertulia.domain.routing import socket_tags
from tertulia.errors import TertuliaError
from tertulia.outgoing import error_frame, message_frame, state_frame
from tertulia.realtime.broker import Event
from tertulia.web.deps import services

log = structlog.get_logger(__name__)
CLOSE_SLOW = 1013


def origin_allowed(websocket: WebSocket, allowed: list[str]) -> bool:
    """No ``Origin``, the server's own origin, or a configured one (PROTOCOL 4.1)."""
    origin = websocket.headers.get("origin")
    if origin is None or origin in allowed:
        return True
    host = websocket.headers.get("host", "")
    scheme = "https" if websocket.url.scheme == "wss" else "http"
    return origin.lower() in (f"{scheme}://{host}".lower(), f"http://{host}".lower())


class Outbox:
    """A socket's outgoing frames: a bounded queue, filtering by tags, and resume."""

    def __init__(self, websocket: WebSocket, tags: frozenset[str], size: int) -> None:
        self.websocket = websocket
        self.tags = tags
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(size)
        self.overflowed = False
        self._held: list[Event] | None = None
        self._replayed_upto = 0

    def deliver(self, event: Event) -> None:
        """Broker callback: never blocks."""
        if not (event.audience & self.tags):
            return
        if self._held is not None:
            self._held.append(event)
            return
        if event.seq is not None and event.seq <= self._replayed_upto:
            return
        self.put(event.frame)

    def put(self, frame: str) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed = True
            log.warning("socket too slow, closing it")
            self.queue = asyncio.Queue(1)
            self.queue.put_nowait(None)

    def hold(self) -> None:
        self._held = []

    def release(self, replay: list[tuple[int, str]]) -> None:
        """Send the replay, then the live frames held meanwhile that it did not cover."""
        held, self._held = self._held or [], None
        for seq, frame in replay:
            self._replayed_upto = max(self._replayed_upto, seq)
            self.put(frame)
        for event in held:
            self.deliver(event)

    async def pump(self) -> None:
        """Send queued frames in order until told to stop (None) or the socket breaks."""
        while True:
            frame = await self.queue.get()
            if frame is None:
                if self.overflowed:
                    await self.websocket.close(CLOSE_SLOW, "too slow")
                return
            await self.websocket.send_text(frame)


async def _authenticate(websocket: WebSocket, conversation_id: str) -> tuple[Chat, Participant] | None:
    svc = services(websocket)
    if not origin_allowed(websocket, svc.settings.allowed_origins):
        return None
    key = canonical_id(conversation_id)
    session = await svc.sessions.load(websocket)
    if key is None or session is None:
        return None
    participant_id = await svc.sessions.participant_id(session, key)
    chat = await Chat.get_chat(key) if participant_id else None
    participant = await chat.participant(participant_id) if chat and participant_id else None
    if chat is None or participant is None:
        return None
    return chat, participant


def _after(websocket: WebSocket) -> int | None:
    raw = websocket.query_params.get("after")
    return int(raw) if raw is not None and raw.isdigit() else None


async def chat_socket(websocket: WebSocket, conversation_id: str) -> None:
    """Serve one client socket of a conversation."""
    found = await _authenticate(websocket, conversation_id)
    if found is None:
        await websocket.close(code=4403)  # before accept: the client sees HTTP 403
        return
    chat, participant = found
    svc = services(websocket)
    bound = log.bind(conversation_id=chat.conversation.id, participant_id=participant.id)
    socket_id = new_id()
    after = _after(websocket)
    await websocket.accept()

    outbox = Outbox(websocket, socket_tags(participant), svc.settings.ws_send_queue)
    if after is not None:
        outbox.hold()
    unsubscribe = await svc.registry.broker.subscribe(chat.conversation.id, outbox.deliver)
    sender = asyncio.create_task(outbox.pump(), name=f"ws-send-{socket_id}")
    connected = False
    try:
        joined = await chat.connect(participant, socket_id)
        connected = True
        if not joined:
            outbox.put(state_frame(await chat.state()))
        if after is not None:
            outbox.release(await chat.replay(participant, after))
        elif participant.is_human and not joined:
            # The web client loads its history when its first message frame arrives.
            latest = await chat.latest_visible()
            if latest is not None:
                outbox.put(message_frame(chat.public(latest)))
        await _receive(websocket, chat, participant, outbox, sender, bound)
    except WebSocketDisconnect:
        pass
    finally:
        unsubscribe()
        outbox.queue = asyncio.Queue(1)
        outbox.queue.put_nowait(None)
        if not sender.done():
            sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        if connected:
            try:
                await chat.disconnect(participant, socket_id)
            except Exception:
                bound.exception("disconnect bookkeeping failed")
        if websocket.application_state == WebSocketState.CONNECTED and outbox.overflowed:
            await websocket.close(CLOSE_SLOW)


async def _receive(
    websocket: WebSocket,
    chat: Chat,
    participant: Participant,
    outbox: Outbox,
    sender: asyncio.Task[None],
    bound: Any,
) -> None:
    while True:
        receive = asyncio.ensure_future(websocket.receive())
        done, _ = await asyncio.wait({receive, sender}, return_when=asyncio.FIRST_COMPLETED)
        if receive not in done:  # the sender stopped: slow reader or broken socket
            receive.cancel()
            await asyncio.gather(receive, return_exceptions=True)
            return
        event = receive.result()
        if event["type"] == "websocket.disconnect":
            return
        text = event.get("text")
        if text is None:
            outbox.put(error_frame("binary", "Binary frames are not supported; send JSON text."))
            continue
        if not text:
            continue
        await _handle(text, chat, participant, outbox, bound)


async def _handle(text: str, chat: Chat, participant: Participant, outbox: Outbox, bound: Any) -> None:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        outbox.put(error_frame("not_json", "A frame must be a JSON object."))
        return
    if not isinstance(data, dict):
        outbox.put(error_frame("not_object", "A frame must be a JSON object."))
        return
    local_id = data.get("local_id") if isinstance(data.get("local_id"), str) else None
    try:
        await chat.submit(participant, data)
    except TertuliaError as exc:
        outbox.put(error_frame(exc.code, exc.body(), local_id))
    except Exception:
        bound.exception("storing a message failed")
        outbox.put(error_frame("internal", "The message could not be stored.", local_id))
