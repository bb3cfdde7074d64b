"""The Redis broker: fan-out and presence shared by several server processes.

Each process keeps one pub/sub connection; a reader task hands incoming events to the local
subscribers of each channel, in the order of their messages' seqs: Redis keeps the order of
one publisher (and the chat publishes a conversation's events under its lock), but two
processes' publishes may cross, and :mod:`tertulia.realtime.ordering` puts them back. A channel is
subscribed in Redis while at least one local socket listens to it, and ``subscribe``
returns only once Redis has confirmed the subscription.

Redis keeps no pub/sub message for a connection that is down. When the reader's connection
breaks (Redis restarted, the network), redis-py connects again and subscribes to the
channels again, but what was published meanwhile is gone: every local subscriber is told
(``missed``) as soon as the break is seen. So are a channel's local subscribers when a
publish to it fails; and, since only this process knows of that failure while the other
processes' connections may be fine, it then tells them too, on the control channel, as soon
as Redis takes a publish from it again (retried with backoff): each of them tells its
subscribers of that channel that subscribed before the failure (later ones read the
database after subscribing, so they have the message). A process that stops before Redis
takes that notice leaves the others' sockets to catch up when they next reconnect.

Channels are named per installation: ``tertulia:<db>:conv:<conversation id>`` and
``tertulia:<db>:control``, ``<db>`` the database number of the broker's URL, as Redis's
pub/sub ignores database numbers (installations on ``/0`` and ``/1`` of one Redis would hear
each other's events, and a copy keeps its conversations' ids). Installations sharing a
database number set ``broker_prefix`` (``tertulia:<prefix>:<db>:...``), which names their
keys apart too (``tertulia:<prefix>:online:...``); keys are otherwise apart by database.
(Until 2026-12-06 the channels were ``tertulia:conv:<id>`` and ``tertulia:control``.)

Presence is a sorted set of socket ids per participant and one of present participants per
conversation, each member scored with the time its lease ends: a process renews the leases
of its own sockets four times per lease (``presence_lease``, 60 s by default), so the sockets
of a process that died without closing them (SIGKILL, a lost machine) lapse within a lease:
its people show offline again, one of the processes with subscribers in their conversation
tells its chat they left (``Broker.lapsed``), and the next socket of theirs counts as their
first. A socket Redis lost (restarted empty) is counted again at the next renewal. Times are
Redis's own clock (``TIME`` in the scripts), the same for every process. (Until 2026-12-05
these were plain sets that lasted a day, under other key names.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from functools import partial
from typing import Any

import orjson
import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import parse_url
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from tertulia.errors import BrokerUnavailable, describe
from tertulia.realtime.broker import Broker, Deliver, Event, Missed, Since, Unsubscribe
from tertulia.realtime.ordering import SeqOrder
from tertulia.realtime.outages import OutageLog

log = structlog.get_logger(__name__)
PREFIX = "tertulia"
PRESENCE_LEASE = 60.0
"""Seconds a socket counts as present after its process last renewed it (by default)."""
RENEWALS_PER_LEASE = 4
"""A process renews its sockets' leases this many times per lease."""
RENEW_BATCH = 500
"""Sockets renewed by one script (Redis runs one at a time: a long one holds the others)."""
NOTICE_WAIT_FIRST = 0.2
NOTICE_WAIT_MAX = 5.0
"""Seconds between tries of a notice of failed publishes (doubling from the first)."""
READ_BACKOFF = EqualJitterBackoff(cap=5.0, base=0.25)
"""Seconds between the reader's tries while Redis is unreachable: doubling from 0.25-0.5 to
2.5-5 (half of it random, so that processes cut off together do not retry in step)."""
CLOCK_SKEW = 5.0
"""Seconds by which the clocks of two processes may disagree (NTP keeps them far closer):
a subscriber that started up to this long after another process's failed publish is told of
it too. Being told needlessly costs a socket one reconnect; missing a frame costs more."""

