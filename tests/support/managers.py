"""Test-only bots and managers, and a way to drive a manager over a WebSocket.

The classes are configured like any bot spec (``{"module": "support.managers", "class":
...}``); ``tests`` is on the import path both for pytest and for server subprocesses.

- :class:`SocketManager`: a manager with no internal behaviour; a test drives it over a
  socket opened with :func:`manager_client` (any bot: :func:`bot_client`); :class:`SocketBot`
  the same for a bot.
- :class:`RecordingBot`: records every delivery (messages and statuses) per participant.
- :class:`FlakyBot`: answers, then fails a set number of times per message.
- :class:`HangOnceBot`: hangs past its time limit once, then answers.
- :class:`GatedBot`: waits in its thread until the test opens a gate (outliving a server).
- :class:`CrashTestBot`: hangs while a marker file exists, so a server process can be
  killed while a delivery is pending; without the file (after a restart) it finishes.

Helpers: :class:`Room` (people, bots and a socket manager), :func:`gather`, and readers of
the ``deliveries`` and ``messages`` tables.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from support.blab import TIMEOUT, Person, Socket
from support.server import LiveServer
from tertulia.bots.base import Bot, ChatMessage, ConversationInfo
from tertulia.bots.builtin.managing import ManagerBot
from tertulia.domain.ids import new_local_id, new_session_key
from tertulia.domain.times import utcnow
from tertulia.storage import sessions as session_repo
from tertulia.storage.tables import deliveries, messages


class SocketManager:
    """A manager whose class does nothing: it is driven over its WebSocket.

    It takes no deliveries at all, so the outbox holds none for it.
    """

    def __init__(self, conversation_info: ConversationInfo, *args: Any, **kwargs: Any) -> None:
        self.conversation_info = conversation_info

    @staticmethod
    def accepts_delivery(kind: str, payload: dict[str, Any], bot_participant_id: str) -> bool:
        return False


class SocketBot(SocketManager):
    """A bot (not a manager) with no internal behaviour: a test drives it over its socket
    (:func:`bot_client`), as an external bot would be."""


class MisguidedManager(Bot):
    """An internal manager that redirects every human message to a bot that is not there."""

    def receive_message(self, message: ChatMessage) -> None:
        if message.sent_by_human:
            self.send(
                type="T",
                text="",
                quoted_message_id=message.id,
                command='{"action": "redirect", "bots": ["Nobody"]}',
                local_id=new_local_id(),
            )


async def bot_client(
    server: LiveServer, person: Person, conversation_id: str, bot_name: str | None = None
) -> Person:
    """Give ``person`` the session of a bot of the conversation, as an external bot has.

    Args:
        bot_name: the bot participant's name; ``None`` for the manager.

    Returns:
        ``person``, now acting as that bot participant over REST and WebSocket.
    """
    registry = server.registry
    chat = await registry.get(conversation_id)
    assert chat is not None
    await chat.refresh()
    if bot_name is None:
        bot = chat.manager
    else:
        bot = next((p for p in chat.participants if p.is_bot and p.name == bot_name), None)
    assert bot is not None, bot_name
    key = new_session_key()
    now = utcnow()
    async with registry.db.write() as conn:
        await session_repo.create_session(
            conn,
            key,
            now=now,
            expires_at=now + timedelta(hours=1),
            bot_conversation_id=conversation_id,
        )
        await session_repo.add_participation(conn, key, conversation_id, bot.id)
    person.http.cookies.set("sessionid", key, domain="127.0.0.1")
    person.conversation_id = conversation_id
    person.participant_id = bot.id
    return person


async def manager_client(server: LiveServer, person: Person, conversation_id: str) -> Person:
    """:func:`bot_client` for the conversation's manager."""
    return await bot_client(server, person, conversation_id)


