"""Runs internal bots: durable, ordered, time-limited, retried deliveries.

Guarantees (see docs/bots.md):

- Every delivery is a row of the ``deliveries`` outbox, written in the same transaction as
  the message or status change that causes it. Nothing is delivered before that commit, and
  nothing recorded is forgotten: pending rows are picked up again when the server starts.
- One process runs a delivery at a time. The row is claimed by the process that records it
  (its :attr:`BotRunner.owner`) for ``lease`` seconds, and the claim is renewed while the
  process runs. Another process takes over a delivery only once its claim has lapsed (its
  process died); one that stops cleanly gives its claims up, for the others to take at
  once. A process that is the only one (``exclusive``: the in-memory broker) takes every
  pending delivery when it starts, without waiting for its predecessor's claims to lapse.
  With several processes, a bot participant's new delivery is claimed for the process that
  holds its pending ones (:meth:`BotRunner.holders`), which is woken through the host
  (:meth:`BotHost.wake`): one bot in one conversation runs in one process at a time.
- Deliveries to one bot participant (one bot in one conversation) run one at a time, in
  the order they were recorded. Different conversations and bots run concurrently, at most
  ``spec.concurrency`` at once per bot spec (by default :data:`SYNC_CONCURRENCY` for a bot
  whose ``receive_message`` is a plain method, :data:`ASYNC_CONCURRENCY` for a coroutine).
- A synchronous bot runs in a worker thread (:mod:`tertulia.bots.threads`), an ``async``
  one on the event loop, each call limited to :func:`call_timeout` seconds. A failure or
  timeout is retried ``spec.retries`` times with exponential backoff (the first attempt
  directly, the retries with tenacity), then recorded as failed and logged with ids. A
  :class:`~tertulia.errors.ConfigurationError` (the bot's constructor finds its settings
  cannot work) is not retried, nor is a send the server refuses by the chat's rules (an
  invalid message or command, a quote of nothing): each would fail the same way.
  A synchronous call that overruns cannot be killed: its thread keeps its concurrency slot
  until it really returns, so a hung bot can only ever block itself.
- Answers are idempotent across retries: within one delivery the n-th message a bot sends
  gets a ``local_id`` derived from the delivery and n, so a retried delivery that answers
  again is recognised as a duplicate and shown once.
- Stopping waits briefly for messages bots are storing, then refuses further sends
  (:class:`BotStopped`): a thread that outlives the server stores nothing late. Its
  delivery is still pending and runs again at the next start.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import inspect
import os
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
import uuid_utils
from tenacity import (
    AsyncRetrying,
    Future,
    RetryCallState,
    RetryError,
    stop_after_attempt,
    wait_exponential_jitter,
)

from tertulia.bots.base import BotFailed, BotServices, ChatMessage, ConversationInfo
from tertulia.bots.threads import DaemonThreads
from tertulia.domain.times import utcnow
from tertulia.errors import ConfigurationError, ConversationGone, TertuliaError
from tertulia.metrics import BOT_CALL_SECONDS, BOT_CALLS, BOT_DELIVERIES_FAILED
from tertulia.settings import BotSpec
from tertulia.storage import deliveries as outbox
from tertulia.storage.database import Connection, Database, json_dumps
from tertulia.storage.deliveries import Claim, Delivery, NewDelivery, Outcome

log = structlog.get_logger(__name__)
BATCH = 50
SYNC_CONCURRENCY = 4  # each call of a plain-method bot holds a worker thread
ASYNC_CONCURRENCY = 64  # a coroutine bot's calls only wait on the loop
STATE_CACHE = 10_000  # bot states kept in memory (single process only)
OUTCOME_DELAY = 0.01
"""Seconds outcomes wait, to be written together with other bots' (not on anybody's path)."""
CLOSE_GRACE = 2.0
"""Seconds :meth:`BotRunner.close` waits for bots' messages being stored."""
WORKER_RESTART = 1.0
"""Seconds before a bot's worker starts again after a failure of the server's own."""
DEFAULT_TIMEOUT = 30.0
"""Seconds one call may take when neither the spec nor the class says."""


@dataclass(frozen=True, slots=True)
class BotContext:
    """What the host tells the runner about a bot participant before a call."""

    bot_name: str
    participants: list[dict[str, str]]
    services: BotServices | None = None