REDIS_CONNECTIONS = 50
"""Connections a process's broker holds to Redis at most (its subscription's one among
them). One more command waits for one to be free, :data:`POOL_WAIT` seconds at most:
redis-py's plain pool failed it at once past its 100 (``MaxConnectionsError``), taken for
Redis down, when a burst of sockets closed together (soak QA: 600 at once; 50 of 60 people
stayed online for minutes), and kept the 100 open for good."""
POOL_WAIT = 5.0
"""Seconds a command waits for a free connection before it counts as Redis down."""
COMMAND_TIMEOUT = 5.0
"""Seconds a command (or a connection to Redis) may take before it counts as Redis down:
a Redis that answers slowly, or holds the connection without answering (a partition), held
the request or the socket's frame that waited for it as long (chaos QA: a message posted in
14.5 s). The subscription's reader waits on its own terms (``get_message``'s timeout)."""

# KEYS: the participant's sockets, the conversation's present participants.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
"""
_JOIN = (
    _NOW
    + """
local ends = now + tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], ends, ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])))
redis.call('ZADD', KEYS[2], 'GT', ends, ARGV[2])
redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(ARGV[3])))
return redis.call('ZCARD', KEYS[1])
"""
)
_LEAVE = (
    _NOW
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local left = redis.call('ZCARD', KEYS[1])
if left == 0 then redis.call('ZREM', KEYS[2], ARGV[2]) end
return left
"""
)
# Renew the leases of sockets still there (one that left meanwhile is not brought back),
# and of their participants (GT: never shorten another socket's). Returns the
# (1-based) numbers of the sockets not found (Redis lost them: flushed, restarted empty).
_RENEW = (
    _NOW
    + """
local ends = now + tonumber(ARGV[1])
local missing = {}
for i = 1, #KEYS, 2 do
  if redis.call('ZSCORE', KEYS[i], ARGV[i + 1]) then
    redis.call('ZADD', KEYS[i], ends, ARGV[i + 1])
    redis.call('EXPIRE', KEYS[i], math.ceil(tonumber(ARGV[1])))
    redis.call('ZADD', KEYS[i + 1], 'GT', ends, ARGV[i + 2])
    redis.call('EXPIRE', KEYS[i + 1], math.ceil(tonumber(ARGV[1])))
  else
    table.insert(missing, (i + 1) / 2)
  end
end
return missing
"""
)
# The participants whose lease lapsed in the given conversations, taken out: each is
# returned to one process only, which tells its chat (Broker.lapsed). Flat pairs: the
# (1-based) number of the key, the participant.
_SWEEP = (
    _NOW
    + """
local lapsed = {}
for i = 1, #KEYS do
  for _, who in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', now)) do
    redis.call('ZREM', KEYS[i], who)
    table.insert(lapsed, i)
    table.insert(lapsed, who)
  end
end
return lapsed
"""
)
_PRESENT = (
    _NOW
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""
)


