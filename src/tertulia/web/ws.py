"""The WebSocket endpoint ``/ws/chat/<conversation id>/`` (PROTOCOL 4).

One socket, one participant, authenticated by the ``sessionid`` cookie before the
handshake is accepted (refusals are HTTP 403). Then:

- Frames for the socket go through its own bounded queue, drained by one sender task, so
  frames leave in publication order and a slow reader never holds up anyone else: when its
  queue is full the socket is closed with 1013 (the client may reconnect and resume).
- ``?after=N`` (an extension) replays every visible message with ``seq > N`` first, then
  continues live with no gap and no duplicate: the socket subscribes before it reads the
  replay, holds live frames back meanwhile, and drops those the replay already carried.
  Without it, a second socket of someone present gets the latest visible message first,
  the same way. A state frame read after those comes before them.
- A failure of the server's own while a socket is served closes that socket with 1011.
- A bad frame is answered with ``{"error": {"code", "detail", "local_id"}}`` and the socket
  stays open; frames over the size cap close it with 1009 (uvicorn's ``ws_max_size``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
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
from tertulia.web.deps import check_message_rate, services
from tertulia.web.params import whole_number

log = structlog.get_logger(__name__)
CLOSE_SLOW = 1013
CLOSE_ERROR = 1011
CLOSE_TIMEOUT = 5.0


def origin_allowed(websocket: WebSocket, allowed: list[str]) -> bool:
    """No ``Origin``, the server's own origin, or a configured one (PROTOCOL 4.1)."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    # Origins compare case-insensitively; configured ones may end in "/" (as REST's check).
    origin = origin.lower().rstrip("/")
    if origin in {o.lower().rstrip("/") for o in allowed}:
        return True
    host = websocket.headers.get("host", "").lower()
    return origin in (f"http://{host}", f"https://{host}")


class _Latest:
    """A queued ``state`` frame that newer ones replace until the sender takes it."""

    __slots__ = ("frame", "taken")

    def __init__(self, frame: str) -> None:
        self.frame = frame
        self.taken = False


class Outbox:
    """A socket's outgoing frames: a bounded queue, filtering by tags, and resume.

    The queue holds single frames and, once, the whole replay of ``?after=N`` as one item:
    the sender task writes a replay frame by frame with the socket's own back-pressure, so
    a long replay never overflows the queue. At most one unsent ``state`` frame waits: a
    newer one takes its place (a room filling up would otherwise queue a full participant
    list per newcomer). Live frames are only queued; when the queue is full the socket is
    dropped (its sender stops and the endpoint closes it with 1013).
    """

    def __init__(
        self, websocket: WebSocket, tags: frozenset[str], size: int, *, log: Any = log
    ) -> None:
        self.websocket = websocket
        self.tags = tags
        # A plain deque and one future to wake the sender when it waits: an asyncio.Queue
        # costs a second future hand-off per frame, and a room sends a frame per socket.
        self._items: deque[str | list[str] | _Latest] = deque()
        self._size = size
        self._waiting: asyncio.Future[None] | None = None
        self._state: _Latest | None = None
        self.overflowed = False
        self.sender: asyncio.Task[None] | None = None
        self._log = log
        self._held: list[Event] | None = None
        self._replayed_upto = 0

    def start(self, name: str) -> asyncio.Task[None]:
        """Start the sender task."""
        self.sender = asyncio.create_task(self._pump(), name=name)
        return self.sender

    def deliver(self, event: Event) -> None:
        """Broker callback: never blocks."""
        if not (event.audience & self.tags):
            return
        if self._held is not None:
            self._held.append(event)
            return
        if event.seq is not None and event.seq <= self._replayed_upto:
            return
        if event.supersedes:
            self.put_state(event.frame)
        else:
            self.put(event.frame)

    def put_state(self, frame: str) -> None:
        """Queue a ``state`` frame, replacing one not sent yet."""
        if self._state is not None and not self._state.taken:
            self._state.frame = frame
            return
        self._state = _Latest(frame)
        self.put(self._state)

    @property
    def pending(self) -> int:
        """Items queued that the sender has not taken yet."""
        return len(self._items)

    def put(self, frame: str | list[str] | _Latest) -> None:
        """Queue a frame (or a replay); a full queue drops the socket."""
        if self.overflowed:
            return
        if len(self._items) >= self._size:
            self.overflowed = True
            self._log.warning("socket too slow, dropping it", queued=len(self._items))
            # The sender may be stuck writing to a peer that does not read: stop it now,
            # which ends the receive loop and runs the disconnect bookkeeping.
            if self.sender is not None:
                self.sender.cancel()
            return
        self._items.append(frame)
        waiting = self._waiting
        if waiting is not None:
            self._waiting = None
            if not waiting.done():
                waiting.set_result(None)

    def hold(self) -> None:
        """Keep live frames back until :meth:`release`."""
        self._held = []

    def release(self, replay: list[tuple[int, str]]) -> None:
        """Send the replay, then the live frames held meanwhile that it did not cover."""
        held, self._held = self._held or [], None
        if replay:
            self._replayed_upto = max(seq for seq, _ in replay)
            self.put([frame for _, frame in replay])
        for event in held:
            self.deliver(event)

    async def _pump(self) -> None:
        """Send queued frames in order until cancelled or the socket breaks."""
        items = self._items
        loop = asyncio.get_running_loop()
        while True:
            if not items:
                self._waiting = loop.create_future()
                await self._waiting
                continue
            item = items.popleft()
            if isinstance(item, _Latest):
                item.taken = True
                await self.websocket.send_text(item.frame)
                continue
            for frame in [item] if isinstance(item, str) else item:
                await self.websocket.send_text(frame)


