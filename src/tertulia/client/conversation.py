"""One conversation an external bot was triggered into: its socket, kept open, and its sends.

Delivery semantics (what a bot author can rely on):

- Receiving: frames are read as they come; messages go to the bot's ``on_message`` one at
  a time, in order, from a queue of their own, so a slow handler never stops the reading
  (nor the recognition of the bot's own echoes). A plain (not ``async``) callback runs in
  a worker thread (see :class:`tertulia.client.BotApp`), so one that blocks holds up only
  its own conversation.
- Resume: every visible message carries ``seq``. After a drop the client reconnects with
  ``?after=<last seq seen>``, so the server replays what was missed, then goes on live;
  a message is never handed over twice. The first connection starts where the trigger
  says (``after``): after the creation's last message, or, called back, before the
  message that called the bot back, which then comes first; what people wrote while the
  trigger was on its way is handed over, and a drop before any message arrived loses
  nothing either. Messages from before that are not (as with BLAB's library). A trigger
  without ``after`` (BLAB's, or an older Tertulia's first one) makes the client read the
  newest ``seq`` of the conversation over REST (with the bot's session) just before its
  first connection and start there; a server without ``seq`` (BLAB) gets a plain first
  connection. Under a
  manager, redirected copies carry ``copy_seq``, a stream of their own: the client
  resumes them with ``?copies_after=`` (from the trigger, the socket's own ``state``, or
  the last one seen), and hands over none twice.
- Reconnecting: exponential backoff with jitter between ``backoff[0]`` and ``backoff[1]``
  seconds, reset by every successful connection. A refused handshake (HTTP 401, 403, 404
  or 410: the session lapsed, or the bot was required and left, ending the conversation
  and its own session) is final: the conversation closes, as it does when the server
  closes the socket with 4404 (the conversation was deleted). A throttled handshake (429)
  waits at least its ``Retry-After`` (at most ``backoff[1]``, jittered) and goes again;
  network errors, 5xx, other statuses and other closes by the server are retried too.
- Sending: :meth:`Conversation.send` gives each message a fresh ``local_id`` and keeps it
  pending until it is known to be stored; pending messages are sent again after every
  reconnect (the server stores a repeated ``local_id`` once, and repeats the stored
  message to the sender: that repeat settles it, whatever its ``seq``). A message the
  server refuses (an ``error`` frame naming its ``local_id``) is dropped and logged:
  sending it again would be refused again. But one refused as too fast, or because the
  server's database is out of reach (``unavailable``), when the server says to try again
  within ``THROTTLED_WAIT_MAX`` seconds (``retry_after``), waits that long and goes again:
  a burst is slowed down, and a short outage delayed, not lost.
- Settling: the server handles a socket's frames one at a time, in order, answering each
  (an echo, an ``error``) before reading the next, if it answers at all. So an answer to
  a message first sent on the current socket settles it and every message sent on that
  socket before it that no ``error`` named. Under a manager a bot's messages are not
  echoed to it (PROTOCOL 7.1), nor are they once approved: a message still unsettled
  ``PROBE_AFTER`` seconds after it went is sent again (the newest such; against a server
  that numbers its messages, i.e. not BLAB's, which closes the socket on a repeat), and
  the server's repeat settles it and all before it. So pending messages stay few, and a
  reconnect re-sends only the last second's; the probes cost one frame a second at most,
  counted by the server's ``message`` rate limit. ``own_messages`` hands over no such
  repeat: under a manager a bot never gets its own messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidStatus,
    InvalidURI,
)

from tertulia.bots.base import ChatMessage

if TYPE_CHECKING:
    from tertulia.client.app import BotApp

log = logging.getLogger("tertulia.client")
MAX_PENDING = 1000
CLOSE_GONE = 4404  # the server closes a deleted conversation's sockets with this
THROTTLED_WAIT_MAX = 10.0  # seconds a throttled message may wait to go again
RETRIED = ("throttled", "unavailable")  # refusals for now: sent again after their retry_after
INBOX = 1000  # frames queued for the handlers; past it the socket is not read (back-pressure)
GREETING_WAIT = 2.0  # seconds the greeting waits for the socket's first frame (its state)
STABLE_SOCKET = 10.0  # seconds a socket stays open for the reconnection backoff to start over
PROBE_AFTER = 1.0  # seconds a sent message waits for its echo before the server is asked again
# Handshake statuses that say the bot has no business here (its session lapsed or ended,
# the conversation is unknown): final. Any other (429 throttled, 5xx, a proxy's 4xx)
# is retried with backoff.
REFUSED = frozenset({401, 403, 404, 410})

Task = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class _Outgoing:
    """A message sent and not known to be stored yet, and where and when it went.

    Sends are numbered across the conversation (``Conversation._sends``) and sockets too
    (``Conversation._sockets``).
    """

    frame: dict[str, Any]
    origin: int | None = None  # the socket it was first sent on (None: not sent yet)
    socket: int | None = None  # the socket it was last sent on
    first: int = 0  # its first send on that socket
    last: int | None = None  # its last send there; None while a throttled one waits
    at: float = 0.0  # when it was last sent (the event loop's clock)
    sends: int = 0  # how many times it was sent


class Conversation:
    """A conversation the bot is in, from its trigger until it is closed.

    Made by :class:`tertulia.client.BotApp` when a trigger arrives; bot code gets it in its
    callbacks.

    Attributes:
        conversation_id: the conversation's id.
        bot_participant_id: the bot's participant id in it (its messages' ``sender_id``).
        session: the session key the bot connects with (the trigger's ``session``).
        state: the latest ``state`` frame's content, merged (``participants``...).
        last_seq: the ``seq`` of the newest visible message seen, if any.
        last_copy: the ``copy_seq`` of the newest redirected copy seen (under a manager),
            or where the server said the bot's copies stood when it connected.
    """

    def __init__(
        self,
        app: BotApp,
        conversation_id: str,
        bot_participant_id: str,
        session: str,
    ) -> None:
        self.app = app
        self.conversation_id = conversation_id
        self.bot_participant_id = bot_participant_id
        self.session = session
        self.state: dict[str, Any] = {}
        self.last_seq: int | None = None
        self.last_copy: int | None = None
        self._pending: dict[str, _Outgoing] = {}
        self._sockets = 0  # sockets opened so far (the current one's number)
        self._sends = 0  # frames sent so far, on every socket
        self._unsettled = asyncio.Event()  # set by each send; the prober clears it
        self._socket: ClientConnection | None = None
        self._inbox: asyncio.Queue[Task] = asyncio.Queue(maxsize=INBOX)
        self._closing = asyncio.Event()
        self._closed = asyncio.Event()
        self._connected = asyncio.Event()
        self._woken = asyncio.Event()  # a trigger came: the pause between tries ends
        self._greeted = False
        self._started = False  # resume point settled (read over REST, or a socket opened)
        self._tasks: list[asyncio.Task[None]] = []
        self._closer: asyncio.Task[None] | None = None
        self._resends: set[asyncio.Task[None]] = set()  # throttled messages waiting
        self._loop: asyncio.AbstractEventLoop | None = None  # set by start()
        self._loop_thread: int | None = None

    # -- what bots use -----------------------------------------------------------------

    @property
    def participants(self) -> list[dict[str, str]]:
        """The conversation's participants, ``[{"id", "name", "type"}]``, from ``state``."""
        found: list[dict[str, str]] = self.state.get("participants", [])
        return found

    @property
    def connected(self) -> bool:
        """Whether a socket is open right now."""
        return self._connected.is_set()

    @property
    def closed(self) -> bool:
        """Whether the conversation is over for this bot (closed, or refused for good)."""
        return self._closed.is_set()

    @property
    def active(self) -> bool:
        """Whether the bot is still in the conversation (not closed nor closing)."""
        return not self._closing.is_set()

    @property
    def pending(self) -> list[str]:
        """``local_id``s of sent messages not known to be stored yet, oldest first."""
        return list(self._pending)

    async def send(
        self,
        text: str | None = None,
        *,
        type: str = "T",
        quote: ChatMessage | str | None = None,
        options: list[str] | None = None,
        external_file_url: str | None = None,
        command: str | None = None,
        local_id: str | None = None,
    ) -> str:
        """Send a message as the bot; returns its ``local_id``.

        Returns at once: the message is on its way, or pending until the socket is back.

        Args:
            text: the text (a caption for files).
            type: a type code of PROTOCOL 5.2 (not ``S``).
            quote: the message answered (or its id), shown above the answer.
            options: choices offered to people.
            external_file_url: a file's URL, for the types ``V a v i A``.
            command: a manager command, as a JSON string (PROTOCOL 7.2).
            local_id: your own id for it (default: a fresh 32-hex id).

        Raises:
            RuntimeError: the conversation is closed.
        """
        if self.closed or self._closing.is_set():
            raise RuntimeError("the conversation is closed")
        local_id = local_id or uuid.uuid4().hex
        frame: dict[str, Any] = {"local_id": local_id, "type": type, "text": text}
        if quote is not None:
            frame["quoted_message_id"] = quote.id if isinstance(quote, ChatMessage) else quote
        if options:
            frame["options"] = list(options)
        if external_file_url is not None:
            frame["external_file_url"] = external_file_url
        if command is not None:
            frame["command"] = command
        if len(self._pending) >= MAX_PENDING:
            dropped = next(iter(self._pending))
            del self._pending[dropped]
            log.warning(
                "too many unacknowledged messages in conversation %s; forgot %s",
                self.conversation_id,
                dropped,
            )
        entry = self._pending[local_id] = _Outgoing(frame)
        socket = self._socket
        if socket is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._transmit(socket, entry)
        return local_id

    def send_from_thread(
        self,
        text: str | None = None,
        *,
        type: str = "T",
        quote: ChatMessage | str | None = None,
        options: list[str] | None = None,
        external_file_url: str | None = None,
        command: str | None = None,
        local_id: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """:meth:`send` from a plain callback (or any thread but the event loop's).

        Blocks until the event loop has taken the message (it is then on its way, or
        pending until the socket is back), and returns its ``local_id``. The arguments are
        :meth:`send`'s.

        Args:
            timeout: seconds to wait for the event loop (None: no limit).

        Raises:
            RuntimeError: the conversation is closed or not started, or this is the event
                loop's own thread (there, ``await conversation.send(...)``).
            TimeoutError: the event loop did not take it within ``timeout``.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError("the conversation has not started")
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("on the event loop's thread: await conversation.send() instead")
        sending = self.send(
            text,
            type=type,
            quote=quote,
            options=options,
            external_file_url=external_file_url,
            command=command,
            local_id=local_id,
        )
        return asyncio.run_coroutine_threadsafe(sending, loop).result(timeout)

    async def close(self) -> None:
        """Leave: close the socket (the server records *participant-left*) and stop."""
        self._closing.set()
        socket = self._socket
        if socket is not None:
            with contextlib.suppress(Exception):
                await socket.close()
        for task in [*self._tasks, *self._resends]:
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.gather(
            *(t for t in self._tasks if t is not asyncio.current_task()), return_exceptions=True
        )
        self._closed.set()

    async def wait_closed(self) -> None:
        """Wait until the conversation is over for this bot."""
        await self._closed.wait()

    async def wait_connected(self) -> None:
        """Wait until a socket is open."""
        await self._connected.wait()

    # -- machinery ---------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting and handling (called by the app)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._tasks = [
            asyncio.create_task(self._run(), name=f"bot-socket-{self.conversation_id}"),
            asyncio.create_task(self._handle(), name=f"bot-handler-{self.conversation_id}"),
        ]

    def _url(self) -> str:
        url = f"{self.app.ws_url}/ws/chat/{self.conversation_id}/"
        query = {"after": self.last_seq, "copies_after": self.last_copy}
        given = [f"{key}={value}" for key, value in query.items() if value is not None]
        return f"{url}?{'&'.join(given)}" if given else url

    async def _find_start(self) -> None:
        """Before the first connection: the newest ``seq`` so far, read over REST, becomes
        ``last_seq`` (what comes later is then replayed after any drop). Best effort: a
        server without ``seq``, or one that cannot be asked, leaves ``last_seq`` unset."""
        base = "http" + self.app.ws_url[len("ws") :]
        url = f"{base}/api/chat/conversations/{self.conversation_id}/messages/"
        try:
            async with httpx.AsyncClient(timeout=self.app.open_timeout, trust_env=False) as http:
                response = await http.get(
                    url,
                    params={"limit": "1"},
                    headers={"Cookie": f"sessionid={self.session}"},
                )
            if response.status_code != 200:
                return
            results = response.json().get("results")
        except (httpx.HTTPError, ValueError, AttributeError):
            return
        if not isinstance(results, list):
            return
        if not results:
            self._started = True
            if self.last_seq is None:
                self.last_seq = 0
            return
        seq = results[-1].get("seq") if isinstance(results[-1], dict) else None
        self._started = True
        if isinstance(seq, int) and self.last_seq is None:
            self.last_seq = seq

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        try:
            while not self._closing.is_set():
                if not self._started and self.last_seq is None:
                    await self._find_start()
                opened: float | None = None
                wait = 0.0  # at least this long before the next try (a 429's Retry-After)
                try:
                    async with connect(
                        self._url(),
                        additional_headers={"Cookie": f"sessionid={self.session}"},
                        open_timeout=self.app.open_timeout,
                        proxy=None,
                    ) as socket:
                        opened = loop.time()
                        try:
                            await self._serve(socket)
                        except ConnectionClosed:
                            if socket.close_code != CLOSE_GONE:
                                raise  # (a drop: retried below)
                    if socket.close_code == CLOSE_GONE:
                        log.warning("conversation %s was deleted; leaving", self.conversation_id)
                        return
                except InvalidStatus as exc:
                    status = exc.response.status_code
                    if status in REFUSED:
                        log.warning(
                            "server refused the socket of conversation %s (HTTP %s); leaving",
                            self.conversation_id,
                            status,
                        )
                        return
                    wait = _retry_after_header(exc.response.headers.get("Retry-After"))
                    log.info(
                        "socket handshake of conversation %s failed (HTTP %s); retrying",
                        self.conversation_id,
                        status,
                    )
                except InvalidURI:
                    log.error("bad server URL %r; leaving", self.app.ws_url)
                    return
                except Exception as exc:  # network errors, timeouts, drops: retried
                    log.info("socket of conversation %s dropped: %r", self.conversation_id, exc)
                if self._closing.is_set():
                    return
                if opened is not None and loop.time() - opened >= STABLE_SOCKET:
                    # It served a while: this close is news, not a pattern (a server that
                    # takes the socket and closes it at once is waited for ever longer).
                    failures = 0
                initial, ceiling = self.app.backoff
                delay = min(ceiling, initial * 2**failures) * random.uniform(0.5, 1.0)
                # A throttled handshake: not before the server says, but spread out (a host
                # of many conversations is told the same), and never past the ceiling.
                delay = max(delay, min(ceiling, wait * random.uniform(1.0, 1.2)))
                failures = min(failures + 1, 30)
                with contextlib.suppress(TimeoutError):
                    # (at once when a trigger came meanwhile, or while it tried)
                    await asyncio.wait_for(self._pause_ends(), delay)
                if self._woken.is_set():
                    self._woken.clear()
                    failures = 0
        finally:
            self._connected.clear()
            if not self._closing.is_set():
                self._closing.set()
                self._closer = asyncio.get_running_loop().create_task(self.close())
            self.app._forget(self)

    def wake(self) -> None:
        """The server triggered the bot again (it is up, and calls it back): a pause
        between reconnection tries ends at once, and the backoff starts over."""
        self._woken.set()

    async def _pause_ends(self) -> None:
        """Returns when the conversation is closing or a trigger wakes it."""
        closing = asyncio.ensure_future(self._closing.wait())
        woken = asyncio.ensure_future(self._woken.wait())
        try:
            await asyncio.wait({closing, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            woken.cancel()

    async def _serve(self, socket: ClientConnection) -> None:
        """One connection: re-send what is pending, then read until it closes."""
        self._socket = socket
        self._sockets += 1
        self._started = True
        self._woken.clear()  # (connected: a trigger before this is answered)
        self._connected.set()
        prober = asyncio.get_running_loop().create_task(
            self._probe(socket, self._sockets), name=f"bot-prober-{self.conversation_id}"
        )
        try:
            for entry in list(self._pending.values()):
                await self._transmit(socket, entry)
            if not self._greeted:
                # The greeting waits for the socket's first frame, at most GREETING_WAIT
                # seconds: Tertulia's is the ``state`` that lists the participants, known
                # to the greeting then. It still runs before any other handler.
                try:
                    first: str | bytes | None = await asyncio.wait_for(socket.recv(), GREETING_WAIT)
                except TimeoutError:
                    first = None
                except ConnectionClosedOK:
                    return  # (closed before its first frame: opened again, as after any close)
                state = _state_of(first)
                if state is not None:
                    self.state.update(state)
                if self.app.connect_handler is not None:
                    handler = self.app.connect_handler
                    await self._inbox.put(lambda: _call(self.app, handler, self))
                self._greeted = True
                if first is not None:
                    await self._frame(first)
            async for raw in socket:
                # A full inbox (a slow handler) stops the reading here: the socket's
                # back-pressure reaches the server, which may drop it; the client then
                # resumes from the last seq it queued, so memory stays bounded and nothing
                # is lost.
                await self._frame(raw)
        finally:
            prober.cancel()
            self._socket = None
            self._connected.clear()

    async def _frame(self, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            log.warning(
                "ignoring a frame that is not JSON in conversation %s", self.conversation_id
            )
            return
        if not isinstance(frame, dict):
            return
        state = frame.get("state")
        if isinstance(state, dict):
            self.state.update(state)
            where = state.get("copy_seq")
            if self.last_copy is None and is_position(where):
                self.last_copy = where  # (the socket's own state: its copies from there)
            handler = self.app.state_handler
            if handler is not None:
                snapshot = dict(state)
                await self._inbox.put(lambda: _call(self.app, handler, self, snapshot))
        message = frame.get("message")
        if isinstance(message, dict):
            await self._message(message)
        error = frame.get("error")
        if isinstance(error, dict):
            self._refused(error)

    def _refused(self, error: dict[str, Any]) -> None:
        """An ``error`` frame: the message it names is dropped, or sent again later if it
        was refused as too fast."""
        local_id = error.get("local_id")
        entry = self._pending.get(local_id) if isinstance(local_id, str) else None
        if entry is None or not isinstance(local_id, str):
            log.warning(
                "server refused a message in conversation %s (local_id %s): %s",
                self.conversation_id,
                local_id,
                error,
            )
            return
        self._answered(entry)
        wait = _retry_after(error)
        if wait is not None and wait <= THROTTLED_WAIT_MAX:
            entry.last = None  # (not stored: no later answer may settle it meanwhile)
            log.info(
                "message %s in conversation %s refused for now (%s); sent again in %s s",
                local_id,
                self.conversation_id,
                error.get("code"),
                wait,
            )
            resend = asyncio.get_running_loop().create_task(self._resend(local_id, wait))
            self._resends.add(resend)
            resend.add_done_callback(self._resends.discard)
            return
        del self._pending[local_id]
        log.warning(
            "server refused a message in conversation %s (local_id %s): %s",
            self.conversation_id,
            local_id,
            error,
        )

    async def _resend(self, local_id: str, wait: float) -> None:
        """Send a throttled message again after ``wait`` seconds, if it is still pending
        (else a reconnect has sent it meanwhile, and the echo came)."""
        await asyncio.sleep(wait)
        entry = self._pending.get(local_id)
        socket = self._socket
        if entry is not None and socket is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._transmit(socket, entry)

    async def _transmit(self, socket: ClientConnection, entry: _Outgoing) -> None:
        """Send a pending message on the current socket, noting its place among the sends.

        The number is taken just before the frame is written, with no wait in between:
        frames leave a socket in the order of the calls (this client never fragments).
        """
        self._sends += 1
        if entry.socket != self._sockets:
            entry.socket = self._sockets
            entry.first = self._sends
        if entry.origin is None:
            entry.origin = self._sockets
        entry.last = self._sends
        entry.at = asyncio.get_running_loop().time()
        entry.sends += 1
        self._unsettled.set()
        await socket.send(json.dumps(entry.frame))

    def _answered(self, entry: _Outgoing) -> None:
        """The server answered ``entry`` on the current socket (its echo, or an error naming
        it). A socket's frames are handled one by one, in order, each answered (if at all)
        before the next is read; so every frame sent on this socket before ``entry`` was
        handled already, and the messages whose last send came before it, and that no error
        frame has named since (which would have come first), are stored: settled.

        Only an answer to a message first sent on this socket counts so: one sent on an
        earlier socket too may be answered here by that socket's handling, finishing late.
        """
        here = self._sockets
        if entry.origin != here or entry.socket != here:
            return
        for local_id, other in list(self._pending.items()):
            if other.socket == here and other.last is not None and other.last < entry.first:
                del self._pending[local_id]

    async def _probe(self, socket: ClientConnection, number: int) -> None:
        """While the socket ``number`` is open: ask the server about messages sent on it
        that are not settled ``PROBE_AFTER`` seconds later (under a manager none is echoed
        to the bot, PROTOCOL 7.1), by sending one of them again. The server stores nothing
        and repeats the stored message to the bot, whose answer settles it and, by
        :meth:`_answered`, all sent before it: one frame a second at most, however many
        answers. The newest message first sent on this socket is the one asked about, and
        each sent on an earlier socket too (only a drop leaves such, and they settle only
        by their own answer). Not against a server that does not number its messages
        (BLAB's closes the socket on a repeated ``local_id``)."""
        loop = asyncio.get_running_loop()
        while True:
            await self._unsettled.wait()
            await asyncio.sleep(PROBE_AFTER)
            if self.last_seq is None:
                self._unsettled.clear()
                continue
            waiting = [
                entry
                for entry in self._pending.values()
                if entry.socket == number and entry.last is not None
            ]
            if not waiting:
                self._unsettled.clear()
                continue
            due = [entry for entry in waiting if entry.at <= loop.time() - PROBE_AFTER]
            asked = [entry for entry in due if entry.origin != number]
            fresh = [entry for entry in due if entry.origin == number]
            if fresh:
                asked.append(max(fresh, key=lambda entry: entry.last or 0))
            for entry in asked:
                if entry.frame["local_id"] in self._pending and entry.last is not None:
                    with contextlib.suppress(ConnectionClosed):  # (then re-sent on the next)
                        await self._transmit(socket, entry)

    async def _message(self, data: dict[str, Any]) -> None:
        number = data.get("copy_seq")
        if is_position(number):
            # A redirected copy (under a manager): numbered in a stream of its own.
            if self.last_copy is not None and number <= self.last_copy:
                return  # already seen
            self.last_copy = number
        own = data.get("sender_id") == self.bot_participant_id
        repeat = False
        if own:
            # Before the seq check: the server's repeat of a message sent again carries the
            # seq it took when it became visible, older than what came since (under a
            # manager: approved meanwhile); it settles the message all the same.
            local_id = data.get("local_id")
            entry = self._pending.get(local_id) if isinstance(local_id, str) else None
            if entry is not None:
                self._answered(entry)
                del self._pending[entry.frame["local_id"]]
                repeat = entry.sends > 1
        seq = data.get("seq")
        if isinstance(seq, int):
            if self.last_seq is not None and seq <= self.last_seq:
                return  # already seen (a replay overlapping live frames)
            self.last_seq = seq
        if own:
            # A repeat without seq from a server that numbers messages answers a message
            # sent again: under a manager, which a bot does not get back (PROTOCOL 7.1).
            if not self.app.own_messages or (repeat and seq is None and self.last_seq is not None):
                return
        elif not data.get("sent_by_human") and self.app.humans_only:
            return
        try:
            message = ChatMessage.from_dict(data)
        except Exception:
            log.warning(
                "ignoring a message the client cannot read in conversation %s: %r",
                self.conversation_id,
                data,
            )
            return
        handler = self.app.message_handler
        if handler is not None:
            await self._inbox.put(lambda: _call(self.app, handler, self, message))

    async def _handle(self) -> None:
        while True:
            job = await self._inbox.get()
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("bot handler failed in conversation %s", self.conversation_id)


async def _call(app: BotApp, function: Callable[..., Any], *args: Any) -> None:
    """Call a bot callback: an ``async`` one on the event loop, a plain one in a worker
    thread (what a plain one returns that is awaitable is awaited on the loop)."""
    if _is_async(function):
        result = function(*args)
    else:
        result = await app._in_thread(lambda: function(*args))
    if inspect.isawaitable(result):
        await result


def _is_async(function: Callable[..., Any]) -> bool:
    """Whether ``function`` is a coroutine function (or an object with an async
    ``__call__``)."""
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        type(function).__call__
    )


def is_position(value: Any) -> TypeGuard[int]:
    """A non-negative integer (not a bool): a ``seq`` or ``copy_seq`` the server sent."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _retry_after(error: dict[str, Any]) -> float | None:
    """The seconds a refusal for now, not for good, says to wait: a ``throttled`` one's or
    an ``unavailable`` one's (the database out of reach) ``retry_after`` (a server before
    ``detail`` was always a text put it in ``detail``, an object then)."""
    detail = error.get("detail")
    wait = error.get("retry_after")
    if wait is None and isinstance(detail, dict):
        wait = detail.get("retry_after")
    if error.get("code") not in RETRIED or isinstance(wait, bool):
        return None
    return float(wait) if isinstance(wait, int | float) and wait >= 0 else None


def _retry_after_header(value: str | None) -> float:
    """The seconds of a ``Retry-After`` header in seconds (0 when absent or a date)."""
    try:
        seconds = float(value) if value is not None else 0.0
    except ValueError:
        return 0.0
    return seconds if 0 <= seconds < float("inf") else 0.0


def _state_of(raw: str | bytes | None) -> dict[str, Any] | None:
    """The ``state`` of a ``state`` frame; None for any other frame, or no frame."""
    if raw is None:
        return None
    try:
        frame = json.loads(raw)
    except ValueError:
        return None
    state = frame.get("state") if isinstance(frame, dict) else None
    return state if isinstance(state, dict) else None
