"""People the transcript says are here but who are gone: announced as having left.

A stopping server closes its sockets and stores nothing (a restart is not everyone leaving:
tests/web/test_ws_restart.py), and a person whose socket comes back is not announced again
(``participants.present``; ``Chat.connect``). Someone who never comes back would be said to
be here for ever. So every process looks, every half ``presence_lease``, for the people
marked present who have had no socket on any process (the broker's presence) and no
'left' waiting out its grace here, and once one has been seen so for ``presence_lease`` +
``presence_grace`` seconds, stores their *participant-left* as their last socket's closing
would have (ending the conversation when they were required). Between processes the row's
conditional update decides which stores it: once.

(The Redis broker also reports a killed process's people as soon as their leases lapse:
``ChatRegistry._presence_lapsed``. This sweep covers what no lease sees: a server stopped
on purpose, a single process restarted, people that no process serves any more.)
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import structlog

from tertulia.periodic import Periodic
from tertulia.storage import conversations as conv_repo

if TYPE_CHECKING:
    from tertulia.chats import ChatRegistry

log = structlog.get_logger(__name__)

PAGE = 500
"""Present people read per query (a sweep reads them all, by pages)."""


class AbsenceSweep:
    """The periodic sweep above, for one process (started and closed in the lifespan).

    Attributes:
        sweeps: how many sweeps have ended (tests wait on it).
    """

    def __init__(self, registry: ChatRegistry) -> None:
        self._registry = registry
        settings = registry.settings
        self.after = settings.presence_lease + settings.presence_grace
        # (conversation id, participant id) -> when first seen gone, by time.monotonic()
        self._gone_since: dict[tuple[str, str], float] = {}
        self.sweeps = 0
        self._periodic = Periodic(
            "absences",
            self.sweep,
            every=settings.presence_lease / 2,
            failed="sweeping for people gone without leaving failed",
        )

    async def sweep(self) -> list[tuple[str, str]]:
        """Look once; store the 'left' of those gone long enough and return them, as
        (conversation id, participant id). (``left_unseen`` asks the broker again before
        storing: a page of conversations may take a while, and anyone may be back.)"""
        registry = self._registry
        now = time.monotonic()
        gone_since: dict[tuple[str, str], float] = {}
        due: list[tuple[str, str]] = []
        async for conversation_id, people in self._marked_present():
            online = await registry.broker.present(conversation_id)
            for participant_id in people - online - registry.leaving(conversation_id):
                key = (conversation_id, participant_id)
                since = gone_since[key] = self._gone_since.get(key, now)
                if now - since >= self.after:
                    due.append(key)
        self._gone_since = gone_since
        for conversation_id, participant_id in due:
            log.info(
                "no socket for the lease and the grace: leaving, unless back meanwhile",
                conversation_id=conversation_id,
                participant_id=participant_id,
            )
            try:
                await registry.left_unseen(conversation_id, participant_id)
            except Exception:  # (the next sweep tries again)
                log.exception(
                    "storing participant-left failed",
                    conversation_id=conversation_id,
                    participant_id=participant_id,
                )
        self.sweeps += 1
        return due

    async def _marked_present(self) -> AsyncIterator[tuple[str, set[str]]]:
        """Yield (conversation id, participant ids) of everyone marked present, a page at a
        time (a conversation whose people straddle two pages comes twice)."""
        after = ""
        while True:
            async with self._registry.db.read() as conn:
                page = await conv_repo.present_people(conn, after=after, limit=PAGE)
            if not page:
                return
            by_conversation: dict[str, set[str]] = defaultdict(set)
            for participant_id, conversation_id in page:
                by_conversation[conversation_id].add(participant_id)
            for item in by_conversation.items():
                yield item
            after = page[-1][0]

    def start(self) -> None:
        self._periodic.start()

    async def close(self) -> None:
        await self._periodic.close()
