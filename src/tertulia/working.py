"""The bots' working indicator: which bots are handling a delivery, told to people sparingly.

The bot runner reports the start and the end of each message delivery
(:meth:`tertulia.chats.ChatRegistry.bot_working`). People learn it from a ``state`` frame
that carries, besides the usual ``participants``, ``conversation_name`` and ``online``, the
extension ``working``: the ids of the bot participants at work. Old clients ignore the key
(PROTOCOL 10); a state frame without it says nothing about work.

Delivery semantics:

- Frames go to human sockets only (audience ``humans``).
- Coalescing: a bot shows as working once it has been busy for ``delay`` seconds without a
  break, and as idle again once it has been idle that long. A burst of quick deliveries
  (system messages a bot ignores, a backlog worked through) therefore sends nothing or one
  pair of frames, never one per delivery.
- A frame is sent only when the set shown for a conversation changes. One conversation's
  frames are sent one at a time, each with the set as it is when sent, so the last frame
  always tells the truth even when changes race.
- Counts are per process: with separate worker processes each reports its own bots (the
  broker carries the frames to every server process).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from tertulia.domain.routing import HUMANS
from tertulia.outgoing import state_frame
from tertulia.realtime.broker import Broker, Event

log = structlog.get_logger(__name__)

StateOf = Callable[[str], Awaitable[dict[str, Any] | None]]
"""The current ``state`` content of a conversation, or None when it is gone."""

DELAY = 0.25
"""Seconds a bot must stay busy (or idle) before people are told."""


class WorkingIndicator:
    """Counts deliveries in progress per (conversation, bot) and publishes the changes.

    Args:
        broker: where the frames go.
        state_of: the conversation's current state (participants, name, online).
        delay: see :data:`DELAY`; 0 tells every change (still never the same set twice).

    Call :meth:`change` on the event loop.
    """

    def __init__(self, broker: Broker, state_of: StateOf, *, delay: float = DELAY) -> None:
        self._broker = broker
        self._state_of = state_of
        self._delay = delay
        self._busy: dict[tuple[str, str], int] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._shown: dict[str, set[str]] = {}
        self._published: dict[str, list[str]] = {}
        self._dirty: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def shown(self, conversation_id: str) -> list[str]:
        """The bot participant ids people are (or are about to be) told are working."""
        return sorted(self._shown.get(conversation_id, ()))

    def change(self, conversation_id: str, bot_participant_id: str, working: bool) -> None:
        """A delivery to the bot started (``working``) or ended.

        An end without a start is ignored, so a caller may report ends unconditionally.
        """
        key = (conversation_id, bot_participant_id)
        before = self._busy.get(key, 0)
        after = before + 1 if working else max(0, before - 1)
        if after:
            self._busy[key] = after
        else:
            self._busy.pop(key, None)
        if (before > 0) == (after > 0):
            return
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if (after > 0) != (bot_participant_id in self._shown.get(conversation_id, ())):
            loop = asyncio.get_running_loop()
            self._timers[key] = loop.call_later(self._delay, self._flip, key)

    async def close(self) -> None:
        """Stop the timers and the frames in flight (nothing more is published)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _flip(self, key: tuple[str, str]) -> None:
        self._timers.pop(key, None)
        conversation_id, bot_id = key
        shown = self._shown.setdefault(conversation_id, set())
        if self._busy.get(key, 0) > 0:
            shown.add(bot_id)
        else:
            shown.discard(bot_id)
        if not shown:
            del self._shown[conversation_id]
        self._dirty.add(conversation_id)
        if conversation_id not in self._tasks:
            self._tasks[conversation_id] = asyncio.create_task(
                self._drain(conversation_id), name=f"working-{conversation_id}"
            )

    async def _drain(self, conversation_id: str) -> None:
        try:
            while conversation_id in self._dirty:
                self._dirty.discard(conversation_id)
                current = self.shown(conversation_id)
                if current == self._published.get(conversation_id, []):
                    continue
                state = await self._state_of(conversation_id)
                if state is None:
                    break
                frame = state_frame({**state, "working": current})
                await self._broker.publish(conversation_id, [Event(frozenset({HUMANS}), frame)])
                if current:
                    self._published[conversation_id] = current
                else:
                    self._published.pop(conversation_id, None)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "publishing the working indicator failed", conversation_id=conversation_id
            )
        finally:
            self._tasks.pop(conversation_id, None)
