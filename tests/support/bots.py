"""Bots that misbehave on purpose, a log watcher, and sockets for bot participants.

The classes are installed with ``make_settings(bots={"NAME": {"module": "support.bots",
"class": ...}})``. Blocking bots wait on :data:`RELEASE`, which the ``release_bots`` fixture
of the tests that use them sets at teardown, so no worker thread outlives its test.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, ClassVar

import structlog

from support.blab import Person
from support.server import LiveServer
from tertulia.bots.base import ChatMessage, ConversationInfo
from tertulia.errors import ConfigurationError
from tertulia.storage import sessions as session_repo

RELEASE = threading.Event()
"""Set to let every blocked bot return."""

EventDict = MutableMapping[str, Any]


class _HumanTriggered:
    def __init__(self, conversation_info: ConversationInfo, *args: Any, **kwargs: Any) -> None:
        self.info = conversation_info


class RaisingBot(_HumanTriggered):
    """Raises on every message a human sent."""

    def receive_message(self, message: ChatMessage) -> None:
        if message.sent_by_human:
            raise RuntimeError(f"boom on {message.text!r}")


class RefusedBot(_HumanTriggered):
    """Answers every human message with a text the server refuses (a quote of no message
    of the conversation), counting its calls in :data:`REFUSED_CALLS`."""

    def receive_message(self, message: ChatMessage) -> None:
        if message.sent_by_human:
            REFUSED_CALLS.append(message.id)
            self.info.send_function(
                {"type": "T", "text": "see", "quoted_message_id": str(uuid.uuid4())}
            )


REFUSED_CALLS: list[str] = []
"""The id of each human message a :class:`RefusedBot` was called for, once per call."""


class MisconfiguredBot:
    """Its constructor finds its configuration cannot work (as a bot with no start-time
    check of its own would): every call fails the same way."""

    def __init__(self, conversation_info: ConversationInfo, *args: Any, **kwargs: Any) -> None:
        raise ConfigurationError("the frobnicator's variable is unset")

    def receive_message(self, message: ChatMessage) -> None:  # pragma: no cover
        pass


class BlockingBot(_HumanTriggered):
    """Blocks its worker thread on every human message until :data:`RELEASE` is set."""

    def receive_message(self, message: ChatMessage) -> None:
        if message.sent_by_human:
            RELEASE.wait()


class AsyncHangingBot(_HumanTriggered):
    """An async bot that never returns from a human message (it awaits forever)."""

    async def receive_message(self, message: ChatMessage) -> None:
        if message.sent_by_human:
            await asyncio.Event().wait()


GATES: dict[str, asyncio.Event] = {}
"""Per conversation id: set it to let :class:`GatedEchoBot` answer there."""


class GatedEchoBot(_HumanTriggered):
    """An async bot that, on a human's text, logs ``gated bot waiting`` and waits until
    ``GATES[<conversation id>]`` is set, then answers it upper-cased."""

    async def receive_message(self, message: ChatMessage) -> None:
        if message.sent_by_human:
            conversation_id = self.info.conversation_id
            gate = GATES.setdefault(conversation_id, asyncio.Event())
            structlog.get_logger(__name__).info(
                "gated bot waiting", conversation_id=conversation_id
            )
            await gate.wait()
            self.info.send_function(
                {"type": "T", "text": (message.text or "").upper(), "quoted_message_id": message.id}
            )


class FlakyGatedEchoBot(GatedEchoBot):
    """Fails its first call in a conversation, then behaves as :class:`GatedEchoBot`."""

    failed: ClassVar[set[str]] = set()

    async def receive_message(self, message: ChatMessage) -> None:
        if message.sent_by_human and self.info.conversation_id not in self.failed:
            self.failed.add(self.info.conversation_id)
            raise RuntimeError("the first call fails")
        await super().receive_message(message)


class SilentBot(_HumanTriggered):
    """Does nothing: a participant driven by the test over its own socket."""

    def receive_message(self, message: ChatMessage) -> None:
        pass


def bots_with(name: str, cls: str, **fields: Any) -> dict[str, dict[str, Any]]:
    """A ``bots`` entry for :func:`make_settings`, plus the default ECHO."""
    return {
        "ECHO": {"module": "tertulia.bots.builtin", "class": "UpperCaseEchoBot"},
        name: {"module": "support.bots", "class": cls, **fields},
    }


class LogWatcher:
    """Every structlog event while active; tests wait on them instead of sleeping."""

    def __init__(self) -> None:
        self.entries: list[EventDict] = []
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._thread = threading.get_ident()

    def __call__(self, _logger: Any, method: str, event: EventDict) -> EventDict:
        event = dict(event)
        event.setdefault("log_level", method)
        self.entries.append(event)
        if threading.get_ident() == self._thread:
            self._changed.set()
        else:
            self._loop.call_soon_threadsafe(self._changed.set)
        raise structlog.DropEvent

    def errors(self) -> list[EventDict]:
        """The entries logged as errors (an ``exception`` too)."""
        return [e for e in self.entries if e["log_level"] in ("error", "critical", "exception")]

    async def wait_for(
        self, predicate: Callable[[EventDict], bool], timeout: float = 10.0
    ) -> EventDict:
        """The first entry (past or future) matching ``predicate``."""
        async with asyncio.timeout(timeout):
            while True:
                for entry in self.entries:
                    if predicate(entry):
                        return entry
                self._changed.clear()
                await self._changed.wait()


@contextmanager
def watch_logs() -> Iterator[LogWatcher]:
    """Capture structlog's output (like ``structlog.testing.capture_logs``), awaitably."""
    watcher = LogWatcher()
    previous = structlog.get_config()["processors"]
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, watcher])
    try:
        yield watcher
    finally:
        structlog.configure(processors=previous)


async def bot_person(server: LiveServer, conversation_id: str, participant_id: str) -> Person:
    """A client holding a session for a bot participant (as an external bot would)."""
    services = server.app.state.services
    session = await services.sessions.create(bot_conversation_id=conversation_id)
    async with server.registry.db.write() as conn:
        await session_repo.add_participation(conn, session.key, conversation_id, participant_id)
    person = Person(server.base_url, server.ws_url)
    person.http.cookies.set("sessionid", session.key)
    person.conversation_id = conversation_id
    person.participant_id = participant_id
    return person


__all__ = [
    "GATES",
    "RELEASE",
    "AsyncHangingBot",
    "BlockingBot",
    "FlakyGatedEchoBot",
    "GatedEchoBot",
    "LogWatcher",
    "RaisingBot",
    "SilentBot",
    "bot_person",
    "bots_with",
    "watch_logs",
]


MISSING_ID = "00000000-0000-4000-8000-000000000000"
ON_LOOP_CALLS: dict[str, tuple[int, object]] = {}
"""Per message id: the thread an on-loop bot was called in and what its ``send`` returned."""


class OnLoopEchoBot(_HumanTriggered):
    """A plain-method bot that opts into the event loop; answers a human's text upper-cased."""

    runs_on_loop = True

    def receive_message(self, message: ChatMessage) -> None:
        if message.sent_by_human:
            sent = self.info.send_function(
                {"type": "T", "text": (message.text or "").upper(), "quoted_message_id": message.id}
            )
            ON_LOOP_CALLS[message.id] = (threading.get_ident(), sent)


class OnLoopBadSenderBot(_HumanTriggered):
    """An on-loop bot whose answer the server refuses (it quotes a message that is not
    there)."""

    runs_on_loop = True

    def receive_message(self, message: ChatMessage) -> None:
        if message.sent_by_human:
            self.info.send_function({"type": "T", "text": "x", "quoted_message_id": MISSING_ID})
