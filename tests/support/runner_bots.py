"""Bots that misbehave in the ways bot code does, for the runner's robustness tests
(``tests/test_delivery_robustness.py``). Each records what it was given, by bot participant."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from typing import Any

from tertulia.bots.base import Bot, ChatMessage
from tertulia.domain.ids import new_local_id

CALLS: defaultdict[str, list[str]] = defaultdict(list)
"""Bot participant id -> the texts (or ``status``) its calls were given, in call order."""
_LOCK = threading.Lock()


def _record(bot: Bot, text: str) -> None:
    with _LOCK:
        CALLS[bot.conversation_info.bot_participant_id].append(text)


class TroubleBot(Bot):
    """A plain-method bot (a worker thread) that answers a human's text upper-cased, unless
    it is ``stop`` (the classic ``next()`` on an exhausted iterator: ``StopIteration``) or
    ``fail`` (``ValueError``); ``slow`` answers after ``delay`` seconds."""

    def __init__(self, conversation_info: Any, delay: float = 0.3) -> None:
        super().__init__(conversation_info)
        self.delay = delay

    def receive_message(self, message: ChatMessage) -> None:
        if not message.sent_by_human:
            return
        text = message.text or ""
        _record(self, text)
        if text == "stop":
            next(iter(()))
        if text == "fail":
            raise ValueError("failing, as asked")
        if text == "slow":
            time.sleep(self.delay)
        self.send(type="T", text=text.upper(), quoted_message_id=message.id)


class CancelledBot(Bot):
    """An async bot that, given ``cancel``, awaits something cancelled elsewhere (its call
    ends in ``CancelledError``, though nobody cancelled the call itself)."""

    async def receive_message(self, message: ChatMessage) -> None:
        if not message.sent_by_human:
            return
        text = message.text or ""
        _record(self, text)
        if text == "cancel":
            future = asyncio.get_running_loop().create_future()
            future.cancel()
            await future
        await self.send(type="T", text=text.upper(), quoted_message_id=message.id)


class SetStateBot(Bot):
    """Keeps the ids it has seen in a ``set`` (JSON has none: a bot's bug)."""

    async def receive_message(self, message: ChatMessage) -> None:
        if not message.sent_by_human:
            return
        _record(self, message.text or "")
        self.conversation_info.state.setdefault("seen", set()).add(message.id)


class QuietBot(Bot):
    """Records its calls and says nothing (async: it runs on the loop, without awaiting)."""

    async def receive_message(self, message: ChatMessage) -> None:
        _record(self, message.text or "")

    async def update_status(self, status: dict[str, Any]) -> None:
        _record(self, "status")


RETRY_STARTED = threading.Event()
ABANDONED_WROTE = threading.Event()
ATTEMPTS: defaultdict[str, int] = defaultdict(int)
"""Message id -> calls of :class:`OverrunStateBot` with it."""


class OverrunStateBot(Bot):
    """Its first call with a message overruns its time limit and, abandoned but still running
    in its thread, writes the state while the retry runs; the retry counts in the state and
    answers. (Clear the two events before a test.)"""

    def receive_message(self, message: ChatMessage) -> None:
        if not message.sent_by_human:
            return
        state = self.conversation_info.state
        with _LOCK:
            ATTEMPTS[message.id] += 1
            attempt = ATTEMPTS[message.id]
        if attempt == 1:
            RETRY_STARTED.wait(10)
            state["written_by"] = "the abandoned first call"
            ABANDONED_WROTE.set()
            return
        RETRY_STARTED.set()
        ABANDONED_WROTE.wait(10)
        state["count"] = state.get("count", 0) + 1
        self.send(
            type="T",
            text=(message.text or "").upper(),
            quoted_message_id=message.id,
            local_id=new_local_id(),
        )


class LeaseBot(Bot):
    """An async bot that answers a human's text upper-cased after ``delay`` seconds (then
    `` (tag)`` when given one: which process answered), or with ``hang``, never (its call
    waits until the server stops it); for the tests of one delivery run by one process at
    a time (``tests/test_delivery_lease.py``)."""

    def __init__(
        self, conversation_info: Any, delay: float = 0.0, hang: bool = False, tag: str = ""
    ) -> None:
        super().__init__(conversation_info)
        self.delay = delay
        self.hang = hang
        self.tag = tag

    async def receive_message(self, message: ChatMessage) -> None:
        if not message.sent_by_human:
            return
        _record(self, message.text or "")
        if self.hang:
            await asyncio.Event().wait()
        await asyncio.sleep(self.delay)
        text = (message.text or "").upper() + (f" ({self.tag})" if self.tag else "")
        await self.send(type="T", text=text, quoted_message_id=message.id)


class TimedBot(LeaseBot):
    """A :class:`LeaseBot` that asks the runner for ``limit`` seconds per call when its spec
    sets no ``timeout`` (``tests/bots/test_call_timeouts.py``)."""

    def __init__(self, conversation_info: Any, limit: float, delay: float = 0.0) -> None:
        super().__init__(conversation_info, delay=delay)

    @classmethod
    def call_timeout(cls, kwargs: dict[str, Any]) -> float:
        return float(kwargs["limit"])