async def _authenticate(
    websocket: WebSocket, conversation_id: str
) -> tuple[Chat, Participant] | None:
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
    return whole_number(raw) if raw is not None else None


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

    outbox = Outbox(websocket, socket_tags(participant), svc.settings.ws_send_queue, log=bound)
    # Live frames wait until the socket's first ones are queued (the replay of ?after=N, or
    # the latest message), and those the first ones already carry are dropped: seq order,
    # no duplicate, whatever is committed while they are read.
    outbox.hold()
    unsubscribe = await svc.registry.broker.subscribe(chat.conversation.id, outbox.deliver)
    sender = outbox.start(f"ws-send-{socket_id}")
    connected = False
    try:
        joined = await chat.connect(participant, socket_id)
        connected = True
        first: list[tuple[int, str]] = []
        if after is not None:
            first = await chat.replay(participant, after)
        elif participant.is_human and not joined:
            # The web client loads its history when its first message frame arrives.
            latest = await chat.latest_visible()
            if latest is not None and latest.seq is not None:
                first = [(latest.seq, message_frame(chat.public(latest)))]
        working = svc.registry.working.shown(chat.conversation.id) if participant.is_human else []
        if after is not None or not joined or working or not chat.presence_state_is_prompt():
            # The new socket's own state frame, unless the one for everyone that its arrival
            # brings comes promptly (it waits longer in a big room, see Chat._flush); people
            # also learn which bots are at work. Read after the first frames, and queued
            # before them: it lists everyone they name (PROTOCOL 4.2).
            state = await chat.state()
            if participant.is_human:
                state["working"] = working
            outbox.put_state(state_frame(state))
        outbox.release(first)
        await _receive(websocket, chat, participant, outbox, sender, bound)
    except WebSocketDisconnect:
        pass
    except Exception:
        # A failure of the server's own (the database, say): this socket closes with 1011,
        # which tells its client to reconnect; no other socket is touched.
        bound.exception("socket failed")
        if websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    websocket.close(CLOSE_ERROR, "internal error"), CLOSE_TIMEOUT
                )
    finally:
        unsubscribe()
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        if connected:
            try:
                await chat.disconnect(participant, socket_id)
            except Exception:
                bound.exception("disconnect bookkeeping failed")
        if websocket.application_state == WebSocketState.CONNECTED and outbox.overflowed:
            # A peer that does not read may never take the close frame either; after the
            # timeout the server drops the connection without it.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(CLOSE_SLOW, "too slow"), CLOSE_TIMEOUT)


class _SenderWatch:
    """Wakes the receive loop when the socket's sender stops (slow reader, broken socket).

    The loop awaits the next frame directly, with no task or ``asyncio.wait`` per frame;
    when the sender stops while the loop waits for a frame, that wait is cancelled, and
    :meth:`stopped_waiting` tells this cancellation apart from any other (which goes on).
    A sender that stops while a frame is being handled lets the frame finish first.
    """

    __slots__ = ("_task", "stopped", "waiting")

    def __init__(self, sender: asyncio.Task[None]) -> None:
        self._task = asyncio.current_task()
        self.stopped = False
        self.waiting = False
        sender.add_done_callback(self._sender_done)

    def _sender_done(self, _: asyncio.Task[None]) -> None:
        self.stopped = True
        if self.waiting and self._task is not None:
            self._task.cancel()

    def stopped_waiting(self) -> bool:
        """In ``except CancelledError``: True when the cancellation was this watch's own."""
        return self.stopped and self._task is not None and self._task.uncancel() == 0


async def _receive(
    websocket: WebSocket,
    chat: Chat,
    participant: Participant,
    outbox: Outbox,
    sender: asyncio.Task[None],
    bound: Any,
) -> None:
    watch = _SenderWatch(sender)
    while not watch.stopped:
        watch.waiting = True
        try:
            event = await websocket.receive()
        except asyncio.CancelledError:
            if watch.stopped_waiting():
                return
            raise
        finally:
            watch.waiting = False
        if event["type"] == "websocket.disconnect":
            return
        text = event.get("text")
        if text is None:
            outbox.put(error_frame("binary", "Binary frames are not supported; send JSON text."))
            continue
        if not text:
            continue
        await _handle(text, chat, participant, outbox, bound, websocket)


async def _handle(
    text: str,
    chat: Chat,
    participant: Participant,
    outbox: Outbox,
    bound: Any,
    websocket: WebSocket,
) -> None:
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
        await check_message_rate(websocket, participant.id)
        await chat.submit(participant, data)
    except TertuliaError as exc:
        outbox.put(error_frame(exc.code, exc.body(), local_id))
    except Exception:
        bound.exception("storing a message failed")
        outbox.put(error_frame("internal", "The message could not be stored.", local_id))