class Inbox:
    """What one bot participant received, with a way to wait for more."""

    def __init__(self) -> None:
        self.messages: list[ChatMessage] = []
        self.statuses: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def add(self, item: ChatMessage | dict[str, Any]) -> None:
        if isinstance(item, ChatMessage):
            self.messages.append(item)
        else:
            self.statuses.append(item)
        self._changed.set()

    async def wait(self, predicate: Callable[[Inbox], bool], timeout: float = TIMEOUT) -> None:
        """Return once ``predicate(self)`` holds (checked after every delivery)."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()


INBOXES: defaultdict[str, Inbox] = defaultdict(Inbox)
"""Bot participant id -> what :class:`RecordingBot` received there."""


FAILED_ONCE: set[str] = set()
"""Ids of the messages :class:`RecordingBot` has failed on (``fail: ...``)."""


class RecordingBot(Bot):
    """Records every message and status delivered to it, each attempt included.

    Answers a human's ``echo: X`` with ``X``; raises the first time it gets ``fail: X``.
    Async, so it runs on the server's (the test's) event loop.
    """

    async def receive_message(self, message: ChatMessage) -> None:
        INBOXES[self.conversation_info.bot_participant_id].add(message)
        text = message.text or ""
        if text.startswith("fail: ") and message.id not in FAILED_ONCE:
            FAILED_ONCE.add(message.id)
            raise RuntimeError("failing once, as asked")
        if message.sent_by_human and text.startswith("echo: "):
            await self.send(
                type="T",
                text=text.removeprefix("echo: "),
                quoted_message_id=message.id,
                local_id=new_local_id(),
            )

    async def update_status(self, status: dict[str, Any]) -> None:
        INBOXES[self.conversation_info.bot_participant_id].add(status)


ATTEMPTS: defaultdict[str, int] = defaultdict(int)
DELIVERY_IDS: defaultdict[str, list[Any]] = defaultdict(list)
RETURNED: defaultdict[str, list[Any]] = defaultdict(list)
"""Message id -> what each attempt's ``send`` returned (:class:`OfferingFlakyBot`)."""
"""Message id -> the ``conversation_info.delivery_id`` of each FlakyBot attempt at it."""
"""Message id -> how many times :class:`FlakyBot` was called with it."""


class OfferingFlakyBot(Bot):
    """Offers options for each human text, keeps the offer's id in its state (as an options
    bot or a manager must, to know the answer to it later), then raises on its first
    attempt: the retry sends the same offer again, and needs what ``send`` returns."""

    def receive_message(self, message: ChatMessage) -> None:
        if not message.sent_by_human:
            return
        ATTEMPTS[message.id] += 1
        offer = self.send(type="T", text="Which?", options=["this", "that"])
        RETURNED[message.id].append(offer)
        self.conversation_info.state["offer"] = offer["id"]
        if ATTEMPTS[message.id] == 1:
            raise RuntimeError("failing once, after the offer")


class FlakyBot(Bot):
    """Answers each human text upper-cased, then raises on the first ``failures`` attempts.

    Every attempt sends the answer before failing, so only the runner's de-duplication
    keeps it from being shown several times.
    """

    def __init__(self, conversation_info: ConversationInfo, failures: int = 2) -> None:
        super().__init__(conversation_info)
        self.failures = failures

    def receive_message(self, message: ChatMessage) -> None:
        if not message.sent_by_human:
            return
        ATTEMPTS[message.id] += 1
        DELIVERY_IDS[message.id].append(self.conversation_info.delivery_id)
        self.send(
            type="T",
            text=(message.text or "").upper(),
            quoted_message_id=message.id,
            local_id=new_local_id(),
        )
        if ATTEMPTS[message.id] <= self.failures:
            raise RuntimeError(f"flaky failure {ATTEMPTS[message.id]}")


class HangOnceBot(Bot):
    """Hangs (until cancelled by its time limit) the first time it gets a human text; on
    the next attempt answers it upper-cased. Async."""

    async def receive_message(self, message: ChatMessage) -> None:
        if not message.sent_by_human:
            return
        ATTEMPTS[message.id] += 1
        if ATTEMPTS[message.id] == 1:
            await asyncio.Event().wait()
        await self.send(
            type="T",
            text=(message.text or "").upper(),
            quoted_message_id=message.id,
            local_id=new_local_id(),
        )


