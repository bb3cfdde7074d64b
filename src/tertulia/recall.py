"""Calling back an external bot that has gone (PROTOCOL 6.3: re-triggering).

An external (WebSocket) bot comes when its trigger is POSTed, at the conversation's
creation. Its program may restart, or its socket drop for good, or the trigger fail while
its program was down; BLAB then left it out of the conversation for good (9.2 #22). Here, a
person writing while such a bot has no socket on any process triggers it again, at most
once per ``bot_recall`` seconds per bot in one process (a bot that is down costs a trigger
and its retries that often, not one per message).

The trigger tells the bot where to resume, so that it answers the message that called it
back: ``after``, the ``seq`` before that message, and for a bot under a manager
``copies_after``, its last redirected copy recorded before it. They ride the delivery as the
*participant-joined* of the bot that its class takes for the cue to trigger (internal, never
on the wire), in its ``additional_metadata``. The bot's participant row keeps them until it
is back (``resume_after``, ``resume_copies_after``): its socket starts there when it does
not say (BLAB's library never does), and a later recall, the bot not back from this one,
keeps this earlier point. The creation holds a point too, where the first trigger goes (the
creation's last message), and its trigger says it as a recall's does: a bot that takes a
while to come answers what people wrote meanwhile, and is called back from there if it
never came. The row also says when its
*participant-left* is stored (``away``), so that its return is announced, after a restart
too.

This module holds the rules without I/O; :class:`tertulia.chats.Chat` applies them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from tertulia.domain.model import Participant


class Recall:
    """Which absent bots of one conversation a person's message calls back now.

    Args:
        every: ``bot_recall``: seconds between two triggers of one bot (0: never).
        clock: seconds, monotonic (for tests).
    """

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._triggered: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        return self._every > 0

    def triggered(self, bots: Sequence[Participant]) -> None:
        """These bots were just triggered (at the conversation's creation): none is called
        back before ``every`` seconds, while it may still be on its way."""
        now = self._clock()
        for bot in bots:
            self._triggered[bot.id] = now

    def answered(self, bot_id: str) -> None:
        """The bot's trigger is answered: its socket opened, or the trigger failed for good
        (its program down). Nothing is on its way, and once the bot is gone (or still down)
        the next person's message calls it back at once (else a bot whose program
        restarted soon after a trigger would miss what was written until the period ran
        out)."""
        self._triggered.pop(bot_id, None)

    def due(self, absent: Sequence[Participant]) -> list[Participant]:
        """Of the bots with no socket, those to trigger now; they count as triggered.

        A bot this process has not triggered is due at once (a conversation loaded after a
        restart: BLAB's bots do not reconnect by themselves).
        """
        now = self._clock()
        due = []
        for bot in absent:
            last = self._triggered.get(bot.id)
            if last is None or now - last >= self._every:
                self._triggered[bot.id] = now
                due.append(bot)
        return due


def resume_point(metadata: dict[str, object], key: str) -> int | None:
    """``after`` or ``copies_after`` of a recall's metadata (None: not a recall), or any
    such position (a ``seq``) of a mapping: a whole number >= 0."""
    value = metadata.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