class BotHost(Protocol):
    """The chat side of the runner (implemented by :mod:`tertulia.chats`)."""

    async def bot_context(self, conversation_id: str, bot_participant_id: str) -> BotContext | None:
        """The bot's name and its conversation's participants, or None if gone."""

    async def send_from_bot(
        self, conversation_id: str, bot_participant_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Store a message sent by the bot; its representation (for a duplicate, the
        message stored the first time)."""

    def bot_working(self, conversation_id: str, bot_participant_id: str, working: bool) -> None:
        """A bot started or finished handling a delivery."""

    def wake(self, owner: str, bot_participant_ids: set[str]) -> None:
        """Tell the runner ``owner`` (another process's) that these bot participants have
        new deliveries claimed for it."""

    async def delivery_failed(self, delivery: Delivery) -> None:
        """A delivery failed for good, after its retries (an external bot's trigger, its
        program down: it is to be called back)."""


class BotTimeout(BotFailed):
    """A bot call took longer than its spec allows."""


class BotStopped(BotFailed):
    """A bot tried to send while the runner was stopping; nothing was stored."""


class BotCancelled(BotFailed):
    """A bot's call ended in ``CancelledError`` of its own (it awaited something cancelled
    elsewhere), not because the runner stopped it: a failure like any other."""


def _cancelling() -> bool:
    """Whether the current task has been asked to stop (not merely met a cancelled future)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _not_json(state: dict[Any, Any]) -> str | None:
    """Why a bot's state cannot be stored (JSON values only, as docs/bots.md says), naming
    the entry; None when it can."""
    try:
        json_dumps(state)
    except (TypeError, ValueError):
        pass
    else:
        return None
    said = "the bot's state cannot be stored as JSON"
    for key, value in state.items():
        if not isinstance(key, str):
            return f"{said}: its key {key!r} is not a text"
        try:
            json_dumps(value)
        except (TypeError, ValueError):
            inside = " with something inside it JSON cannot hold" if _container(value) else ""
            return f"{said}: state[{key!r}] holds a {type(value).__name__}{inside}"
    return said


def _container(value: object) -> bool:
    """A JSON array or object (its entries may be what JSON cannot hold)."""
    return isinstance(value, dict | list | tuple)


_KINDS: dict[tuple[type, str], str | None] = {}


def _method_kind(cls: type, method: str) -> str | None:
    """``"async"``, ``"sync"``, or None when the class lacks the method (cached per class)."""
    key = (cls, method)
    if key not in _KINDS:
        target = getattr(cls, method, None)
        kind = None if target is None else "sync"
        if target is not None and inspect.iscoroutinefunction(target):
            kind = "async"
        _KINDS[key] = kind
    return _KINDS[key]


def runs_on_loop(cls: type) -> bool:
    """Whether a bot class's plain methods are called on the event loop, not in a thread.

    A class opts in with ``runs_on_loop = True`` when its methods never block (no I/O,
    bounded work): the worker-thread hop and its waits for the interpreter lock are gone,
    but its ``send`` returns a task instead of the stored message (the runner waits for
    those tasks before it counts the delivery done).
    """
    return getattr(cls, "runs_on_loop", False) is True


def concurrency(spec: BotSpec, cls: type) -> int:
    """How many deliveries of a bot spec run at once (its setting, or the default by kind)."""
    if spec.concurrency is not None:
        return spec.concurrency
    receive = getattr(cls, "receive_message", None)
    if inspect.iscoroutinefunction(receive) or runs_on_loop(cls):
        return ASYNC_CONCURRENCY
    return SYNC_CONCURRENCY


def call_timeout(spec: BotSpec, cls: type) -> float:
    """Seconds one call of a bot may take: its spec's ``timeout``; else what the class asks
    for with a classmethod ``call_timeout(kwargs)`` (a bot whose own requests have time
    limits and retries knows how long they may take in all); else :data:`DEFAULT_TIMEOUT`."""
    if spec.timeout is not None:
        return spec.timeout
    own = getattr(cls, "call_timeout", None)
    if callable(own):
        try:
            asked = float(own(dict(spec.kwargs)))
        except (TypeError, ValueError):
            asked = 0.0  # (bad kwargs: the bot's own constructor says so, at its first call)
        if asked > 0:
            return asked
    return DEFAULT_TIMEOUT


def _delivery_log(delivery: Delivery, bot: str | None = None) -> Any:
    """A logger bound to a delivery's ids (made only when there is something to log): its
    row's key, and the ``delivery_id`` its bot was given, for the bot's author to find."""
    bound = log.bind(
        conversation_id=delivery.conversation_id,
        participant_id=delivery.bot_participant_id,
        delivery=delivery.pk,
        delivery_id=delivery_id(delivery.bot_participant_id, delivery.pk),
    )
    return bound.bind(bot=bot) if bot is not None else bound


def new_owner() -> str:
    """A name for this runner's claims, unique to it, and telling people where it runs."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


_DELIVERY_NAMESPACE = uuid_utils.UUID("5b0e7f53-3a55-4c1e-9a63-8f0d27a1c6d4")


def delivery_id(bot_participant_id: str, delivery_pk: int) -> str:
    """A delivery's id as its bot sees it (``conversation_info.delivery_id``, and a webhook's
    ``delivery_id``): a UUID string, the same on every retry, derived from the row's key
    (this database's counter, which an internal bot was given before while a webhook got
    this UUID: one id, of one type, for every bot)."""
    # (uuid_utils's uuid5, in Rust: the same UUID as the standard library's, in 0.7 µs
    # against its 4 to 8, once per delivery)
    return str(uuid_utils.uuid5(_DELIVERY_NAMESPACE, f"{bot_participant_id}:{delivery_pk}"))


def answer_local_id(delivery_pk: int, n: int) -> str:
    """The ``local_id`` of the n-th message a bot sends while handling a delivery."""
    return hashlib.sha256(f"tertulia-delivery:{delivery_pk}:{n}".encode()).hexdigest()[:32]


class BotRunner:
    """Runs the deliveries recorded in the outbox.

    Args:
        db: the database.
        bots: bot name -> (spec, class), validated at start-up.
        host: the chat side.
        poll_interval: how often to renew this runner's claims and look for deliveries
            to run that it was not told about: those whose process died, and its own whose
            wake-up was missed (an outcome that could not be written, say).
        lease: how long a claim lasts unless renewed (several polls' worth); after a
            crash, the other processes take its deliveries over once it has lapsed.
        exclusive: this is the only process on the database: at start, every pending
            delivery is its own, whoever claimed it.
        backoff_initial: seconds before the first retry (plus up to as much again at
            random); each further retry waits twice as long.
        backoff_max: the longest wait between two attempts.
    """

    def __init__(
        self,
        db: Database,
        bots: dict[str, tuple[BotSpec, type]],
        host: BotHost,
        *,
        poll_interval: float = 5.0,
        lease: float = 30.0,
        exclusive: bool = False,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        cache_state: bool = False,
    ) -> None:
        if poll_interval <= 0 or lease <= 0:
            raise ValueError("the poll interval and the lease must be positive")
        self._db = db
        self._bots = bots
        self._host = host
        # Claims are renewed at least three times per lease: one missed round is no loss.
        self._poll_interval = min(poll_interval, lease / 3)
        self._lease = timedelta(seconds=lease)
        self.exclusive = exclusive
        self.owner = new_owner()
        self._backoff = (backoff_initial, backoff_max)
        self._slots = {
            name: asyncio.Semaphore(concurrency(spec, cls)) for name, (spec, cls) in bots.items()
        }
        self._timeouts = {name: call_timeout(spec, cls) for name, (spec, cls) in bots.items()}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()  # bots whose pending deliveries must be read back
        self._queued: dict[str, list[Delivery]] = {}  # handed over right after commit
        self._states: OrderedDict[str, dict[str, Any]] | None = (
            OrderedDict() if cache_state else None
        )
        self._poller: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._sends: set[asyncio.Task[Any]] = set()
        self._threads = DaemonThreads("bot")
        self._overrun: dict[str, int] = {}  # per bot spec: calls abandoned, still running
        # Outcomes not written yet (see _note), and per bot the highest delivery among them.
        self._outcomes: list[tuple[str, Outcome, dict[str, Any] | None]] = []
        self._unrecorded: dict[str, int] = {}
        self._flusher: asyncio.Task[None] | None = None

    def claim(self, now: datetime) -> Claim:
        """This runner's claim on deliveries it records at ``now``."""
        return Claim(self.owner, now + self._lease)

    async def record(
        self, conn: Connection, conversation_id: str, new: list[NewDelivery]
    ) -> tuple[list[Delivery], set[str]]:
        """Record a use case's deliveries in its transaction, each claimed by the process
        that will run it (this one, or the one already running that bot's: :meth:`holders`).

        Returns the recorded deliveries (for :meth:`hand_over` after the commit) and the
        bots whose older pending deliveries this process must read back (for :meth:`notify`,
        first: they run before the new ones).
        """
        now = utcnow()
        held: dict[str, Claim] | None = None
        read_back: set[str] = set()
        if not self.exclusive:  # (several processes: ask who runs the bots)
            bots = {d.bot_participant_id for d in new}
            held, read_back = await self.holders(conn, conversation_id, bots, now=now)
        recorded = await outbox.enqueue(conn, new, now=now, claim=self.claim(now), held=held)
        return recorded, read_back

    async def holders(
        self,
        conn: Connection,
        conversation_id: str,
        bot_participant_ids: set[str],
        *,
        now: datetime,
    ) -> tuple[dict[str, Claim], set[str]]:
        """In the transaction recording new deliveries (several processes only): who runs
        these bot participants' deliveries, so that the new ones run after the others, in
        order, in one process.

        Returns the other processes' live claims (the new deliveries go to them), and the
        bots whose pending deliveries this process must read back before it runs the new
        ones (:meth:`notify`):

        - those nobody held (a process died, or stopped and gave them up), which it claims
          here;
        - those it holds itself: another process may have recorded some for it whose
          wake-up has not come yet. Handed over without reading them back, the new ones ran
          first, and the older ones once woken, after them (CI, under load), or at the next
          poll, since a read skips what is older than the last delivery run.

        The caller holds the conversation's row (a use case takes it first, tertulia.chats),
        so that the recording transactions of one conversation take turns: what another
        process recorded before is committed, and read back.
        """
        held: dict[str, Claim] = {}
        read_back: set[str] = set()
        for bot_id in bot_participant_ids:
            claim = await outbox.holder(conn, bot_id, now=now)
            if claim is not None and claim.owner != self.owner:
                held[bot_id] = claim
            elif claim is not None:
                read_back.add(bot_id)
            elif count := await outbox.claim_bot_lapsed(conn, bot_id, self.claim(now), now=now):
                read_back.add(bot_id)
                # (Rare: what a process left, stopping or dying. Logged in the transaction:
                # should its commit fail, which is logged too, nothing was taken.)
                log.info(
                    "deliveries taken over",
                    owner=self.owner,
                    conversation_id=conversation_id,
                    participant_id=bot_id,
                    deliveries=count,
                )
        return held, read_back

    async def start(self) -> None:
        """Resume the pending deliveries a previous run left behind: all of them when this
        process is the only one, else those whose claims have lapsed."""
        self._loop = asyncio.get_running_loop()
        await self._resume(everything=self.exclusive)
        self._poller = asyncio.create_task(self._poll(), name="bot-runner-poll")

    async def close(self) -> None:
        """Stop the workers; pending deliveries stay recorded for the next start."""
        self._closing = True
        tasks = list(self._workers.values())
        if self._poller is not None:
            tasks.append(self._poller)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # A bot thread that outlived its worker may be storing a message: let that finish
        # (briefly) so no transaction is cut in half, then refuse any further sends.
        if self._sends:
            await asyncio.wait(set(self._sends), timeout=CLOSE_GRACE)
        for task in list(self._sends):
            task.cancel()
        await asyncio.gather(*self._sends, return_exceptions=True)
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._flush()
        try:
            async with self._db.write() as conn:
                released = await outbox.release(conn, self.owner)
        except Exception:
            # They lapse instead: the other processes take them a lease later.
            log.exception("giving up delivery claims failed", owner=self.owner)
        else:
            # A line per bot participant: few (those with a call under way, or queued).
            for (conversation_id, bot_id), count in released.items():
                log.info(
                    "delivery claims given up",
                    owner=self.owner,
                    conversation_id=conversation_id,
                    participant_id=bot_id,
                    deliveries=count,
                )

    def notify(self, bot_participant_ids: set[str]) -> None:
        """These bot participants may have pending deliveries: read them back and run them."""
        for bot_id in bot_participant_ids:
            self._dirty.add(bot_id)
            self._ensure_worker(bot_id)

    def hand_over(self, recorded: list[Delivery]) -> None:
        """Deliveries this process just committed: run its own without reading them back,
        and wake the processes that the others were claimed for (:meth:`holders`)."""
        mine = recorded
        if not self.exclusive:
            mine = []
            others: dict[str, set[str]] = {}
            for delivery in recorded:
                owner = delivery.owner
                if owner is None or owner == self.owner:
                    mine.append(delivery)
                else:
                    others.setdefault(owner, set()).add(delivery.bot_participant_id)
            for owner, bot_ids in others.items():
                self._host.wake(owner, bot_ids)
        for delivery in mine:
            self._queued.setdefault(delivery.bot_participant_id, []).append(delivery)
        for bot_id in {d.bot_participant_id for d in mine}:
            self._ensure_worker(bot_id)

    def _ensure_worker(self, bot_id: str) -> None:
        if bot_id not in self._workers and not self._closing:
            self._workers[bot_id] = asyncio.create_task(self._work(bot_id), name=f"bot-{bot_id}")

    async def idle(self) -> None:
        """Wait until no delivery is running or queued in this process (for tests and drains)."""
        while self._workers or self._flusher is not None:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)
            if self._flusher is not None:
                await asyncio.gather(self._flusher, return_exceptions=True)

    async def _resume(self, *, everything: bool = False) -> None:
        """Renew this runner's claims, claim the deliveries nobody holds (or, with
        ``everything``, all pending ones), and run what it holds."""
        now = utcnow()
        claim = self.claim(now)
        async with self._db.write() as conn:
            renewed = await outbox.renew(conn, claim)
            taken = await outbox.claim_lapsed(conn, claim, now=now, everything=everything)
        if taken:
            log.info("deliveries taken over", owner=self.owner, bots=len(taken))
        self.notify(renewed | taken)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            # (a cancellation that a library the poll awaits took for its own timeout's let
            # the loop go on, and close() wait for it for ever)
            if self._closing:
                return
            try:
                await self._resume()
            except Exception:
                log.exception("polling the outbox failed", owner=self.owner)

    async def _next_batch(self, bot_id: str) -> list[Delivery] | None:
        """The bot's next deliveries in order: read back when asked to, else those handed
        over; None when there is nothing left."""
        if bot_id not in self._dirty:
            return self._queued.pop(bot_id, None)
        self._dirty.discard(bot_id)
        # Deliveries already run whose outcomes are not written yet are not read again. In
        # the query: filtered afterwards, a full read of them would mark the bot dirty again
        # and again, and SQLite's reads never let the outcomes' writer run in between. The
        # count is taken before the query, which may still see as pending a delivery whose
        # outcome is written (and the count cleared) while it runs.
        done = self._unrecorded.get(bot_id, 0)
        async with self._db.read() as conn:
            batch = await outbox.pending_for(
                conn, bot_id, owner=self.owner, limit=BATCH, after=done
            )
        if len(batch) == BATCH:
            self._dirty.add(bot_id)
        if batch:
            # What was handed over meanwhile and is already in this batch runs once.
            later = [d for d in self._queued.pop(bot_id, []) if d.pk > batch[-1].pk]
            if later:
                self._queued[bot_id] = later
        return batch

    async def _work(self, bot_id: str) -> None:
        """Run a bot participant's deliveries one at a time, in order, until none is left."""
        done_upto = 0
        try:
            while (batch := await self._next_batch(bot_id)) is not None:
                for delivery in batch:
                    if delivery.pk <= done_upto:
                        continue
                    outcome, state = await self._run(delivery)
                    done_upto = delivery.pk
                    await self._note(bot_id, outcome, state)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Not the bot's failure (those are outcomes) but the server's: the database,
            # say. What this worker had not finished is still pending; read it back first
            # (dirty), so that it keeps its place before what is handed over later, and
            # start again after a pause.
            log.exception("bot worker failed", participant_id=bot_id)
            self._dirty.add(bot_id)
            self._require_loop().call_later(WORKER_RESTART, self._ensure_worker, bot_id)
        finally:
            self._workers.pop(bot_id, None)

    async def _note(self, bot_id: str, outcome: Outcome, state: dict[str, Any] | None) -> None:
        """Keep an outcome for the next write, which gathers every bot's (one transaction).

        Outcomes are written after the bot's answers (stored when the bot sends them) and
        a moment after the call: a crash before that write only means the delivery runs
        again at the next start, and its answers are recognised as duplicates. Until then
        this process does not run it again (``_unrecorded``). A changed state is written
        at once when states are not cached here (the next call reads it back).
        """
        self._outcomes.append((bot_id, outcome, state))
        self._unrecorded[bot_id] = outcome.pk
        if state is not None and self._states is None:
            await self._flush()
        elif self._flusher is None and not self._closing:
            self._flusher = asyncio.create_task(self._flush_soon(), name="bot-outcomes")

    async def _flush_soon(self) -> None:
        try:
            while True:
                await asyncio.sleep(OUTCOME_DELAY)
                await self._flush()
                if not self._outcomes or self._closing:
                    return  # (noted meanwhile: written in the next round)
        finally:
            self._flusher = None

    async def _flush(self) -> None:
        """Write the outcomes (and changed states) gathered so far."""
        pending, self._outcomes = self._outcomes, []
        if not pending:
            return
        try:
            async with self._db.write() as conn:
                for bot_id, _, state in pending:
                    if state is not None:
                        await outbox.save_state(conn, bot_id, state)
                await outbox.finish_many(conn, [o for _, o, _ in pending], now=utcnow())
        except Exception:
            # They stay pending in the database: the next poll or start runs them again.
            log.exception("recording delivery outcomes failed", deliveries=len(pending))
        for bot_id, outcome, _ in pending:
            if self._unrecorded.get(bot_id) == outcome.pk:
                del self._unrecorded[bot_id]

    async def _load_state(self, bot_id: str) -> dict[str, Any]:
        cache = self._states
        if cache is not None and bot_id in cache:
            cache.move_to_end(bot_id)
            return _copy(cache[bot_id])
        async with self._db.read() as conn:
            state = await outbox.load_state(conn, bot_id)
        if cache is not None:
            cache[bot_id] = _copy(state)
            while len(cache) > STATE_CACHE:
                cache.popitem(last=False)
        return state

    async def _run(self, delivery: Delivery) -> tuple[Outcome, dict[str, Any] | None]:
        """Run one delivery with its retries; returns its outcome and the bot's new state
        (None when unchanged)."""
        context = await self._host.bot_context(
            delivery.conversation_id, delivery.bot_participant_id
        )
        if context is None:  # (its conversation, or the bot in it, deleted)
            _delivery_log(delivery).info("conversation deleted; delivery dropped")
            return Outcome(
                delivery.pk, outbox.FAILED, delivery.attempts, "conversation deleted"
            ), None
        entry = self._bots.get(context.bot_name)
        if entry is None:
            _delivery_log(delivery).warning("delivery to an unknown bot dropped")
            return Outcome(delivery.pk, outbox.FAILED, delivery.attempts, "unknown bot"), None
        spec, cls = entry
        loaded = await self._load_state(delivery.bot_participant_id)
        before = _copy(loaded)
        state: dict[str, Any] | None = None
        attempts = delivery.attempts
        busy = delivery.kind == "message"  # status updates are no work people wait for
        if busy:
            self._host.bot_working(delivery.conversation_id, delivery.bot_participant_id, True)
        try:
            # The first attempt runs directly: tenacity's machinery costs more than a quick
            # bot's whole call, and most calls succeed. It works on the state just loaded (a
            # copy of its own); each retry on a new copy of the state as it was before.
            attempts += 1
            state, failure = await self._attempt(delivery, spec, cls, context, loaded, attempts)
            remaining = spec.retries + 1 - attempts
            if failure is not None and remaining > 0 and not _final(failure):
                attempts, state, failure = await self._retry(
                    delivery, spec, cls, context, before, attempts, remaining
                )
        finally:
            if busy:
                self._host.bot_working(delivery.conversation_id, delivery.bot_participant_id, False)
        if failure is not None and _gone(failure):
            # Deleted while the bot worked (`tertulia delete`), on any attempt: no more.
            _delivery_log(delivery, context.bot_name).info("conversation deleted; delivery dropped")
            return Outcome(delivery.pk, outbox.FAILED, attempts, "conversation deleted"), None
        if state is not None and state != before and (unfit := _not_json(state)) is not None:
            state, failure = None, Future(attempts)
            failure.set_exception(TypeError(unfit))
        if failure is not None:
            error = str(failure.exception())
            _delivery_log(delivery, context.bot_name).error(
                "bot delivery failed for good", attempts=attempts, error=error
            )
            BOT_DELIVERIES_FAILED.labels(context.bot_name).inc()
            await self._host.delivery_failed(delivery)
            return Outcome(delivery.pk, outbox.FAILED, attempts, error), None
        assert state is not None  # an attempt that succeeded leaves its state
        changed = state if state != before else None
        if changed is not None and self._states is not None:
            self._states[delivery.bot_participant_id] = _copy(changed)
        return Outcome(delivery.pk, outbox.DONE, attempts), changed

    async def _attempt(
        self,
        delivery: Delivery,
        spec: BotSpec,
        cls: type,
        context: BotContext,
        state: dict[str, Any],
        attempt: int,
    ) -> tuple[dict[str, Any] | None, Future | None]:
        """One call on ``state`` (this attempt's own: a call abandoned at its time limit may
        go on changing it in its thread). Returns the state the call left and None when it
        succeeded; else None and a settled future holding its error (what tenacity keeps of
        an attempt), after the failure was logged and recorded."""
        started = time.perf_counter()
        try:
            await self._call(delivery, spec, cls, context, state)
        except BaseException as raised:
            if isinstance(raised, asyncio.CancelledError) and _cancelling():
                raise  # this worker is being stopped
            if self._closing:
                # The server is stopping: the bot's sends are refused (BotStopped), and its
                # call may end any way. Not the bot's failure, nor an attempt: the delivery
                # stays pending for the next start. (Its worker's cancellation may even be
                # lost, Python 3.11's wait_for handing it the call's outcome instead: the
                # worker went on failing one delivery after another for good; QA.)
                raise asyncio.CancelledError("the server is stopping") from raised
            exc: BaseException = raised
            if isinstance(raised, asyncio.CancelledError):
                exc = BotCancelled("the bot's call ended cancelled")
        else:
            _count_call(context.bot_name, "ok", started)
            return state, None
        _count_call(
            context.bot_name, "timeout" if isinstance(exc, BotTimeout) else "error", started
        )
        failed = Future(attempt)
        failed.set_exception(exc)
        if isinstance(exc, ConversationGone):
            return None, failed  # (its delivery went with it: nothing to record)
        said = f"{type(exc).__name__}: {exc}"
        where: dict[str, Any] = {}
        if not isinstance(exc, BotFailed | TertuliaError):
            where["exc_info"] = exc  # the bot's own code raised it: the line that did
        _delivery_log(delivery, context.bot_name).warning(
            "bot call failed", attempt=attempt, error=said, **where
        )
        async with self._db.write() as conn:
            await outbox.record_attempt(conn, delivery.pk, attempts=attempt, error=said)
        return None, failed

    async def _retry(
        self,
        delivery: Delivery,
        spec: BotSpec,
        cls: type,
        context: BotContext,
        before: dict[str, Any],
        attempts: int,
        remaining: int,
    ) -> tuple[int, dict[str, Any] | None, Future | None]:
        """Up to ``remaining`` more attempts with exponential backoff (tenacity), each on a
        copy of the state as it was ``before``.

        Returns:
            the number of attempts made in all, the state the successful one left (None
            when none succeeded), and the last failed attempt (None when one succeeded).
        """
        initial, longest = self._backoff
        retrying = AsyncRetrying(
            stop=stop_after_attempt(remaining),
            # Waits of initial, 2 * initial, 4 * initial ... (plus jitter): the first one is
            # slept here, since tenacity only waits between its own attempts.
            wait=wait_exponential_jitter(multiplier=2 * initial, max=longest, jitter=initial),
            reraise=False,
        )
        first = wait_exponential_jitter(multiplier=initial, max=longest, jitter=initial)
        await asyncio.sleep(first(RetryCallState(retrying, None, (), {})))
        state: dict[str, Any] | None = None
        try:
            async for attempt in retrying:
                with attempt:
                    if not await self._still_stored(delivery):
                        # Its conversation was deleted since the last attempt: the bot is
                        # not called again with what is gone.
                        gone = Future(attempts)
                        gone.set_exception(ConversationGone())
                        return attempts, None, gone
                    attempts += 1
                    state, failure = await self._attempt(
                        delivery, spec, cls, context, _copy(before), attempts
                    )
                    if failure is not None:
                        if _final(failure):
                            return attempts, None, failure  # (nothing left to retry for)
                        failure.result()  # raises the attempt's error, for tenacity to see
        except RetryError as exc:
            return attempts, None, exc.last_attempt
        return attempts, state, None

    async def _still_stored(self, delivery: Delivery) -> bool:
        async with self._db.read() as conn:
            return await outbox.exists(conn, delivery.pk)

    async def _call(
        self,
        delivery: Delivery,
        spec: BotSpec,
        cls: type,
        context: BotContext,
        state: dict[str, Any],
    ) -> None:
        sends: list[asyncio.Future[Any]] = []  # what the bot sent from the loop's thread
        info = ConversationInfo(
            conversation_id=delivery.conversation_id,
            bot_participant_id=delivery.bot_participant_id,
            send_function=self._send_function(delivery, sends),
            participants=context.participants,
            state=state,
            services=context.services,
            delivery_id=delivery_id(delivery.bot_participant_id, delivery.pk),
            bot_name=context.bot_name,
        )
        method = "receive_message" if delivery.kind == "message" else "update_status"
        argument: Any = (
            ChatMessage.from_dict(delivery.payload)
            if delivery.kind == "message"
            else delivery.payload
        )
        name = context.bot_name
        slot = self._slots[name]
        limit = self._timeouts[name]
        if not slot.locked():
            await slot.acquire()  # at once: no timer needed
        else:
            # Waiting for a slot is no part of the call's time limit: a busy bot is not a
            # failing one. Only when every slot is held by a call past its limit (a thread
            # cannot be killed) does waiting fail, as a hung bot's deliveries must.
            while True:
                try:
                    async with asyncio.timeout(limit):
                        await slot.acquire()
                    break
                except TimeoutError:
                    if self._overrun.get(name, 0) >= concurrency(spec, cls):
                        raise BotTimeout(
                            f"all {concurrency(spec, cls)} slots held by calls past their "
                            f"{limit} s (hung?)"
                        ) from None
        kind = _method_kind(cls, method)
        if kind is None:
            slot.release()
            return
        if kind == "async" or runs_on_loop(cls):
            try:
                async with asyncio.timeout(limit):
                    bot = cls(info, *spec.args, **spec.kwargs)
                    result = getattr(bot, method)(argument)
                    if inspect.isawaitable(result):
                        await result
                    await _stored(sends)
            except TimeoutError:
                raise BotTimeout(f"no answer within {limit} s") from None
            finally:
                slot.release()
            return

        def call() -> None:
            bot = cls(info, *spec.args, **spec.kwargs)
            result = getattr(bot, method)(argument)
            if inspect.isawaitable(result):  # a sync method that returned a coroutine
                asyncio.run_coroutine_threadsafe(_await(result), self._require_loop()).result()

        future = self._threads.run(call)
        future.add_done_callback(lambda _: slot.release())
        try:
            await asyncio.wait_for(asyncio.shield(future), limit)
        except TimeoutError:
            # Abandoned, but its thread holds the slot until it returns.
            self._overrun[name] = self._overrun.get(name, 0) + 1
            future.add_done_callback(lambda _: self._returned(name))
            raise BotTimeout(f"no answer within {limit} s") from None

    def _returned(self, name: str) -> None:
        """A call abandoned at its time limit has returned after all (its slot is free)."""
        left = self._overrun.get(name, 0) - 1
        if left > 0:
            self._overrun[name] = left
        else:
            self._overrun.pop(name, None)

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    def _send_function(
        self, delivery: Delivery, sends: list[asyncio.Future[Any]]
    ) -> Callable[[dict[str, Any]], Any]:
        """The bot's ``send``: from a worker thread it blocks until the message is stored
        and returns it; on the loop's own thread it returns a task, also kept in ``sends``."""
        loop = self._require_loop()
        loop_thread = threading.get_ident()
        counter = iter(range(1_000_000))
        host = self._host

        def send(data: dict[str, Any]) -> Any:
            data = dict(data)
            data["local_id"] = answer_local_id(delivery.pk, next(counter))
            if self._closing:
                raise BotStopped("the server is stopping; the message was not stored")
            coro = self._tracked(
                host.send_from_bot(delivery.conversation_id, delivery.bot_participant_id, data)
            )
            if threading.get_ident() == loop_thread:
                task = asyncio.ensure_future(coro)
                sends.append(task)
                return task
            return asyncio.run_coroutine_threadsafe(coro, loop).result()

        return send

    async def _tracked(self, coro: Awaitable[Any]) -> Any:
        """Run a bot's send on the loop, unless the runner is closing (a thread can outlive
        its worker); :meth:`close` waits for the sends in progress."""
        task = asyncio.current_task()
        if self._closing or task is None:
            if inspect.iscoroutine(coro):
                coro.close()
            raise BotStopped("the server is stopping; the message was not stored")
        self._sends.add(task)
        try:
            return await coro
        finally:
            self._sends.discard(task)