GATE = threading.Event()
"""Holds :class:`GatedBot` until a test sets it."""
ENTERED = threading.Event()
"""Set when :class:`GatedBot` starts waiting at the gate."""
OUTCOMES: queue.Queue[str] = queue.Queue()
"""What each :class:`GatedBot` send came to: ``"sent"`` or the error's class name."""


class GatedBot(Bot):
    """Waits (in its worker thread) until :data:`GATE` is set, then answers a human's text
    upper-cased, reporting the outcome of that send in :data:`OUTCOMES`."""

    def receive_message(self, message: ChatMessage) -> None:
        if not message.sent_by_human:
            return
        ENTERED.set()
        GATE.wait(TIMEOUT)
        try:
            self.send(
                type="T",
                text=(message.text or "").upper(),
                quoted_message_id=message.id,
                local_id=new_local_id(),
            )
        except Exception as exc:
            OUTCOMES.put(type(exc).__name__)
            raise
        OUTCOMES.put("sent")


LOOPING = threading.Event()
"""Set once :class:`LoopingManager` has passed a few answers on (since :func:`loop_again`)."""
_looped = itertools.count()


def loop_again() -> None:
    """:data:`LOOPING` cleared, and counted again from nothing."""
    global _looped
    LOOPING.clear()
    _looped = itertools.count()


class LoopingManager(ManagerBot):
    """A busy manager in its worker thread: each person's text goes to Calculator, and each
    of Calculator's answers back to it, doubled, as from a person (a self-redirect chain
    that never ends). Sets :data:`LOOPING` after a few rounds."""

    runs_on_loop = False

    def receive_message(self, message: ChatMessage) -> None:
        if message.type == "S" or self.is_own(message):
            return
        command = {
            "self_redirect": True,
            "bots": ["Calculator"],
            "overrides": {"sent_by_human": True},
        }
        if message.sent_by_human:
            self.send(type="T", text=message.text, command=command)
        elif self.is_unapproved_bot_message(message):
            if next(_looped) == 30:
                LOOPING.set()
            self.send(type="T", text=f"({message.text})*2", command=command)


class CrashTestBot(Bot):
    """For kill-and-restart tests, steered by a file: while ``directory/hang`` exists it
    hangs on every human text (the test kills the server meanwhile), after sending the
    upper-cased text first when ``answer_first`` is true. Without that file it sends the
    upper-cased text and then ``"done"``, and returns.
    """

    def __init__(
        self, conversation_info: ConversationInfo, directory: str, answer_first: bool = False
    ) -> None:
        super().__init__(conversation_info)
        self.hang = Path(directory) / "hang"
        self.answer_first = answer_first

    def receive_message(self, message: ChatMessage) -> None:
        if not message.sent_by_human:
            return
        hanging = self.hang.exists()
        if self.answer_first or not hanging:
            self.send(
                type="T",
                text=(message.text or "").upper(),
                quoted_message_id=message.id,
                local_id=new_local_id(),
            )
        if hanging:
            threading.Event().wait(120)  # the test kills the server long before this
            return
        self.send(type="T", text="done", quoted_message_id=message.id, local_id=new_local_id())


async def start(
    server: LiveServer, people: Any, bots: list[str]
) -> tuple[Person, Socket, dict[str, str]]:
    """alice in a new conversation with ``bots``, connected; returns her, her socket and
    the participant ids by name."""
    alice = people(server)
    created = await alice.create(nickname="alice", bots=bots)
    assert created.status_code == 201, created.text
    ids = {p["name"]: p["id"] for p in created.json()["participants"]}
    return alice, await alice.connect(), ids


async def delivery_rows(server: LiveServer, bot_participant_id: str) -> list[Any]:
    """The outbox rows recorded for a bot participant, oldest first."""
    async with server.registry.db.read() as conn:
        rows = await conn.execute(
            select(deliveries)
            .where(deliveries.c.bot_participant_id == bot_participant_id)
            .order_by(deliveries.c.pk)
        )
        return list(rows)


