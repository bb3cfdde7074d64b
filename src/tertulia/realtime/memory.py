"""The in-process broker: the default, for a single server process."""

from __future__ import annotations

from collections import defaultdict

import structlog

from tertulia.realtime.broker import Broker, Deliver, Event, Missed, Since, Unsubscribe

log = structlog.get_logger(__name__)


class MemoryBroker(Broker):
    """Fan-out by direct calls; presence in dictionaries of this process."""

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, dict[int, Deliver]] = defaultdict(dict)
        self._sockets: defaultdict[str, defaultdict[str, set[str]]] = defaultdict(
            lambda: defaultdict(set)
        )
        self._next = 0

    async def publish(self, channel: str, events: list[Event]) -> None:
        subscribers = self._subscribers.get(channel)
        if not subscribers:
            return
        for deliver in list(subscribers.values()):
            for event in events:
                try:
                    deliver(event)
                except Exception:  # a broken subscriber must not starve the others
                    log.exception("subscriber failed", conversation_id=channel)

    async def subscribe(
        self,
        channel: str,
        deliver: Deliver,
        missed: Missed | None = None,
        *,
        since: Since | None = None,
    ) -> Unsubscribe:
        # Publishing is a direct call here: no event can go astray, so ``missed`` is never
        # called.
        self._next += 1
        token = self._next
        self._subscribers[channel][token] = deliver

        def unsubscribe() -> None:
            subscribers = self._subscribers.get(channel)
            if subscribers is not None:
                subscribers.pop(token, None)
                if not subscribers:
                    del self._subscribers[channel]

        return unsubscribe

    async def join(self, channel: str, participant_id: str, socket_id: str) -> bool:
        sockets = self._sockets[channel][participant_id]
        first = not sockets
        sockets.add(socket_id)
        return first

    async def leave(self, channel: str, participant_id: str, socket_id: str) -> bool:
        participants = self._sockets.get(channel)
        if participants is None:
            return True
        sockets = participants.get(participant_id)
        if sockets is None:
            return True
        sockets.discard(socket_id)
        if sockets:
            return False
        del participants[participant_id]
        if not participants:
            del self._sockets[channel]
        return True

    async def present(self, channel: str) -> set[str]:
        return set(self._sockets.get(channel, {}))
