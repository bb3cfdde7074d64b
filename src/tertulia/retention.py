"""``retention_days``: the server deletes, itself, the conversations idle that long.

Each server process looks at start and then every :data:`SWEEP_EVERY` seconds for the
conversations whose last visible message (or, without any, whose creation) is older than
``retention_days``, and deletes them with their files, as ``tertulia delete --idle-before``
does (:func:`tertulia.deleting.erase`): each in its own transaction, checked again under its
row's lock, so one written to meanwhile is kept. Each deletion is announced through the
registry, which closes the conversation's sockets (4404) in every process and lets go of
what it kept of it. Several processes sweeping at once are harmless: a conversation one of
them deleted is skipped by the others.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from tertulia.chats import ChatRegistry
from tertulia.deleting import Deleted, erase
from tertulia.domain.times import utcnow
from tertulia.files import file_store
from tertulia.periodic import Periodic

log = structlog.get_logger(__name__)
SWEEP_EVERY = 3600.0  # seconds between two sweeps of one process
RETRY_AFTER = 60.0  # seconds before a failed sweep is tried again


class Retention:
    """The sweeps of one process (built in the app's lifespan when ``retention_days`` is
    set): :meth:`start`, :meth:`close`, and :meth:`sweep` for one at once."""

    def __init__(self, registry: ChatRegistry, days: float) -> None:
        self._registry = registry
        self._age = timedelta(days=days)
        self._periodic = Periodic(
            "retention",
            self.sweep,
            every=SWEEP_EVERY,
            retry=RETRY_AFTER,
            failed="retention: sweeping failed",
        )

    async def sweep(self) -> Deleted:
        """Delete every conversation idle for longer than ``retention_days``, now."""
        registry = self._registry
        before = utcnow() - self._age
        done = await erase(
            registry.db,
            file_store(registry.settings.media_root),
            [],
            before,
            announce=registry.forget,
        )
        if done.conversations or done.kept:
            log.info(
                "retention: idle conversations deleted",
                idle_before=before.isoformat(),
                conversations=done.conversations,
                messages=done.messages,
                files=done.files,
                kept=done.kept,
            )
        if done.files_owner is not None and done.conversations:
            log.warning(
                "retention: files kept: media_root holds another database's files",
                media_root=str(registry.settings.media_root),
                owner=done.files_owner[:300],
            )
        return done

    def start(self) -> None:
        self._periodic.start()

    async def close(self) -> None:
        await self._periodic.close()
