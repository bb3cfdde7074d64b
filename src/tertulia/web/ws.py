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
  the same way. A state frame read after those (the replay's first batch) comes before
  them, and one queued while the replay goes on comes before its next batch.
- A bot under a manager also gets the redirected copies recorded for it that it missed
  (``?copies_after=N``, N the ``copy_seq`` of the last it got, or the ``copy_seq`` of its
  socket's own state frame), first, with the same no-gap, no-duplicate rule.
- A replay streams: its next batch (``REPLAY_BATCH`` messages) is read once the last is
  written, so a resuming socket holds one batch, not the conversation; live frames held
  meanwhile count against the queue's size like queued ones (past it: 1013, as above).
- A participant holds at most ``ws_max_sockets_per_participant`` sockets (per process):
  one more is closed with 4429 at once (web/socketcap.py).
- A failure of the server's own while a socket is served closes that socket with 1011.
  The database or the broker out of reach is an outage, not a failure: a socket being
  opened (subscribed, counted present) or served then is closed with 1013 (``database
  unreachable: reconnect later``, ``broker unreachable: …``), and a frame it cannot store
  is answered with an ``unavailable`` error frame (the socket stays open).
- A conversation deleted while its sockets are open (``tertulia delete``) closes them with
  4404, as soon as the deletion is announced (by the CLI through a Redis broker) or found
  (a write of this process failing on it).
- A bot's socket open on a session that a retry of its trigger ended (one instance of
  the bot talks: chats.ChatRegistry.new_bot_session) closes with 4403 at once.
- A socket keeps its session while it is open, whether its client sends or not
  (web/sessions.SessionWatch: looked at on a timer, not per frame); one whose session has
  ended all the same is closed with 4403 at once.
- A bad frame is answered with ``{"error": {"code", "detail", "local_id"}}`` (``detail`` a
  text; field errors under ``errors``, a throttled message's wait under ``retry_after``)
  and the socket stays open; frames over the size cap close it with 1009 (uvicorn's
  ``ws_max_size``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from functools import cache, partial
from typing import Any, NamedTuple

import orjson
import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from tertulia.chats import Chat
from tertulia.domain.ids import canonical_id, new_id
from tertulia.domain.model import Participant
from tertulia.domain.routing import session_tag, socket_tags
from tertulia.errors import (
    Conflict,
    ConversationGone,
    ServiceUnavailable,
    TertuliaError,
    ValidationFailed,
)
from tertulia.metrics import WEBSOCKETS_OPEN, socket_closed
from tertulia.outgoing import (
    CLOSE_GONE,
    CLOSE_REASONS,
    CLOSE_SESSION_ENDED,
    error_frame,
    message_frame,
    refusal_frame,
    state_frame,
)
from tertulia.realtime.broker import Event
from tertulia.web.deps import check_message_rate, services
from tertulia.web.origins import Origins
from tertulia.web.params import whole_number
from tertulia.web.responses import JSONBody, refuse
from tertulia.web.sessions import SessionWatch, cookie_key
from tertulia.web.socketcap import CLOSE_TOO_MANY, CLOSE_TOO_MANY_REASON
from tertulia.web.wsprotocol import SERVER_STOPPING

log = structlog.get_logger(__name__)
CLOSE_SLOW = 1013
CLOSE_ERROR = 1011
CLOSE_MISSED = 1012  # "service restart": the broker lost events; reconnect to catch up
CLOSE_TIMEOUT = 5.0
# Messages a resuming socket reads, and holds, at a time: about 250 KB of 1,000-character
# messages (a 10,000-message replay took as long in batches of 200 as of 1,000).
REPLAY_BATCH = 200


@cache
def _origins(allowed: tuple[str, ...]) -> Origins:
    return Origins(allowed)  # (normalised once, not per handshake)


def origin_allowed(websocket: WebSocket, allowed: list[str]) -> bool:
    """No ``Origin``, the server's own origin, or a configured one (web/origins.py)."""
    return _origins(tuple(allowed)).allow(
        websocket.headers.get("origin"), websocket.headers.get("host", "")
    )


def unavailable(exc: ServiceUnavailable) -> str:
    """The close reason of a socket ended by an outage (``database unreachable: reconnect
    later``)."""
    return f"{exc.service} unreachable: reconnect later"


class _Latest:
    """A queued ``state`` frame that newer ones replace until the sender takes it, unless
    it is the socket's ``own`` (which carries ``working``, as broadcast ones do not)."""

    __slots__ = ("frame", "own", "taken")

    def __init__(self, frame: str, own: bool = False) -> None:
        self.frame = frame
        self.own = own
        self.taken = False


Batch = list[tuple[int, str]]
"""(seq, frame) of messages, in ``seq`` order."""

ReadBatch = Callable[[int], Awaitable[tuple[Batch, int | None]]]
"""Reads the replay's batch after a seq: its frames and where the next starts (None: done)."""


class _First:
    """A socket's first frames, one item of its queue: those read already (the latest
    message, or a replay's first batch) and, for a longer replay, how to read the rest."""

    __slots__ = ("following", "frames", "read")

    def __init__(self, frames: Batch, following: int | None, read: ReadBatch | None) -> None:
        self.frames = frames
        self.following = following
        self.read = read


class Outbox:
    """A socket's outgoing frames: a bounded queue, filtering by tags, and resume.

    Live frames are only queued; when the queue is full the socket is dropped (its sender
    stops and the endpoint closes it with 1013). Every way a socket is ended from here is
    one :attr:`closing` (code, reason), the first one set: too slow (1013), frames missed
    (1012), its replay unreadable (1011), its conversation deleted (4404).

    At most one unsent ``state`` frame waits: a newer one takes its place (a room filling
    up would otherwise queue a full participant list per newcomer).

    The socket's first frames (the latest message, or the replay of ``?after=N``) are one
    item of the queue (:meth:`put_first`); live message frames are held back from
    :meth:`hold` until the sender has written them, and those they carried are dropped. A
    replay is read a batch at a time, the next once the sender has written the last with
    the socket's own back-pressure, so a socket holds one batch however long the replay.
    Held frames are bounded as the queue is: more than its size and the socket is dropped
    as a slow reader (it may resume with ``?after=`` its last seq). ``state`` frames are
    never held; one queued while a replay goes on is written before its next batch, which
    may name someone only that frame lists (PROTOCOL 4.2).
    """

    def __init__(
        self, websocket: WebSocket, tags: frozenset[str], size: int, *, log: Any = log
    ) -> None:
        self.websocket = websocket
        self.tags = tags
        # A plain deque and one future to wake the sender when it waits: an asyncio.Queue
        # costs a second future hand-off per frame, and a room sends a frame per socket.
        self._items: deque[str | _Latest | _First] = deque()
        self._size = size
        self._waiting: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None  # the reader waits for room (room())
        self._state: _Latest | None = None
        self._listed = 0  # the most participants a state frame queued here listed
        self.closing: tuple[int, str] | None = None  # to be closed with (code, reason)
        self.sender: asyncio.Task[None] | None = None
        self._log = log
        self._held: list[Event] | None = None
        self._replayed_upto = 0
        self.copies_upto = 0  # the last redirected copy the first frames carry, or the bot had

    def start(self, name: str) -> asyncio.Task[None]:
        """Start the sender task (stopped at once if the socket was dropped or told it
        missed frames before: say, the broker's connection broke while it subscribed)."""
        self.sender = asyncio.create_task(self._pump(), name=name)
        if self.closing:
            self.sender.cancel()
        return self.sender

    @property
    def overflowed(self) -> bool:
        """Dropped as a slow reader."""
        return self.closing is not None and self.closing[0] == CLOSE_SLOW

    @property
    def missed_events(self) -> bool:
        """Closed as frames may have gone astray (the broker's connection broke)."""
        return self.closing is not None and self.closing[0] == CLOSE_MISSED

    def deliver(self, event: Event) -> None:
        """Broker callback: never blocks."""
        if not (event.audience & self.tags):
            return
        if event.close is not None:
            self.close(event.close, CLOSE_REASONS.get(event.close, ""))
        elif event.supersedes:
            if self._held is not None and self._state is None:
                # Opening, its own state not read yet: that one, read after this, is as
                # new and complete (with its copy_seq, its working bots); a broadcast one
                # ahead of it would be the socket's first state frame.
                return
            if event.participants is not None and event.participants < self._listed:
                return  # older than one queued already (Event.participants)
            self.put_state(event.frame, listed=event.participants)
        elif event.seq is not None and event.seq <= self._replayed_upto:
            return  # the first frames carried it
        elif event.copy is not None and event.copy <= self.copies_upto:
            return  # a redirected copy the first frames carried, or the bot had
        elif self._held is None:
            self.put(event.frame)
        elif len(self._held) < self._size:
            self._held.append(event)
        else:
            self._drop(held=len(self._held))

    def put_state(self, frame: str, *, own: bool = False, listed: int | None = None) -> None:
        """Queue a ``state`` frame, replacing one not sent yet (but for the socket's own,
        which a broadcast one follows instead); ``listed``: how many participants it lists."""
        if listed is not None:
            self._listed = max(self._listed, listed)
        latest = self._state
        if latest is not None and not latest.taken and not latest.own:
            latest.frame = frame
            return
        self._state = _Latest(frame, own)
        self.put(self._state)

    @property
    def pending(self) -> int:
        """Items queued that the sender has not taken yet."""
        return len(self._items)

    async def room(self) -> None:
        """Wait, before the socket's next frame is read, while its queue is over half full,
        until the sender has written it down to a quarter (or the socket is ending).

        A client that sends a burst faster than it reads the answers (each frame's echo or
        error) filled its own queue and was dropped as too slow though it read everything
        (chaos QA: 1,200 texts at once). Its frames now wait unread, in the socket's
        buffers and then TCP's, which slows it to the pace it reads at. A client that
        reads nothing at all is still dropped once others' frames fill the queue.
        """
        if len(self._items) <= self._size // 2 or self.closing:
            return
        self._room = asyncio.get_running_loop().create_future()
        await self._room

    def _wake_reader(self) -> None:
        room, self._room = self._room, None
        if room is not None and not room.done():
            room.set_result(None)

    def put(self, frame: str | _Latest | _First) -> None:
        """Queue a frame; a full queue drops the socket."""
        if self.closing:
            return
        if len(self._items) >= self._size:
            self._drop(queued=len(self._items))
            return
        self._items.append(frame)
        waiting = self._waiting
        if waiting is not None:
            self._waiting = None
            if not waiting.done():
                waiting.set_result(None)

    def _drop(self, **waiting: int) -> None:
        self._log.warning("socket too slow, dropping it", **waiting)
        self.close(CLOSE_SLOW, "too slow")

    def missed(self) -> None:
        """Broker callback: events may not have reached this socket (the broker's
        connection broke). The socket is closed for its client to reconnect, which sends
        what was missed (``?after=``, or the latest message for the web client)."""
        if self.closing:
            return
        self._log.warning("events may have been missed, closing the socket")
        self.close(CLOSE_MISSED, "events missed: reconnect")

    def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` at once (what is queued is not sent)."""
        if self.closing is None:
            self.closing = (code, reason)
            self._stop()

    def _stop(self) -> None:
        # The sender may be stuck writing to a peer that does not read: stop it now, which
        # ends the receive loop and runs the disconnect bookkeeping.
        if self.sender is not None:
            self.sender.cancel()

    def hold(self) -> None:
        """Keep live message frames back until the first frames are written."""
        self._held = []

    def put_first(
        self, frames: Batch, following: int | None = None, read: ReadBatch | None = None
    ) -> None:
        """Queue the socket's first frames: ``frames``, then, while ``following`` is not
        None, the batches ``read(following)`` returns; the held live frames come after."""
        self.put(_First(frames, following, read))

    async def _pump(self) -> None:
        """Send queued frames in order until cancelled, the socket breaks, or a replay
        cannot be read (:attr:`failed`)."""
        items = self._items
        loop = asyncio.get_running_loop()
        while True:
            if not items:
                self._waiting = loop.create_future()
                await self._waiting
                continue
            item = items.popleft()
            if self._room is not None and len(items) <= self._size // 4:
                self._wake_reader()
            if isinstance(item, str):
                await self.websocket.send_text(item)
            elif isinstance(item, _Latest):
                if not item.taken:  # else already written ahead of a replay's batch
                    item.taken = True
                    await self.websocket.send_text(item.frame)
            elif not await self._send_first(item):
                return

    async def _send_first(self, first: _First) -> bool:
        """Write the first frames, reading each further batch once the last is written,
        then queue the live frames held meanwhile that they did not carry. False when a
        batch could not be read (the socket would miss messages)."""
        batch, following, first.frames = first.frames, first.following, []
        while True:
            if batch:
                # Live frames this batch carries need not wait (nor count against the bound).
                upto = self._replayed_upto = batch[-1][0]
                if self._held:
                    self._held = [e for e in self._held if e.seq is None or e.seq > upto]
            for _, frame in batch:
                await self.websocket.send_text(frame)
            if following is None or first.read is None:
                break
            try:
                batch, following = await first.read(following)
            except Exception:
                self._log.exception("reading the replay failed")
                # (the sender ends here by itself; nothing to stop)
                self.closing = self.closing or (CLOSE_ERROR, "internal error")
                return False
            state = self._state
            if state is not None and not state.taken:
                # Queued meanwhile, it may list someone this batch names: it goes first.
                state.taken = True
                await self.websocket.send_text(state.frame)
        held, self._held = self._held or [], None
        for event in held:
            self.deliver(event)
        return True


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
    try:
        participant = await chat.participant(participant_id) if chat and participant_id else None
    except ConversationGone:  # (found out here: refused as any unknown conversation)
        return None
    if chat is None or participant is None:
        return None
    return chat, participant


def _renewed_cookie(websocket: WebSocket) -> list[tuple[bytes, bytes]]:
    """The session's cookie again when the handshake renewed the session, as a request's
    answer has it (web/sessions.py: CookieRenewal; browsers take ``Set-Cookie`` on a 101
    too): a tab that reconnects its socket, and sends no request, keeps its cookie as long
    as the server keeps its session."""
    session = getattr(websocket.state, "renewed_session", None)
    return [] if session is None else [services(websocket).sessions.cookie_header(session)]


def _after(websocket: WebSocket, name: str = "after") -> int | None:
    """``?after=`` (or ``?copies_after=``): None when absent.

    Raises:
        ValidationFailed: not a whole number from 0 (a client's mistake that, ignored,
            would skip the replay it asked for).
    """
    raw = websocket.query_params.get(name)
    if raw is None:
        return None
    number = whole_number(raw)
    if number is None:
        raise ValidationFailed(detail=f"Invalid {name}: {raw[:40]}")
    return number


async def _refuse(websocket: WebSocket, error: TertuliaError) -> None:
    """Refuse the handshake with ``error``'s status and JSON body."""
    response = JSONBody(error.body(), status_code=error.status, headers=error.headers())
    await refuse(websocket.scope, websocket.receive, websocket.send, response, close_code=1008)


class Copies(NamedTuple):
    """For a bot that takes redirected copies: the number of the last it has (its missed
    ones come first), and whether it said so (``?copies_after=``) or it is the newest as
    the socket opened."""

    after: int
    said: bool


async def chat_socket(websocket: WebSocket, conversation_id: str) -> None:
    """Serve one client socket of a conversation."""
    try:
        await _open(websocket, conversation_id)
    except ServiceUnavailable as exc:
        # Before the socket was accepted: accepted and closed with 1013, which clients
        # retry (a refusal now would be HTTP 403, which they take as final).
        services(websocket).outages.warning(
            log,
            f"{exc.service} unreachable; socket closed",
            conversation_id=conversation_id,
            error=exc.reason,
        )
        if websocket.application_state == WebSocketState.CONNECTING:
            await websocket.accept()
        await _close_early(websocket, CLOSE_SLOW, unavailable(exc))


async def _open(websocket: WebSocket, conversation_id: str) -> None:
    try:
        after, said = _after(websocket), _after(websocket, "copies_after")
    except ValidationFailed as exc:
        await _refuse(websocket, exc)
        return
    found = await _authenticate(websocket, conversation_id)
    if found is None:
        log.info("socket refused: no participant of this session", conversation_id=conversation_id)
        await websocket.close(code=4403)  # before accept: the client sees HTTP 403
        return
    chat, participant = found
    bound = log.bind(conversation_id=chat.conversation.id, participant_id=participant.id)
    sockets = services(websocket).sockets
    if not sockets.take(participant.id):
        # Over the cap: closed before it is subscribed or counted present (web/socketcap.py).
        bound.info("socket refused: too many open for its participant")
        await websocket.accept()
        await _close_early(websocket, CLOSE_TOO_MANY, CLOSE_TOO_MANY_REASON)
        return
    try:
        copies = None
        if chat.takes_copies(participant):
            # Without ?copies_after=, the copies from now on: the newest so far, read before
            # subscribing (one committed in between is then sent as missed, not lost).
            if said is not None:
                copies = Copies(said, said=True)
            else:
                copies = Copies(await chat.last_copy(participant), said=False)
        await websocket.accept(headers=_renewed_cookie(websocket))
        with WEBSOCKETS_OPEN.track_inprogress():
            await _serve(websocket, chat, participant, after, copies, bound)
    finally:
        sockets.release(participant.id)


async def _serve(
    websocket: WebSocket,
    chat: Chat,
    participant: Participant,
    after: int | None,
    copies: Copies | None,
    bound: Any,
) -> None:
    """The accepted socket's life: subscribe, connect, first frames, receive, clean up.
    A triggered bot that does not say where it resumes (BLAB's library) starts where its
    trigger or recall said (:mod:`tertulia.recall`)."""
    svc = services(websocket)
    socket_id = new_id()
    tags = socket_tags(participant)
    key = cookie_key(websocket) if participant.is_bot else None
    if key is not None:
        tags |= {session_tag(key)}  # (a retried trigger ends its session: ChatRegistry)
    outbox = Outbox(websocket, tags, svc.settings.ws_send_queue, log=bound)
    # Live frames wait until the socket's first ones are written (the replay of ?after=N,
    # or the latest message), and those the first ones already carry are dropped: seq
    # order, no duplicate, whatever is committed while they are read.
    outbox.hold()
    try:
        unsubscribe = await svc.registry.broker.subscribe(
            chat.conversation.id, outbox.deliver, outbox.missed, since=chat.stored_upto
        )
    except ServiceUnavailable as exc:
        # (Redis out of reach: an outage, 1013, and its client reconnects after its backoff)
        svc.outages.warning(bound, f"{exc.service} unreachable; socket closed", error=exc.reason)
        await _close_early(websocket, CLOSE_SLOW, unavailable(exc))
        return
    except Exception:
        bound.exception("subscribing the socket failed")
        await _close_early(websocket, CLOSE_ERROR, "internal error")
        return
    sender = outbox.start(f"ws-send-{socket_id}")
    connected = False
    opened = time.monotonic()
    code: int | None = None  # how it closed, when known (a client's code, or ours)
    session: SessionWatch | None = None
    try:
        if key is not None and await svc.sessions.load(websocket) is None:
            # Ended by a retried trigger as this socket opened: its order to close may have
            # gone before the subscription, but not before the session ended.
            _session_ended(outbox, bound)
            return
        joined = await chat.connect(participant, socket_id)
        connected = True
        if after is None:
            after = joined.after
        if copies is not None and not copies.said and joined.copies_after is not None:
            copies = Copies(min(copies.after, joined.copies_after), said=False)
        first: Batch = []
        following: int | None = None
        if after is not None:
            first, following = await chat.replay(participant, after, batch=REPLAY_BATCH)
        elif participant.is_human and not joined.announced:
            # The web client loads its history when its first message frame arrives.
            latest = await chat.latest_visible()
            if latest is not None and latest.seq is not None:
                first = [(latest.seq, message_frame(chat.public(latest)))]
        if participant.is_manager and after is not None:
            # What still waits for its approval, stored since, comes first (frames without
            # seq: the replay's numbering, which follows, is unaffected).
            first = await chat.awaiting_approval(participant, after) + first
        if copies is not None:
            # The redirected copies recorded for the bot since the last it has (frames
            # without seq, like those above), before the replay.
            missed, outbox.copies_upto = await chat.copies_after(participant, copies.after)
            first = missed + first
        working = svc.registry.working.shown(chat.conversation.id) if participant.is_human else []
        # The new socket's own state frame, always, before anything else: the one for
        # everyone that its arrival brings waits (Chat._flush), and live messages do not,
        # so without it a message from someone who joined since the participant's join
        # response would name a sender the client does not know (PROTOCOL 4.2). Read after
        # subscribing and after the first frames, so it lists everyone they and the live
        # frames behind it name; people also learn which bots are at work.
        state = await chat.state()
        if participant.is_human:
            state["working"] = working
        if copies is not None:
            # Where its copies stand: a client without a number yet resumes after this one.
            state["copy_seq"] = copies.after
        outbox.put_state(state_frame(state), own=True, listed=len(state["participants"]))
        outbox.put_first(first, following, partial(chat.replay, participant, batch=REPLAY_BATCH))
        session = svc.sessions.watch(
            websocket, bot=participant.is_bot, ended=partial(_session_ended, outbox, bound)
        )
        code = await _receive(websocket, chat, participant, outbox, sender, bound)
    except WebSocketDisconnect as exc:
        code = exc.code
    except ConversationGone:
        outbox.close(CLOSE_GONE, CLOSE_REASONS[CLOSE_GONE])
    except ServiceUnavailable as exc:
        # (an outage: the client reconnects after its backoff, and resumes)
        svc.outages.warning(bound, f"{exc.service} unreachable; socket closed", error=exc.reason)
        code = CLOSE_SLOW
        await _close(websocket, code, unavailable(exc))
    except Conflict as exc:
        # Its opening's write lost to another one (PostgreSQL ended it: a deadlock), and
        # nothing of it was stored: "try again later", which the client does, and resumes.
        bound.warning(
            "the socket's opening lost to another write; socket closed", reason=exc.reason
        )
        code = CLOSE_SLOW
        await _close(websocket, code, "try again")
    except Exception:
        # A failure of the server's own (a bug): this socket closes with 1011,
        # which tells its client to reconnect; no other socket is touched.
        bound.exception("socket failed")
        code = CLOSE_ERROR
        await _close(websocket, code, "internal error")
    finally:
        unsubscribe()
        if session is not None:
            await session.stop()
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        if connected:
            try:
                stopping = bool(websocket.scope.get(SERVER_STOPPING))
                await chat.disconnect(participant, socket_id, server_stopping=stopping)
            except ServiceUnavailable as exc:
                svc.outages.warning(
                    bound,
                    f"{exc.service} unreachable; the socket's leaving not stored",
                    error=exc.reason,
                )
            except Exception:
                bound.exception("disconnect bookkeeping failed")
        if outbox.closing is not None:
            code, reason = outbox.closing
            if code == CLOSE_GONE and not chat.gone:
                # Announced by another process or the CLI: forgotten here too.
                await svc.registry.forget(chat.conversation.id, announce=False)
            await _close(websocket, code, reason)
        # (uvicorn's "connection closed" never comes with its sans-I/O protocol, and has
        # no ids: this is the one line of a socket's end)
        bound.info("socket closed", code=code, seconds=round(time.monotonic() - opened, 1))
        socket_closed(code)


async def _close_early(websocket: WebSocket, code: int, reason: str) -> None:
    """Close an accepted socket that ends before it is served (counted here: the end of a
    served one is counted with its "socket closed" line)."""
    await _close(websocket, code, reason)
    socket_closed(code)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close the socket unless it is closed already. A peer that does not read may never
    take the close frame: the server gives up on it after ``CLOSE_TIMEOUT`` seconds, and
    web/wsprotocol.py aborts the connection if the peer still takes nothing."""
    if websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(code, reason), CLOSE_TIMEOUT)


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
) -> int | None:
    """Take the client's frames until it or the server closes; the client's close code."""
    watch = _SenderWatch(sender)
    while not watch.stopped:
        watch.waiting = True
        try:
            await outbox.room()  # (a burst's answers written down first, before reading on)
            event = await websocket.receive()
        except asyncio.CancelledError:
            if watch.stopped_waiting():
                return None
            raise
        finally:
            watch.waiting = False
        if event["type"] == "websocket.disconnect":
            return int(event.get("code", 1005))
        text = event.get("text")
        if text is None:
            outbox.put(error_frame("binary", "Binary frames are not supported; send JSON text."))
            continue
        if not text:
            continue
        await _handle(text, chat, participant, outbox, bound, websocket)
    return None  # (the sender stopped: the server closes)


def _session_ended(outbox: Outbox, bound: Any) -> None:
    """The socket's session has ended while it was open (purged, ended by hand, lapsed
    while the database was out of reach): closed at once, as a new handshake would be
    refused (web/sessions.SessionWatch)."""
    bound.info("socket closed: its session has ended")
    outbox.close(CLOSE_SESSION_ENDED, CLOSE_REASONS[CLOSE_SESSION_ENDED])


def _local_id_of(text: str) -> str | None:
    """The ``local_id`` of a frame that is not strict JSON but that Python's lenient parser
    reads (``NaN``, ``1e999``, a lone surrogate such as a browser writes for half an emoji),
    so that the client learns which of its messages was refused."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    local_id = data.get("local_id") if isinstance(data, dict) else None
    return local_id if isinstance(local_id, str) else None


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
    except orjson.JSONDecodeError as exc:
        outbox.put(error_frame("not_json", f"Not valid JSON: {exc}.", _local_id_of(text)))
        return
    if not isinstance(data, dict):
        outbox.put(error_frame("not_object", "A frame must be a JSON object."))
        return
    local_id = data.get("local_id") if isinstance(data.get("local_id"), str) else None
    try:
        await check_message_rate(websocket, participant)
        await chat.submit(participant, data)
    except ConversationGone:
        outbox.close(CLOSE_GONE, CLOSE_REASONS[CLOSE_GONE])
    except TertuliaError as exc:
        if isinstance(exc, ServiceUnavailable):
            services(websocket).outages.warning(
                bound, f"{exc.service} unreachable; message refused", error=exc.reason
            )
        elif isinstance(exc, Conflict):
            bound.warning("constraint refused a message", reason=exc.reason)
        outbox.put(refusal_frame(exc, local_id))
    except Exception:
        bound.exception("storing a message failed")
        outbox.put(error_frame("internal", "The message could not be stored.", local_id))
