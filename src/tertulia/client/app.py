"""An external bot: the trigger endpoint, the conversations it starts, and the callbacks.

The server starts an external bot in a conversation by POSTing
``{"conversation_id", "bot_participant_id", "session"}`` to the bot's URL (PROTOCOL 6.3).
:class:`BotApp` answers that POST at once (an empty 200), then connects to
``<server>/ws/chat/<conversation id>/`` with ``Cookie: sessionid=<session>`` and keeps the
socket open (see :mod:`tertulia.client.conversation` for reconnection and resume).

A trigger for a conversation the bot is already in only replaces the session used for the
next reconnection. Tertulia's triggers also say where to start (``after``,
``copies_after``): the creation's after its last message, so that what people wrote while
the trigger was on its way is answered; one that calls the bot back (it had left: its
program restarted, say) before the message that called it. A malformed trigger gets 400.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tertulia.bots.base import ChatMessage
from tertulia.bots.threads import DaemonThreads
from tertulia.client.conversation import Conversation, is_position
from tertulia.serving import serving
from tertulia.web.httpprotocol import HttpProtocol

TRIGGER_KEYS = ("conversation_id", "bot_participant_id", "session")
RESUME_KEYS = ("after", "copies_after")  # in a trigger that calls the bot back (optional)

MessageHandler = Callable[[Conversation, ChatMessage], Awaitable[None] | None]
ConnectHandler = Callable[[Conversation], Awaitable[None] | None]
StateHandler = Callable[[Conversation, dict[str, Any]], Awaitable[None] | None]
H = TypeVar("H", bound=Callable[..., Any])


def websocket_base(server_url: str) -> str:
    """``ws(s)://host[:port]`` for a server given as ``http(s)://`` or ``ws(s)://``.

    Raises:
        ValueError: another scheme.
    """
    url = server_url.rstrip("/")
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if url.startswith(http):
            return ws + url[len(http) :]
    if url.startswith(("ws://", "wss://")):
        return url
    raise ValueError(f"server URL must be http(s):// or ws(s)://, not {server_url!r}")


class BotApp:
    """An external bot serving the trigger and its conversations.

    Args:
        server_url: the Tertulia (or BLAB) server, e.g. ``http://localhost:8000`` or
            ``ws://localhost:8000`` (BLAB's ``BLAB_CONTROLLER_WS_URL``).
        path: the trigger's path (BLAB's library uses ``/``; the server POSTs to the path of
            the configured URL).
        humans_only: hand over only messages people sent (no system events, no bots).
        own_messages: hand over the bot's own messages too.
        backoff: first and longest pause, in seconds, between reconnection attempts.
        open_timeout: seconds a WebSocket handshake may take.
        threads: how many plain (synchronous) callbacks may run at once, over all
            conversations; more wait for a free worker thread.

    Register callbacks with the decorators :meth:`on_message`, :meth:`on_connect` and
    :meth:`on_state`; each may be a plain or an ``async`` function. They run one at a time
    per conversation, in the order things arrived; an exception is logged and skipped.

    An ``async`` callback runs on the event loop: it must not block (``await`` instead).
    A plain callback runs in a worker thread, as the server runs a synchronous internal
    bot, so it may block (a slow library, ``time.sleep``) without stalling the bot's other
    conversations; the next callback of its conversation waits for it all the same. From
    a thread, send with :meth:`Conversation.send_from_thread` (``send`` is a coroutine
    of the event loop), and leave asyncio objects alone. A blocked callback cannot be
    stopped: its thread (a daemon) is abandoned when the conversation closes.
    """

    def __init__(
        self,
        server_url: str,
        *,
        path: str = "/",
        humans_only: bool = True,
        own_messages: bool = False,
        backoff: tuple[float, float] = (0.5, 30.0),
        open_timeout: float = 10.0,
        threads: int = 32,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.ws_url = websocket_base(server_url)
        self.path = path if path.startswith("/") else f"/{path}"
        self.humans_only = humans_only
        self.own_messages = own_messages
        self.backoff = backoff
        self.open_timeout = open_timeout
        self.threads = threads
        self._workers = DaemonThreads("bot-callback")
        self._worker_slots: asyncio.Semaphore | None = None
        self.conversations: dict[str, Conversation] = {}
        self.message_handler: MessageHandler | None = None
        self.connect_handler: ConnectHandler | None = None
        self.state_handler: StateHandler | None = None
        self._asgi: Starlette | None = None

    # -- callbacks ---------------------------------------------------------------------

    def on_message(self, handler: H) -> H:
        """Decorator: ``handler(conversation, message)`` for each message handed over."""
        self.message_handler = handler
        return handler

    def on_connect(self, handler: H) -> H:
        """Decorator: ``handler(conversation)`` once, when a conversation's socket first opens
        (a good moment for a greeting)."""
        self.connect_handler = handler
        return handler

    def on_state(self, handler: H) -> H:
        """Decorator: ``handler(conversation, state)`` for each ``state`` frame."""
        self.state_handler = handler
        return handler

    async def _in_thread(self, call: Callable[[], Any]) -> Any:
        """Run a plain callback in a worker thread, at most :attr:`threads` at once, and
        return what it returned. Cancelled, it stops waiting (the call goes on)."""
        if self._worker_slots is None:
            self._worker_slots = asyncio.Semaphore(self.threads)
        returned: list[Any] = []
        async with self._worker_slots:
            await self._workers.run(lambda: returned.append(call()))
        return returned[0]

    # -- serving -----------------------------------------------------------------------

    @property
    def asgi(self) -> Starlette:
        """The ASGI app answering the trigger (mount it, or use :meth:`serve`)."""
        if self._asgi is None:

            @asynccontextmanager
            async def lifespan(_: Starlette) -> AsyncIterator[None]:
                try:
                    yield
                finally:
                    await self.aclose()

            self._asgi = Starlette(
                routes=[Route(self.path, self._trigger, methods=["POST"])], lifespan=lifespan
            )
        return self._asgi

    def _server(self, host: str, port: int) -> uvicorn.Server:
        config = uvicorn.Config(
            self.asgi,
            host=host,
            port=port,
            http=HttpProtocol,  # (the server's: a request's head bounded in size and time)
            lifespan="on",
            log_config=None,
            access_log=False,
        )
        return uvicorn.Server(config)

    async def serve(self, host: str = "127.0.0.1", port: int = 25220) -> None:
        """Serve the trigger until stopped (Ctrl-C); leaves every conversation on the way out."""
        await self._server(host, port).serve()

    def run(self, host: str = "127.0.0.1", port: int = 25220) -> None:
        """:meth:`serve` in a fresh event loop: the one call a bot script needs."""
        asyncio.run(self.serve(host, port))

    @asynccontextmanager
    async def running(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve in the current event loop while the block runs; yields the trigger URL.

        With ``port=0`` the system picks a free port (for tests).
        """
        async with serving(self._server(host, port)) as bound:
            yield f"http://{host}:{bound}{self.path}"

    async def aclose(self) -> None:
        """Leave every conversation."""
        await asyncio.gather(*(c.close() for c in list(self.conversations.values())))

    # -- triggers ----------------------------------------------------------------------

    async def _trigger(self, request: Request) -> Response:
        try:
            data = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"detail": "The body must be JSON."}, status_code=400)
        if not isinstance(data, dict) or not all(
            isinstance(data.get(key), str) and data[key] for key in TRIGGER_KEYS
        ):
            return JSONResponse(
                {"detail": f"The body needs the strings {', '.join(TRIGGER_KEYS)}."},
                status_code=400,
            )
        points = {key: data.get(key) for key in RESUME_KEYS}
        self.join(
            data["conversation_id"],
            data["bot_participant_id"],
            data["session"],
            **{key: value for key, value in points.items() if is_position(value)},
        )
        return Response(status_code=200)

    def join(
        self,
        conversation_id: str,
        bot_participant_id: str,
        session: str,
        *,
        after: int | None = None,
        copies_after: int | None = None,
    ) -> Conversation:
        """Enter a conversation as the trigger would (also usable by hand).

        ``after`` and ``copies_after``: where to start (a Tertulia trigger says so, the
        creation's and a call-back's): the messages after that ``seq``, the copies after that
        ``copy_seq``, come first. Ignored for a conversation the bot is still in.
        """
        existing = self.conversations.get(conversation_id)
        if existing is not None and existing.active:
            existing.session = session
            existing.wake()  # (the server is up: a pause between tries ends now)
            return existing
        conversation = Conversation(self, conversation_id, bot_participant_id, session)
        conversation.last_seq = after
        conversation.last_copy = copies_after
        self.conversations[conversation_id] = conversation
        conversation.start()
        return conversation

    def _forget(self, conversation: Conversation) -> None:
        if self.conversations.get(conversation.conversation_id) is conversation:
            del self.conversations[conversation.conversation_id]
