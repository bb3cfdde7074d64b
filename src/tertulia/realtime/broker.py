"""Fan-out of a conversation's events to the sockets subscribed to it, and presence.

Delivery semantics, for every implementation:

- An :class:`Event` is a frame serialised once, plus the audience tags that may receive it
  (see :mod:`tertulia.domain.routing`). Subscribers filter by their own tags.
- Events published to one channel reach each subscriber in publication order. The chat
  publishes a conversation's events under its per-conversation lock, after commit, so that
  order is the ``seq`` order.
- ``deliver`` callbacks must not block: each socket queues frames in its own bounded queue
  and drops itself if the queue is full (a slow reader never stalls others).
- When events published to a channel may not have reached its subscribers (a broker whose
  connection broke, a publish that failed), the subscribers' ``missed`` callbacks are
  called: they must catch up from the database (a socket is closed for its client to
  resume). Silence is never a substitute: nothing stored may go unseen by a live socket.
- Presence counts sockets per participant, across every server process sharing the broker.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(slots=True)
class Event:
    """One frame for a conversation's sockets (treat it as immutable).

    Attributes:
        audience: tags a socket must share to receive it.
        frame: the JSON text frame, serialised once (text, ready for the socket).
        seq: the message's ``seq`` when the frame carries a visible message (for resume).
        supersedes: a ``state`` frame: it replaces an earlier one a socket has not sent yet
            (participants are never removed, so everything queued after the earlier frame
            is still covered by the newer one).
        close: not a frame but an order: each socket it reaches closes with this code at
            once (the conversation was deleted, say). ``frame`` is then what a process
            that predates the field sends instead (during a rolling upgrade with Redis),
            so it is a frame clients understand.
        copy: the number of a redirected copy the frame carries (for resume, as ``seq``).
        participants: a ``state`` frame's count of participants. They are never removed,
            so a frame listing fewer than one a socket has already queued is older: with
            several processes, two publishes can cross on their way (a join's frame, then
            another process's older one, which left the newcomer out). The socket drops it.
    """

    audience: frozenset[str]
    frame: str
    seq: int | None = None
    supersedes: bool = False
    close: int | None = None
    copy: int | None = None
    participants: int | None = None


Deliver = Callable[[Event], None]
Missed = Callable[[], None]
Unsubscribe = Callable[[], None]
Lapsed = Callable[[str, str], None]
Since = Callable[[], Awaitable[int]]
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
"""The URL schemes of a Redis broker (``create_broker``; reached before the start by
``tertulia.preflight``)."""


class Broker(abc.ABC):
    """Publish/subscribe per conversation channel, plus per-participant presence.

    Attributes:
        lapsed: called (without blocking) with a channel and a participant id when the
            participant's presence ended without their last socket leaving: its process
            died (the Redis broker's leases; the in-process broker dies with its sockets).
    """

    lapsed: Lapsed | None = None

    async def start(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Open connections (called in the app's lifespan)."""

    async def close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release connections (called in the app's lifespan, in reverse order)."""

    async def ping(self) -> None:  # noqa: B027 - the in-process broker is always there
        """Return when the broker answers; raise when it cannot be reached (``/health``)."""

    @abc.abstractmethod
    async def publish(self, channel: str, events: list[Event]) -> None:
        """Send ``events``, in order, to every subscriber of ``channel`` in every process.

        Raises:
            BrokerUnavailable: the broker could not be reached (this process's subscribers
                of ``channel`` have been told, through ``missed``).
        """

    @abc.abstractmethod
    async def subscribe(
        self,
        channel: str,
        deliver: Deliver,
        missed: Missed | None = None,
        *,
        since: Since | None = None,
    ) -> Unsubscribe:
        """Call ``deliver`` with each event later published to ``channel``, and ``missed``
        (without blocking) when some may not have been delivered.

        Returns once the subscription is active: any event published after the call returns
        is delivered, or ``missed`` is called. ``since``, awaited once it is active, reads
        the highest seq of the channel stored so far: where the seq order of what several
        processes publish starts, for a channel new to this process (the Redis broker;
        one process publishes in order).

        Raises:
            BrokerUnavailable: the broker could not be reached (or did not confirm).
        """

    @abc.abstractmethod
    async def join(self, channel: str, participant_id: str, socket_id: str) -> bool:
        """Record an open socket. Returns True when it is the participant's first."""

    @abc.abstractmethod
    async def leave(self, channel: str, participant_id: str, socket_id: str) -> bool:
        """Forget a socket. Returns True when the participant has no socket left."""

    @abc.abstractmethod
    async def present(self, channel: str) -> set[str]:
        """Participant ids with at least one open socket."""


def create_broker(
    url: str, *, presence_lease: float | None = None, prefix: str | None = None
) -> Broker:
    """The broker for ``url``: ``memory://`` or ``redis://host:port/db``; on Redis, a
    socket counts as present for ``presence_lease`` seconds after its process last renewed
    it (``tertulia.realtime.redis.PRESENCE_LEASE`` if None), and its channels are those of
    the URL's database number and ``prefix`` (the ``broker_prefix`` setting), its keys
    those of ``prefix``.

    Raises:
        ConfigurationError: an unknown scheme.
    """
    from tertulia.errors import ConfigurationError

    if url.startswith("memory://"):
        from tertulia.realtime.memory import MemoryBroker

        return MemoryBroker()
    if url.startswith(REDIS_SCHEMES):
        from tertulia.realtime.redis import PRESENCE_LEASE, RedisBroker

        return RedisBroker(url, presence_lease=presence_lease or PRESENCE_LEASE, prefix=prefix)
    raise ConfigurationError(f"unknown broker URL {url!r} (memory:// or redis://...)")