@contextlib.contextmanager
def _outage() -> Iterator[None]:
    """Redis out of reach (refused, cut, timed out) as :class:`BrokerUnavailable`: 503 to a
    request, 1013 to a socket, one warning in the log; any other error as it is."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise BrokerUnavailable(describe(exc)) from exc
    except RuntimeError as exc:
        # A command written to a connection Redis's going closed under it: uvloop's
        # "unable to perform operation on <TCPTransport closed=True ...>; the handler is
        # closed" (chaos QA: a socket opened while Redis was down got 1011 and a traceback
        # instead of 1013 and a warning, one in three).
        if "closed" not in str(exc):
            raise
        raise BrokerUnavailable(describe(exc)) from exc


def _shared(failure: BaseException) -> Exception:
    """What the others waiting for a subscription get when the one that asked for it
    failed: an outage stays one (:class:`BrokerUnavailable`), anything else is an error."""
    if isinstance(failure, BrokerUnavailable):
        return BrokerUnavailable(f"could not subscribe: {failure.reason}")
    return RuntimeError(f"could not subscribe: {failure!r}")


def _events(data: bytes) -> list[Event]:
    # [audience, frame, seq, supersedes, close, copy, participants]: the last four may be
    # missing (older processes), and fields after them are ignored (newer ones).
    return [
        Event(
            frozenset(audience),
            frame,
            seq,
            bool(rest and rest[0]),
            rest[1] if len(rest) > 1 and isinstance(rest[1], int) else None,
            rest[2] if len(rest) > 2 and isinstance(rest[2], int) else None,
            rest[3] if len(rest) > 3 and isinstance(rest[3], int) else None,
        )
        for audience, frame, seq, *rest in orjson.loads(data)
    ]


class RedisBroker(Broker):
    """Pub/sub and presence on Redis (``redis://host:port/db``), under names of its own
    installation: those of its database number and ``prefix`` (the ``broker_prefix``
    setting, if any)."""

    def __init__(
        self, url: str, *, presence_lease: float = PRESENCE_LEASE, prefix: str | None = None
    ) -> None:
        self._url = url
        self._keyspace = f"{PREFIX}:{prefix}" if prefix else PREFIX
        database = parse_url(url).get("db") or 0
        self._conversations = f"{self._keyspace}:{database}:conv:"
        self.control = f"{self._keyspace}:{database}:control"
        """The channel of notices between this installation's processes."""
        self._lease = presence_lease
        self._redis: Redis | None = None
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._local: defaultdict[str, dict[int, Deliver]] = defaultdict(dict)
        self._order: dict[str, SeqOrder] = {}  # channel -> its batches put in seq order
        # channel -> token -> (missed callback, wall time the subscriber started)
        self._missed: defaultdict[str, dict[int, tuple[Missed, float]]] = defaultdict(dict)
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._next = 0
        self._id = f"{os.getpid()}:{os.urandom(6).hex()}"
        self._unsent: dict[str, float] = {}  # channel -> wall time of its last failed publish
        self._notifier: asyncio.Task[None] | None = None
        self._published = asyncio.Event()  # a publish went through: Redis takes them again
        self._closed = False
        self._sockets: dict[str, tuple[str, str]] = {}  # this process's: id -> (channel, who)
        self._renewer: asyncio.Task[None] | None = None
        self._reading = OutageLog(
            log, failing="redis broker read failed; retrying", back="redis broker is back"
        )
        self._renewing = OutageLog(
            log,
            failing="renewing the presence of this process's sockets failed",
            back="renewing the presence of this process's sockets works again",
            level="warning",
        )

    def _channel(self, channel: str) -> str:
        return f"{self._conversations}{channel}"

    async def start(self) -> None:
        pool = BlockingConnectionPool.from_url(
            self._url,
            max_connections=REDIS_CONNECTIONS,
            timeout=POOL_WAIT,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=COMMAND_TIMEOUT,
        )
        self._redis = Redis.from_pool(pool)  # (closed with it)
        await self._redis.ping()
        self._pubsub = self._redis.pubsub()
        # The control channel (notices of failed publishes) also keeps the connection in
        # subscribed mode for the reader.
        await self._pubsub.subscribe(self.control)
        self._reader = asyncio.create_task(self._read(), name="redis-broker-reader")
        self._renewer = asyncio.create_task(self._renew(), name="redis-broker-presence")

    async def close(self) -> None:
        self._closed = True
        if self._unsent:
            log.warning(
                "redis broker stops before telling the other processes of failed publishes",
                conversations=sorted(self._unsent),
            )
        for task in (self._notifier, self._reader, self._renewer):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        if self._redis is not None:
            await self._redis.aclose()

    async def ping(self) -> None:
        await self._client().ping()

    def _client(self) -> Redis:
        if self._redis is None:
            raise RuntimeError("RedisBroker.start() was not called")
        return self._redis

    async def _read(self) -> None:
        """Hand out what Redis delivers. When the connection breaks, every local subscriber
        is told (at each failed try: one that subscribed between two is told too), and the
        reader tries again with backoff (``READ_BACKOFF``); redis-py connects again and
        subscribes again. The outage is logged once, then every minute while it lasts,
        and once when Redis answers again (:class:`OutageLog`)."""
        assert self._pubsub is not None
        # (until closed, not ``while True``: redis-py may swallow the cancellation that
        # close() sends, a read's own timeout taking it as its own, and the loop went on
        # for ever, close() waiting for it: seen as a test hung for 60 s under load)
        while not self._closed:
            try:
                message: dict[str, Any] | None = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as failure:
                self._reading.failed(failure)
                self._lost(list(self._missed))
                await asyncio.sleep(READ_BACKOFF.compute(self._reading.failures))
                continue
            self._reading.succeeded()
            if message is None:
                continue
            name = message["channel"].decode()
            kind = message["type"]
            if kind == "subscribe":
                future = self._confirmed.pop(name, None)
                if future is not None and not future.done():
                    future.set_result(None)
            elif kind == "message":
                if name == self.control:
                    self._notice(message["data"])
                    continue
                channel = name.removeprefix(self._conversations)
                order = self._order.get(channel)
                if order is not None:  # (None: nobody here listens any more)
                    order.add(_events(message["data"]))

    def _hand_on(self, channel: str, events: list[Event]) -> None:
        """Give a channel's batch, in seq order, to each of its local subscribers."""
        for deliver in list(self._local.get(channel, {}).values()):
            for event in events:
                try:
                    deliver(event)
                except Exception:
                    log.exception("subscriber failed", conversation_id=channel)

    def _gap(self, channel: str, missing: int) -> None:
        """A seq of the channel did not come in time (its process died between its commit
        and its publish, say): its subscribers catch up from the database."""
        log.warning(
            "a message's event never came; the conversation's sockets resume from the database",
            conversation_id=channel,
            seq=missing,
        )
        self._lost([channel], forget=False)

    def _lost(
        self, channels: list[str], before: float | None = None, *, forget: bool = True
    ) -> None:
        """Tell the local subscribers of ``channels`` that events may not have reached them
        (only those that started before ``before``, a wall time, when given); the order of
        each channel's seqs starts again (``forget``), since some may never come."""
        for channel in channels:
            order = self._order.get(channel) if forget else None
            if order is not None:
                order.forget()
            for missed, since in list(self._missed.get(channel, {}).values()):
                if before is not None and since > before:
                    continue
                try:
                    missed()
                except Exception:
                    log.exception("subscriber failed", conversation_id=channel)

    def _notice(self, data: bytes) -> None:
        """Another process's publishes failed: its channels' subscribers here that started
        before the failure may have missed them."""
        try:
            notice = orjson.loads(data)
            sender, failed = notice["from"], notice["missed"]
            channels = [(str(channel), float(when)) for channel, when in failed.items()]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            log.warning("redis broker ignored a malformed control message", data=data[:200])
            return
        if sender == self._id:
            return  # this process told its own subscribers when the publish failed
        for channel, when in channels:
            self._lost([channel], before=when + CLOCK_SKEW)

    async def publish(self, channel: str, events: list[Event]) -> None:
        payload = orjson.dumps(
            [
                [sorted(e.audience), e.frame, e.seq, e.supersedes, e.close, e.copy, e.participants]
                for e in events
            ]
        )
        try:
            with _outage():
                await self._client().publish(self._channel(channel), payload)
        except Exception:
            self._lost([channel])
            self._unsent[channel] = time.time()
            if not self._closed and (self._notifier is None or self._notifier.done()):
                self._notifier = asyncio.create_task(
                    self._tell_others(), name="redis-broker-notifier"
                )
            raise
        if self._unsent:
            self._published.set()  # the notifier need not wait out its backoff

    async def _tell_others(self) -> None:
        """Tell the other processes which channels' publishes failed here, once Redis takes
        a publish again (retried with backoff, for as long as this process lives; a wait
        ends early when another publish went through meanwhile)."""

        async def pause(seconds: float) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._published.wait(), seconds)

        telling = OutageLog(
            log,
            failing="redis broker could not tell the other processes of failed publishes; retrying",
            back="redis broker told the other processes of failed publishes",
            level="warning",
        )

        def waiting(state: RetryCallState) -> None:
            assert state.outcome is not None
            failure = state.outcome.exception()
            assert failure is not None
            telling.failed(failure)

        while self._unsent:
            notice = dict(self._unsent)
            payload = orjson.dumps({"from": self._id, "missed": notice})
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(Exception),
                wait=wait_exponential(multiplier=NOTICE_WAIT_FIRST, max=NOTICE_WAIT_MAX),
                before_sleep=waiting,
                sleep=pause,
                reraise=True,
            ):
                with attempt:
                    self._published.clear()  # (set by any publish that goes through now on)
                    await self._client().publish(self.control, payload)
            telling.succeeded()
            for channel, when in notice.items():
                if self._unsent.get(channel) == when:  # (not failed again since)
                    del self._unsent[channel]

    async def subscribe(
        self,
        channel: str,
        deliver: Deliver,
        missed: Missed | None = None,
        *,
        since: Since | None = None,
    ) -> Unsubscribe:
        assert self._pubsub is not None
        self._next += 1
        token = self._next
        first = not self._local.get(channel)
        self._local[channel][token] = deliver
        if channel not in self._order:
            self._order[channel] = SeqOrder(
                partial(self._hand_on, channel),
                partial(self._gap, channel),
                started=since is None,
            )
        if missed is not None:
            self._missed[channel][token] = (missed, time.time())
        name = self._channel(channel)

        def unsubscribe() -> None:
            subscribers = self._local.get(channel)
            if subscribers is None:
                return
            subscribers.pop(token, None)
            told = self._missed.get(channel)
            if told is not None:
                told.pop(token, None)
                if not told:
                    del self._missed[channel]
            if not subscribers:
                del self._local[channel]
                order = self._order.pop(channel, None)
                if order is not None:
                    order.close()
                task = asyncio.ensure_future(self._unsubscribe(channel))
                task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

        # Every subscriber waits for Redis's confirmation, also one that comes while the
        # channel's first is still waiting for it.
        future = self._confirmed.get(name)
        asked = first and future is None
        if asked:
            future = asyncio.get_running_loop().create_future()
            self._confirmed[name] = future
        sent = False
        try:
            with _outage():
                if asked:
                    await self._pubsub.subscribe(name)
                    sent = True
                if future is not None:
                    # (No confirmation within COMMAND_TIMEOUT: TimeoutError, an outage too;
                    # well before a client's own watchdog takes a silent socket for dead.)
                    await asyncio.wait_for(asyncio.shield(future), COMMAND_TIMEOUT)
            order = self._order.get(channel)
            if since is not None and order is not None and not order.started:
                # (read once subscribed: every seq above it comes through the channel)
                order.start(await since())
        except BaseException as failure:
            # A subscriber cancelled (its client left) once its subscription was sent leaves
            # the confirmation to the reader: the others waiting for it are not failed.
            cancelled_after_sending = sent and isinstance(failure, asyncio.CancelledError)
            if asked and future is not None and not cancelled_after_sending:
                # (Redis is unreachable, say): those waiting with this one fail too, and the
                # next subscriber asks again.
                if self._confirmed.get(name) is future:
                    del self._confirmed[name]
                if not future.done():
                    future.set_exception(_shared(failure))
                    future.exception()  # (retrieved: nobody else may be waiting)
            unsubscribe()
            raise
        return unsubscribe

    async def _unsubscribe(self, channel: str) -> None:
        """Unsubscribe from a channel nobody here listens to, unless somebody has started to
        again since it was asked (a page reloaded): that one's subscription was sent already,
        and an unsubscription sent after it would leave it deaf."""
        if self._pubsub is not None and not self._local.get(channel):
            await self._pubsub.unsubscribe(self._channel(channel))

    def _keys(self, channel: str, participant_id: str) -> list[str]:
        return [f"{self._keyspace}:socket-leases:{channel}:{participant_id}", self._online(channel)]

    def _online(self, channel: str) -> str:
        """The key of a conversation's present participants."""
        return f"{self._keyspace}:online:{channel}"

    async def join(self, channel: str, participant_id: str, socket_id: str) -> bool:
        self._sockets[socket_id] = (channel, participant_id)
        with _outage():
            count = await self._client().eval(
                _JOIN,
                2,
                *self._keys(channel, participant_id),
                socket_id,
                participant_id,
                self._lease,
            )
        return int(count) == 1

    async def leave(self, channel: str, participant_id: str, socket_id: str) -> bool:
        self._sockets.pop(socket_id, None)
        with _outage():
            left = await self._client().eval(
                _LEAVE, 2, *self._keys(channel, participant_id), socket_id, participant_id
            )
        return int(left) == 0

    async def present(self, channel: str) -> set[str]:
        with _outage():
            members = await self._client().eval(_PRESENT, 1, self._online(channel))
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}

    async def _renew(self) -> None:
        """``RENEWALS_PER_LEASE`` times per lease: renew the leases of this process's sockets
        (counting again those Redis lost), then look for the participants whose lease
        lapsed in the conversations this process has sockets in. A batch per script; what
        fails is tried again at the next turn (a lease outlasts several); a failure is
        logged as an outage (:class:`OutageLog`), not at every turn."""
        while not self._closed:  # (as in _read: a swallowed cancellation ends it too)
            await asyncio.sleep(self._lease / RENEWALS_PER_LEASE)
            try:
                await self._renew_sockets()
                await self._sweep()
            except Exception as failure:
                self._renewing.failed(failure)
            else:
                self._renewing.succeeded()

    async def _renew_sockets(self) -> None:
        sockets = list(self._sockets.items())
        for start in range(0, len(sockets), RENEW_BATCH):
            batch = sockets[start : start + RENEW_BATCH]
            keys: list[str] = []
            args: list[Any] = [self._lease]
            for socket_id, (channel, participant_id) in batch:
                keys += self._keys(channel, participant_id)
                args += [socket_id, participant_id]
            missing = await self._client().eval(_RENEW, len(keys), *keys, *args)
            for number in missing:
                socket_id, (channel, participant_id) = batch[int(number) - 1]
                if socket_id in self._sockets:  # (not left meanwhile)
                    log.warning(
                        "redis had lost a socket's presence; counted again",
                        conversation_id=channel,
                        participant_id=participant_id,
                    )
                    await self.join(channel, participant_id, socket_id)

    async def _sweep(self) -> None:
        channels = [c for c in self._local if self._local[c]]
        for start in range(0, len(channels), RENEW_BATCH):
            batch = channels[start : start + RENEW_BATCH]
            keys = [self._online(channel) for channel in batch]
            found = await self._client().eval(_SWEEP, len(keys), *keys)
            for number, who in zip(found[::2], found[1::2], strict=True):
                channel = batch[int(number) - 1]
                participant_id = who.decode() if isinstance(who, bytes) else str(who)
                log.info(
                    "presence lapsed (its process ended without closing the socket)",
                    conversation_id=channel,
                    participant_id=participant_id,
                )
                if self.lapsed is not None:
                    self.lapsed(channel, participant_id)