async def message_deliveries(server: LiveServer, bot_participant_id: str) -> list[dict[str, Any]]:
    """The payloads of the ``message`` outbox rows recorded for a bot, oldest first."""
    rows = await delivery_rows(server, bot_participant_id)
    return [dict(r.payload) for r in rows if r.kind == "message"]


async def stored_message(server: LiveServer, message_id: str) -> Any:
    """The ``messages`` row of a message (audit columns included)."""
    async with server.registry.db.read() as conn:
        return (await conn.execute(select(messages).where(messages.c.id == message_id))).one()


async def stored_count(server: LiveServer, conversation_id: str) -> int:
    """How many messages the conversation has stored."""
    async with server.registry.db.read() as conn:
        rows = await conn.execute(
            select(messages.c.pk).where(messages.c.conversation_id == conversation_id)
        )
        return len(rows.all())


_OURS = {
    "SocketManager",
    "SocketBot",
    "RecordingBot",
    "FlakyBot",
    "HangOnceBot",
    "GatedBot",
    "CrashTestBot",
    "MisguidedManager",
}


def manager_bots(manager_class: str = "SocketManager", **manager_kwargs: Any) -> dict[str, Any]:
    """Bot specs for manager tests: ECHO, Calculator, Recorder and a manager named Manager."""
    builtin = "tertulia.bots.builtin"
    manager_module = "support.managers" if manager_class in _OURS else builtin
    return {
        "ECHO": {"module": builtin, "class": "UpperCaseEchoBot"},
        "Calculator": {"module": builtin, "class": "CalculatorBot"},
        "Recorder": {"module": "support.managers", "class": "RecordingBot"},
        "Manager": {"module": manager_module, "class": manager_class, "kwargs": manager_kwargs},
    }


class Room:
    """A conversation with a manager: its people and the manager, each with a socket.

    Attributes:
        ids: participant id by name (the bots' names, and ``alice``, ``bob``).
    """

    def __init__(self, server: LiveServer, alice: Person, bob: Person, manager: Person) -> None:
        self.server = server
        self.alice = alice
        self.bob = bob
        self.manager = manager
        self.ids: dict[str, str] = {}
        self.sockets: dict[str, Socket] = {}

    @property
    def conversation_id(self) -> str:
        assert self.alice.conversation_id is not None
        return self.alice.conversation_id

    @classmethod
    async def open(
        cls,
        server: LiveServer,
        make_person: Callable[[LiveServer], Person],
        bots: list[str],
        *,
        socket_manager: bool = True,
    ) -> Room:
        """alice creates the conversation with ``bots``, bob joins, both connect; with
        ``socket_manager`` a third client holds the manager's session and connects too."""
        alice, bob = make_person(server), make_person(server)
        created = await alice.create(nickname="alice", name="room", bots=bots)
        assert created.status_code == 201, created.text
        conversation_id = created.json()["id"]
        joined = await bob.join(conversation_id, nickname="bob")
        assert joined.status_code == 200, joined.text
        manager = make_person(server)
        room = cls(server, alice, bob, manager)
        chat = await server.registry.get(conversation_id)
        assert chat is not None
        await chat.refresh()
        room.ids = {p.name: p.id for p in chat.participants}
        room.sockets["alice"] = await alice.connect()
        room.sockets["bob"] = await bob.connect()
        if socket_manager:
            await manager_client(server, manager, conversation_id)
            room.sockets["manager"] = await manager.connect()
            await room.sockets["manager"].state()
        return room


async def gather(
    socket: Socket, count: int, timeout: float = TIMEOUT, **fields: Any
) -> list[dict[str, Any]]:
    """The next ``count`` messages on ``socket`` whose fields equal ``fields``, in any order
    with other frames (bots answering concurrently may come either way)."""
    start = len(socket.frames)

    def found() -> list[dict[str, Any]]:
        return [
            f["message"]
            for f in socket.frames[start:]
            if "message" in f and all(f["message"].get(k) == v for k, v in fields.items())
        ]

    async with asyncio.timeout(timeout):
        while len(found()) < count:
            await socket.recv(timeout)
    return found()