async def _stored(sends: list[asyncio.Future[Any]]) -> None:
    """Wait for what a bot sent on the loop and had not waited for itself (a plain method
    cannot): its messages are stored before its delivery counts as done, and the first
    send the server refused is the call's failure."""
    pending = [sent for sent in sends if not sent.done()]
    if not pending:
        return
    for outcome in await asyncio.gather(*pending, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a bot's state (most states are empty: no copying machinery then)."""
    return copy.deepcopy(state) if state else {}


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _final(failure: Future) -> bool:
    """Whether a failed attempt is not worth retrying: its conversation was deleted, the
    bot's configuration cannot work (its constructor says so), or the server refused what
    the bot sent by the chat's rules (a 4xx but a conflict or throttling, which pass):
    each would fail the same way at every attempt, and the bot's later deliveries would
    wait out the backoff."""
    error = failure.exception()
    return (
        _gone(failure)
        or isinstance(error, ConfigurationError)
        or (isinstance(error, TertuliaError) and error.status in REFUSALS)
    )


REFUSALS = frozenset({400, 403, 404, 413, 415})
"""The statuses of a refusal that another attempt cannot change (:func:`_final`)."""


def _gone(failure: Future) -> bool:
    """Whether a failed attempt met its conversation deleted."""
    return isinstance(failure.exception(), ConversationGone)


def _count_call(bot: str, outcome: str, started: float) -> None:
    """One call of ``bot`` in the metrics: its outcome and how long it took."""
    BOT_CALLS.labels(bot, outcome).inc()
    BOT_CALL_SECONDS.labels(bot).observe(time.perf_counter() - started)
