"""``Chat``: the controller of one conversation's events (the core API of DESIGN.md).

Every use case runs in one database transaction and, after commit, publishes its frames and
wakes the bot runner (see :mod:`tertulia.outgoing`). A conversation's use cases run one at
a time in this process (a per-``Chat`` lock), so frames leave in ``seq`` order.

The services a ``Chat`` needs (database, broker, runner, settings) live in a
:class:`ChatRegistry`, built in the app's lifespan and bound with :meth:`Chat.bind`; nothing
is created at import. ``Chat.get_chat`` keeps a bounded cache of controllers, and never
makes a second one for a conversation whose controller is still in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, ClassVar, NamedTuple, TypedDict
from urllib.parse import unquote, urlsplit

import orjson
import structlog

from tertulia.bots.base import Bot, BotServices
from tertulia.bots.runner import BotContext, BotRunner
from tertulia.domain.commands import ManagerCommand, checked_overrides, parse_command
from tertulia.domain.conversations import anonymous_name, refuse_bots_name
from tertulia.domain.ids import canonical_id, new_id, new_session_key
from tertulia.domain.inputs import NewMessage, parse_new_message
from tertulia.domain.model import (
    FILE_TYPES,
    Approval,
    Conversation,
    FileInfo,
    Message,
    MessageType,
    Participant,
    ParticipantType,
    SystemEvent,
    public_message,
)
from tertulia.domain.times import utcnow
from tertulia.errors import (
    BrokerUnavailable,
    CommandError,
    Conflict,
    ConversationGone,
    DatabaseUnavailable,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from tertulia.files import check_files_budget, display_name
from tertulia.logs import OUTAGE_WARNING_EVERY, Sampled
from tertulia.metrics import CONVERSATIONS_CREATED, MESSAGES_STORED
from tertulia.outgoing import (
    Outgoing,
    conversation_deleted,
    message_frame,
    redirected,
    sessions_ended,
    state_event,
)
from tertulia.realtime.broker import Broker, Event
from tertulia.recall import Recall, resume_point
from tertulia.settings import BotSpec, Settings
from tertulia.storage import conversations as conv_repo
from tertulia.storage import copies as copy_repo
from tertulia.storage import messages as msg_repo
from tertulia.storage import sessions as session_repo
from tertulia.storage.database import Connection, Database, again_if_turn_lost
from tertulia.storage.deliveries import Delivery
from tertulia.storage.sessions import SessionRecord
from tertulia.working import WorkingIndicator

log = structlog.get_logger(__name__)
RUNNERS = frozenset({"runner"})  # the audience of a wake-up (no socket listens on its channel)


def runner_channel(owner: str) -> str:
    """The broker channel on which the runner ``owner`` is woken by other processes."""
    return f"runner:{owner}"


MEDIA_URL = "/media/"
AWAITING_SENT = 1000
"""Messages awaiting approval sent to a manager's socket as it connects, at most."""
COPIES_SENT = 1000
"""Redirected copies sent to a bot's socket as it resumes (``?copies_after=``), at most."""


STATE_DELAY = 0.05  # seconds a presence change may wait, to be published with the next ones
STATE_DELAY_PEOPLE = 50  # above this many participants the wait grows with the room ...
STATE_DELAY_MAX = 2.0  # ... up to this many seconds
# Recent message ids a Chat remembers, so that quoting one of them needs no query (an older
# one costs one indexed read). About 160 bytes each: 128 keep a cached Chat's share small
# (512 made up to 80 KiB per conversation, 800 MB for a full cache of long conversations).
KNOWN_IDS = 128
# What a write meets when its conversation was deleted under it: a foreign key refused
# (Conflict), or, on PostgreSQL, no conversation row to take a message's number from
# (LookupError). Only then is the conversation looked up (ChatRegistry.deleted).
GONE_HINTS = (Conflict, LookupError)
HISTORY_PAGES = 256  # history pages kept for repeated requests (see HistoryPages)
TRIGGER_SESSION_WINDOW = 600.0
"""Seconds a trigger's session lasts until its bot first uses it (then
``bot_session_max_age``): one whose trigger failed, or whose bot never came, lapses soon."""


def state_delay(participants: int) -> float:
    """Seconds a presence ``state`` frame waits for more changes in a room this size.

    Every such frame carries the whole participant list to every socket, so a frame costs
    the server in proportion to the square of the room; a wait in proportion to the room
    keeps the cost of presence in a room filling up linear (a thousand people: a frame a
    second, rather than twenty).
    """
    return min(STATE_DELAY_MAX, STATE_DELAY * max(1.0, participants / STATE_DELAY_PEOPLE))


class _Duplicate(Exception):
    """A message repeats its sender's ``local_id`` (internal: rolls the transaction back)."""

    def __init__(self, sender_id: str, local_id: str) -> None:
        super().__init__(local_id)
        self.sender_id = sender_id
        self.local_id = local_id


class ChatLimits(TypedDict):
    """Upload limits in bytes, per kind of file; 0 disables that kind."""

    MAX_ATTACHMENT_SIZE: int
    MAX_IMAGE_SIZE: int
    MAX_VIDEO_SIZE: int
    MAX_AUDIO_SIZE: int
    MAX_VOICE_SIZE: int


@dataclass(frozen=True, slots=True)
class SaveResult:
    """The outcome of storing a message: the stored one, and whether it was a duplicate."""

    message: Message
    duplicate: bool = False


class HistoryPages:
    """Recently served history pages, by (conversation, visible count, limit, page, size).

    A page without time filters depends only on which messages are visible, and the
    visible count changes whenever that set does (a message stored or approved takes the
    next ``seq``; nothing visible is ever removed or edited). So a cached page is served
    only when the count just read from the database (any process may have written) still
    matches the one it was built for. Bounded; least recently used pages go first. The
    cached lists are shared: callers only serialise them.
    """

    def __init__(self, size: int = HISTORY_PAGES) -> None:
        self._size = size
        self._pages: OrderedDict[tuple[Any, ...], tuple[int, list[dict[str, Any]]]] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> tuple[int, list[dict[str, Any]]] | None:
        found = self._pages.get(key)
        if found is not None:
            self._pages.move_to_end(key)
        return found

    def put(self, key: tuple[Any, ...], page: tuple[int, list[dict[str, Any]]]) -> None:
        self._pages[key] = page
        self._pages.move_to_end(key)
        while len(self._pages) > self._size:
            self._pages.popitem(last=False)

    def forget(self, conversation_id: str) -> None:
        """Drop a deleted conversation's pages (they would never be served, but are kept)."""
        for key in [k for k in self._pages if k[0] == conversation_id]:
            del self._pages[key]


class ChatRegistry:
    """The services shared by every ``Chat`` of this process, and the bot runner's host.

    Args:
        settings: the configuration.
        db: the database.
        broker: the fan-out.
        bots: bot name -> (spec, class), validated.
        cache_size: how many conversation controllers to keep in memory when nothing uses
            them; one still in use (an open socket's, say) is never replaced by a second.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        broker: Broker,
        bots: dict[str, tuple[BotSpec, type]],
        *,
        cache_size: int = 10_000,
        http: Any = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.db = db
        self.broker = broker
        self.bots = bots
        single_process = settings.broker_url.startswith("memory://")
        self.single_process = single_process
        """The only process on the database (the in-memory broker): what it keeps of the
        participants is always current. With several, another may change them."""
        self._unsubscribe_runner: Callable[[], None] | None = None
        self.runner = BotRunner(
            db,
            bots,
            self,
            poll_interval=settings.bot_poll_interval,
            lease=settings.bot_delivery_lease,
            # With one process (the in-memory broker) bot states can be kept in memory, and
            # what is pending at start is this process's to run.
            exclusive=single_process,
            cache_state=single_process,
        )
        # The most recently used controllers, kept; and every controller still referenced
        # anywhere, so that one dropped from the cache while in use is found again rather
        # than doubled (one Chat per conversation per process: its lock orders the
        # conversation's use cases).
        self._chats: OrderedDict[str, Chat] = OrderedDict()
        self._in_use: weakref.WeakValueDictionary[str, Chat] = weakref.WeakValueDictionary()
        self._cache_size = cache_size
        # conversation id -> participant id -> the timer of a 'left' waiting out the grace
        self._leaving: dict[str, dict[str, asyncio.Task[None]]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.working = WorkingIndicator(broker, self._current_state)
        self.history_pages = HistoryPages()
        # Called with a conversation's id when it is found deleted (caches elsewhere).
        self.forgetting: list[Callable[[str], None]] = []
        # Outages' warnings, one per kind every few seconds (the web layer's too).
        self.outages = Sampled(every=OUTAGE_WARNING_EVERY)

    def background(self, task: asyncio.Task[Any]) -> None:
        """Keep a fire-and-forget task referenced until it ends; log its failure."""
        self._background.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._background.discard(finished)
            if finished.cancelled() or (failure := finished.exception()) is None:
                return
            if isinstance(failure, ServiceUnavailable):
                # (an outage: a warning now and then, as everywhere; chaos QA counted a
                # traceback for every runner wake-up and delayed state frame in one)
                self.outages.warning(
                    log,
                    f"{failure.service} unreachable; a background task failed",
                    task=finished.get_name(),
                    error=failure.reason,
                )
                return
            log.error("background task failed", exc_info=failure)

        task.add_done_callback(done)

    async def start(self) -> None:
        self.broker.lapsed = self._presence_lapsed
        if not self.runner.exclusive:
            # Other processes wake this one's runner when they record deliveries for it.
            self._unsubscribe_runner = await self.broker.subscribe(
                runner_channel(self.runner.owner), self._woken
            )
        await self.runner.start()

    def _presence_lapsed(self, conversation_id: str, participant_id: str) -> None:
        """The broker found that a participant's presence ended with no socket of theirs
        leaving (the process holding it died): they left, as after the grace period."""

        leave = self.left_unseen(conversation_id, participant_id)
        self.background(asyncio.create_task(leave, name=f"lapsed-{participant_id}"))

    async def left_unseen(self, conversation_id: str, participant_id: str) -> None:
        """Store that a participant left whose last socket nobody saw close (its process
        died or stopped), unless a socket of theirs is open now, on any process."""
        if participant_id in await self.broker.present(conversation_id):
            return
        chat = await self.get(conversation_id)
        if chat is not None:
            await chat._participant_left(participant_id)

    def wake(self, owner: str, bot_participant_ids: set[str]) -> None:
        """Wake another process's runner (bots/runner.py ``BotHost.wake``), through the
        broker; if that fails, its next poll finds the deliveries."""
        frame = orjson.dumps(sorted(bot_participant_ids)).decode()
        publish = self.broker.publish(runner_channel(owner), [Event(RUNNERS, frame)])
        self.background(asyncio.ensure_future(publish))

    async def delivery_failed(self, delivery: Delivery) -> None:
        """A delivery failed for good (bots/runner.py ``BotHost.delivery_failed``): an
        external bot's trigger (its program down) makes it one to call back at once."""
        if delivery.kind != "message":
            return
        chat = await self.get(delivery.conversation_id)
        bot = chat._find(delivery.bot_participant_id) if chat is not None else None
        if chat is None or bot is None or not self.triggered(bot):
            return
        try:
            await chat._trigger_failed(bot, delivery.payload)
        except ConversationGone:
            return
        except Exception:
            log.exception(
                "noting a failed trigger failed",
                conversation_id=delivery.conversation_id,
                participant_id=delivery.bot_participant_id,
            )

    def _woken(self, event: Event) -> None:
        """Another process recorded deliveries claimed for this one's runner."""
        try:
            bot_ids = orjson.loads(event.frame)
        except orjson.JSONDecodeError:
            log.warning("unreadable runner wake-up", frame=event.frame[:200])
            return
        self.runner.notify({b for b in bot_ids if isinstance(b, str)})

    async def close(self) -> None:
        """Store the pending 'left' events at once, then stop the runner."""
        pending = [
            (conversation_id, participant_id, task)
            for conversation_id, timers in self._leaving.items()
            for participant_id, task in timers.items()
        ]
        self._leaving.clear()
        for conversation_id, participant_id, task in pending:
            task.cancel()
            chat = await self.get(conversation_id)
            if chat is not None:
                try:
                    await chat._participant_left(participant_id)
                except Exception:
                    log.exception(
                        "storing participant-left at shutdown failed",
                        conversation_id=conversation_id,
                        participant_id=participant_id,
                    )
        # Nothing may publish once the broker closes (after this): presence frames waiting
        # for their moment are dropped, and tasks still publishing are stopped.
        for chat in list(self._in_use.values()):
            chat._cancel_pending_state()
        background = list(self._background)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if self._unsubscribe_runner is not None:
            self._unsubscribe_runner()
        await self.runner.close()
        await self.working.close()

    # -- controllers -------------------------------------------------------------------

    async def get(self, conversation_id: str) -> Chat | None:
        """The controller of a conversation, loaded if needed; None when there is none."""
        key = canonical_id(conversation_id)
        if key is None:
            return None
        chat = self._chats.get(key)
        if chat is not None:
            self._chats.move_to_end(key)
            return chat
        chat = self._in_use.get(key)
        if chat is not None:
            self._remember(chat)
            return chat
        async with self.db.read() as conn:
            conversation = await conv_repo.get_conversation(conn, key)
            if conversation is None:
                return None
            participants = await conv_repo.list_participants(conn, key)
        chat = self._in_use.get(key)  # another task may have loaded it meanwhile
        if chat is None:
            chat = Chat(conversation, participants=participants, registry=self)
            self._remember(chat)
        return chat

    async def deleted(self, chat: Chat) -> bool:
        """Whether ``chat``'s conversation was deleted (``tertulia delete`` while this process
        served it); if so, it is forgotten here and its sockets everywhere are closed.

        Asked only when a deletion would explain what happened: a write failed on a
        constraint (a deleted conversation's rows fail their foreign keys), or a read found
        no participants or no messages at all. Nothing on the message path pays for it."""
        if chat.gone:
            return True
        async with self.db.read() as conn:
            if await conv_repo.get_conversation(conn, chat.conversation.id) is not None:
                return False
        await self.forget(chat.conversation.id)
        return True

    async def forget(self, conversation_id: str, *, announce: bool = True) -> None:
        """Let go of everything this process keeps of a deleted conversation: its
        controller (marked gone for those still holding it), timers, cached pages and, through
        :attr:`forgetting`, the sessions' places in it. With ``announce``, every socket of
        it, in every process, is told to close with 4404 (those processes forget it then)."""
        chat = self._chats.pop(conversation_id, None) or self._in_use.get(conversation_id)
        self._in_use.pop(conversation_id, None)
        first = chat is not None and not chat.gone
        if chat is not None:
            chat.gone = True
            chat._cancel_pending_state()
        for task in self._leaving.pop(conversation_id, {}).values():
            task.cancel()
        self.history_pages.forget(conversation_id)
        for forget in self.forgetting:
            forget(conversation_id)
        if first or chat is None:
            log.info("conversation deleted; forgotten", conversation_id=conversation_id)
        if announce:
            try:
                await self.broker.publish(conversation_id, [conversation_deleted()])
            except Exception:  # (its sockets close when they next write)
                log.warning(
                    "telling a deleted conversation's sockets failed",
                    conversation_id=conversation_id,
                    exc_info=True,
                )

    def _remember(self, chat: Chat) -> None:
        self._chats[chat.conversation.id] = chat
        self._chats.move_to_end(chat.conversation.id)
        self._in_use[chat.conversation.id] = chat
        while len(self._chats) > self._cache_size:
            self._chats.popitem(last=False)

    def triggered(self, bot: Participant) -> bool:
        """Whether ``bot``'s class starts it with a trigger, after which it talks over its
        own sockets (its class's ``triggered``: an external WebSocket bot)."""
        entry = self.bots.get(bot.bot_name or "")
        return entry is not None and bool(getattr(entry[1], "triggered", False))

    def accepts(self, bot: Participant, kind: str, payload: dict[str, Any]) -> bool:
        """Whether ``bot``'s class wants a delivery (classes may define ``accepts_delivery``)."""
        entry = self.bots.get(bot.bot_name or "")
        if entry is None:
            return False
        cls = entry[1]
        check = getattr(cls, "accepts_delivery", None)
        if check is not None:
            return bool(check(kind, payload, bot.id))
        if kind == "status":
            # a Bot subclass that kept the no-op update_status has nothing to be told
            return getattr(cls, "update_status", None) not in (None, Bot.update_status)
        return True

    # -- BotHost -----------------------------------------------------------------------

    async def bot_context(self, conversation_id: str, bot_participant_id: str) -> BotContext | None:
        chat = await self.get(conversation_id)
        if chat is None:
            return None
        try:
            bot = await chat.participant(bot_participant_id)
        except ConversationGone:
            return None
        if bot is None or bot.bot_name is None:
            return None
        services = None
        if self.http is not None:

            async def new_session() -> str:
                return await self.new_bot_session(conversation_id, bot_participant_id)

            handed: list[str] = []  # by this delivery's trigger attempts so far

            async def trigger_session() -> str:
                key = await self.new_bot_session(
                    conversation_id, bot_participant_id, trigger=True, replacing=handed
                )
                handed.append(key)
                return key

            async def recent_messages(n: int) -> list[dict[str, Any]]:
                found = await self.get(conversation_id)
                if found is None or n <= 0:
                    return []
                _, messages = await found.history(
                    until=None, since=None, limit=n, page=1, page_size=n
                )
                return [dict(m) for m in messages]  # the cached page stays untouched

            async def connected() -> bool:
                return bot_participant_id in await self.broker.present(conversation_id)

            services = BotServices(
                http=self.http,
                new_session=new_session,
                recent_messages=recent_messages,
                connected=connected,
                trigger_session=trigger_session,
            )
        return BotContext(
            bot_name=bot.bot_name, participants=chat.public_participants(), services=services
        )

    async def new_bot_session(
        self,
        conversation_id: str,
        bot_participant_id: str,
        *,
        trigger: bool = False,
        replacing: Sequence[str] = (),
    ) -> str:
        """A session for an external bot: valid in its own conversation only, lapsing after
        ``bot_session_max_age`` idle seconds (none while a socket of it is open), or when
        the bot is required and leaves (ending the conversation).

        A ``trigger``'s session (a WebSocket bot's) lasts :data:`TRIGGER_SESSION_WINDOW`
        seconds at most until the bot first uses it. A retry of a trigger ends the
        sessions its earlier attempts handed out (``replacing``), and their sockets close at
        once, on every process: a trigger retried after its POST timed out had started the
        bot all the same, and both instances answered. Other triggers (a call-back) leave
        the bot's session alone: a bot that reconnects (the SDK) keeps it until the trigger
        hands it the new one, and was refused in between.
        """
        now = utcnow()
        lifetime: float = self.settings.bot_session_max_age
        if trigger:
            lifetime = min(lifetime, TRIGGER_SESSION_WINDOW)
        ended: list[str] = []
        async with self.db.write() as conn:
            if replacing:
                ended = await session_repo.end_bot_sessions(conn, replacing, now=now)
            session = await session_repo.create_session(
                conn,
                new_session_key(),
                now=now,
                expires_at=now + timedelta(seconds=lifetime),
                bot_conversation_id=conversation_id,
            )
            await session_repo.add_participation(
                conn, session.key, conversation_id, bot_participant_id
            )
        if ended:
            # (a socket that subscribes after this reads its session again: refused)
            await self.broker.publish(conversation_id, [sessions_ended(ended)])
        return session.key

    async def send_from_bot(
        self, conversation_id: str, bot_participant_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        chat = await self.get(conversation_id)
        if chat is None:  # (it was there when the bot's delivery was recorded: deleted since)
            raise ConversationGone()
        bot = await chat.participant(bot_participant_id)
        if bot is None:
            raise NotFound("participant not found")
        # A duplicate (a retried delivery's n-th send, whose local_id the first attempt
        # used) is the message stored then: the bot keeps its id as it did the first time.
        return chat.public((await chat.submit(bot, data)).message)

    def bot_working(self, conversation_id: str, bot_participant_id: str, working: bool) -> None:
        """A bot started or finished a delivery: people see it (:mod:`tertulia.working`).

        Bot classes with ``working_indicator = False`` (external WebSocket bots, whose only
        delivery is their trigger) are never shown.
        """
        if working:
            chat = self._chats.get(conversation_id) or self._in_use.get(conversation_id)
            bot = chat._find(bot_participant_id) if chat is not None else None
            entry = self.bots.get(bot.bot_name or "") if bot is not None else None
            if entry is None or not getattr(entry[1], "working_indicator", True):
                return
        self.working.change(conversation_id, bot_participant_id, working)

    async def _current_state(self, conversation_id: str) -> dict[str, Any] | None:
        chat = await self.get(conversation_id)
        return await chat.state() if chat is not None else None

    # -- presence timers ---------------------------------------------------------------

    def schedule_leave(self, chat: Chat, participant_id: str, delay: float) -> None:
        """Store ``participant_id``'s 'left' after ``delay`` seconds, unless a socket of theirs
        connects meanwhile (:meth:`cancel_leave`). Until then they count as online."""
        conversation_id = chat.conversation.id

        async def later() -> None:
            await asyncio.sleep(delay)
            # Check before letting go of the timer: a socket that connects meanwhile cancels
            # it (cancel_leave), so a reconnection never yields 'joined' without a 'left'.
            present = await self.broker.present(conversation_id)
            self._forget_leave(conversation_id, participant_id)
            if participant_id not in present:
                await chat._participant_left(participant_id)

        task = asyncio.create_task(later(), name=f"leave-{participant_id}")
        self._leaving.setdefault(conversation_id, {})[participant_id] = task
        self.background(task)

    def cancel_leave(self, conversation_id: str, participant_id: str) -> bool:
        task = self._forget_leave(conversation_id, participant_id)
        if task is None:
            return False
        task.cancel()
        return True

    def leaving(self, conversation_id: str) -> set[str]:
        """The participants of a conversation whose last socket closed less than the grace
        period ago: not left yet (they may be reloading a page)."""
        return set(self._leaving.get(conversation_id, ()))

    def _forget_leave(self, conversation_id: str, participant_id: str) -> asyncio.Task[None] | None:
        timers = self._leaving.get(conversation_id)
        if timers is None:
            return None
        task = timers.pop(participant_id, None)
        if not timers:
            del self._leaving[conversation_id]
        return task


class Connected(NamedTuple):
    """What :meth:`Chat.connect` found: a person announced as joined, and for a bot called
    back where its socket starts when it does not say (``?after=``, ``?copies_after=``)."""

    announced: bool = False
    after: int | None = None
    copies_after: int | None = None


class _UseCase:
    """``async with chat._transaction() as (conn, out)``: under the chat's lock, a write
    transaction; its deliveries are written last, and once it has committed its frames are
    published and its deliveries handed to the runner. (A class rather than a generator:
    it runs for every message.)"""

    __slots__ = ("_chat", "_conn", "_out", "_turn", "_write")

    def __init__(self, chat: Chat, *, turn: bool = True) -> None:
        self._chat = chat
        self._turn = turn

    async def __aenter__(self) -> tuple[Connection, Outgoing]:
        chat = self._chat
        if chat.gone:
            raise ConversationGone()
        await chat._lock.acquire()
        try:
            self._out = Outgoing(chat.conversation.id)
            self._write = chat._services.db.write()
            self._conn = await self._write.__aenter__()
        except BaseException:
            chat._lock.release()
            raise
        if self._turn and self._conn.last_seqs is None:
            # PostgreSQL: the conversation's row first, before any other row of it. The use
            # cases of several processes take turns on it (a message's numbering takes it
            # anyway), and a deletion, which takes it first and then deletes every row of
            # the conversation, never waits for a row this transaction holds while this one
            # waits for it: a leave that had marked its participant's row, then numbered
            # its message, deadlocked with ``tertulia delete`` (CI).
            try:
                if not await conv_repo.take_turns(self._conn, chat.conversation.id):
                    raise LookupError("the conversation's row is gone")
            except BaseException as failure:
                await self.__aexit__(type(failure), failure, failure.__traceback__)
                raise
        return self._conn, self._out

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: Any
    ) -> None:
        chat, out, write = self._chat, self._out, self._write
        try:
            if kind is not None:
                await write.__aexit__(kind, error, trace)
                if isinstance(error, GONE_HINTS) and await chat._services.deleted(chat):
                    raise ConversationGone() from error
                return
            try:
                if out.deliveries:
                    out.recorded, out.read_back = await chat._services.runner.record(
                        self._conn, chat.conversation.id, out.deliveries
                    )
            except BaseException as failure:
                await write.__aexit__(type(failure), failure, failure.__traceback__)
                raise
            await write.__aexit__(None, None, None)
            await chat._flush(out)
        except GONE_HINTS as failure:
            # (here: on writing the deliveries, or at commit)
            if await chat._services.deleted(chat):
                raise ConversationGone() from failure
            raise
        finally:
            chat._lock.release()


class Chat:
    """The controller of the events in one conversation.

    Use :meth:`get_chat` or :meth:`on_create_conversation` to obtain one; one instance per
    conversation per process.
    """

    _registry: ClassVar[ChatRegistry | None] = None

    def __init__(
        self,
        conversation: Conversation,
        *,
        participants: Sequence[Participant] = (),
        registry: ChatRegistry | None = None,
    ) -> None:
        self.conversation = conversation
        self.participants = participants  # (indexed by the setter)
        self._services = registry or self.registry()
        self._lock = asyncio.Lock()
        self.gone = False  # deleted while in use (ChatRegistry.forget): every use case refused
        self._known: OrderedDict[str, None] = OrderedDict()
        self._state_pending = False
        self._state_timer: asyncio.TimerHandle | None = None
        self._recall = Recall(self._services.settings.bot_recall)

    # -- services ----------------------------------------------------------------------

    @classmethod
    def bind(cls, registry: ChatRegistry | None) -> None:
        """Install (or, with None, remove) the services every ``Chat`` uses."""
        cls._registry = registry

    @classmethod
    def registry(cls) -> ChatRegistry:
        if cls._registry is None:
            raise RuntimeError("Chat services are not bound; build the app's lifespan first")
        return cls._registry

    @property
    def settings(self) -> Settings:
        return self._services.settings

    @property
    def participants(self) -> list[Participant]:
        """The participants in joining order. Assign a new list to change them (lookups by
        id, the manager and the bots are indexed on assignment: a room of a thousand people
        is not scanned for every message)."""
        return self._participants

    @participants.setter
    def participants(self, participants: Sequence[Participant]) -> None:
        self._participants = list(participants)
        self._by_id = {p.id: p for p in self._participants}
        self._bots = [p for p in self._participants if p.is_bot]
        self._manager = next((p for p in self._participants if p.is_manager), None)
        self._public: list[dict[str, str]] | None = None
        self._triggered_bots: list[Participant] | None = None

    @property
    def manager(self) -> Participant | None:
        return self._manager

    @classmethod
    async def get_chat(cls, conversation_id: str) -> Chat | None:
        """The ``Chat`` for a conversation, or None where there is no such conversation."""
        return await cls.registry().get(conversation_id)

    # -- participants ------------------------------------------------------------------

    async def participant(self, participant_id: str) -> Participant | None:
        """A participant of this conversation by id (reloaded once if not known here)."""
        found = self._find(participant_id)
        if found is None:
            await self.refresh()
            found = self._find(participant_id)
        return found

    def _find(self, participant_id: str) -> Participant | None:
        return self._by_id.get(participant_id)

    async def refresh(self) -> None:
        """Reload the participants (another process may have added some).

        Raises:
            ConversationGone: none left: the conversation was deleted.
        """
        async with self._services.db.read() as conn:
            found = await conv_repo.list_participants(conn, self.conversation.id)
        if not found and await self._services.deleted(self):
            raise ConversationGone()
        self.participants = found

    def public_participants(self) -> list[dict[str, str]]:
        """The participants as the wire shows them, in a new list the caller may keep."""
        return [p.public() for p in self.participants]

    def _public_participants(self) -> list[dict[str, str]]:
        """The same, built once per change of the participants and shared: for frames,
        which are serialised at once (a room of a thousand people is not rebuilt for every
        presence change). Never handed to bots' code."""
        if self._public is None:
            self._public = self.public_participants()
        return self._public

    def public(self, message: Message) -> dict[str, Any]:
        return public_message(message, media_url=MEDIA_URL)

    async def state(self, *, current: bool = False) -> dict[str, Any]:
        """The ``state`` frame's content: participants, name, and who is online (a socket
        open, or closed less than the grace period ago: not left yet).

        With several processes the participants are read again first, unless ``current``
        (a use case read them in its own transaction): another process may have added some
        or renamed one since, and a state frame replaces what every client shows. Before,
        such a frame took a rename made through another process back (and left out who
        joined through it, until someone unknown here came online).
        """
        try:
            online = await self._services.broker.present(self.conversation.id)
        except BrokerUnavailable as exc:
            # Who is online is not known now: the frame says only who is leaving here
            # (a conversation created, a rename, stored all the same; not a 503).
            log.warning(
                "broker unreachable; presence left out",
                conversation_id=self.conversation.id,
                error=exc.reason,
            )
            online = set()
        online |= self._services.leaving(self.conversation.id)
        if not current and not self._services.single_process:
            try:
                await self.refresh()
            except ConversationGone:  # (its deletion is told apart)
                pass
            except DatabaseUnavailable as exc:
                # The participants as last read: a presence frame still goes out (it did
                # before they were read again for every frame), only perhaps with an old name.
                self._services.outages.warning(
                    log,
                    "database unreachable; the state frame has the participants as last read",
                    conversation_id=self.conversation.id,
                    error=exc.reason,
                )
        return {
            "participants": self._public_participants(),
            "conversation_name": self.conversation.name,
            "online": [p.id for p in self.participants if p.id in online],
        }

    # -- transactions ------------------------------------------------------------------

    def _transaction(self, *, turn: bool = True) -> _UseCase:
        """One use case: a transaction, then (after commit) its frames and deliveries.
        Without ``turn`` it does not take the conversation's row first (PostgreSQL): the one
        that inserts the conversation (there is no row yet), and those whose first lock is
        that row's anyway or that only read and insert (a plain message, on the only
        process), which cannot deadlock with a deletion."""
        return _UseCase(self, turn=turn)

    async def _flush(self, out: Outgoing) -> None:
        """Publish a committed use case's frames and start its deliveries (under the lock).

        Presence ``state`` frames are coalesced: a change of who is online schedules one
        frame :func:`state_delay` seconds later, carrying the state as it is then, so a room that
        a thousand people enter costs a few frames per socket instead of a thousand. Only
        presence waits: a change of the participants publishes its ``state`` at once, in the
        use case's own frames (no client may see a message naming a participant it was not
        told about first), and that frame, being current, also settles a pending one.
        """
        if out.stored:
            MESSAGES_STORED.inc(out.stored)
        try:
            if out.events:
                if self._state_pending and out.state_published:
                    self._cancel_pending_state()
                # Committed, so acknowledged: the use case succeeded even when publishing
                # fails. The broker has told this process's sockets to catch up (they are
                # closed, and their clients resume from the database; docs/operations.md).
                try:
                    await self._services.broker.publish(self.conversation.id, out.events)
                except ServiceUnavailable as exc:  # (an outage: a warning now and then)
                    self._services.outages.warning(
                        log,
                        f"{exc.service} unreachable; publishing failed",
                        conversation_id=self.conversation.id,
                        error=exc.reason,
                    )
                except Exception:
                    log.exception("publishing failed", conversation_id=self.conversation.id)
            if out.state_changed:
                self._state_soon()
        finally:
            # Committed deliveries run even when publishing failed (a broker down, say):
            # left to the next poll, a later message's would run before them.
            if out.read_back:  # read back first: they come before the new ones
                self._services.runner.notify(out.read_back)
            if out.recorded:
                self._services.runner.hand_over(out.recorded)

    @property
    def state_pending(self) -> bool:
        """A presence ``state`` frame is waiting to go out."""
        return self._state_pending

    def state_wait(self) -> float:
        """Seconds a presence change waits here before its ``state`` frame goes out."""
        return state_delay(len(self.participants))

    def _state_soon(self) -> None:
        """A presence ``state`` frame goes out after :meth:`state_wait`, with the other
        changes of presence meanwhile."""
        self._state_pending = True
        if self._state_timer is None:
            self._state_timer = asyncio.get_running_loop().call_later(
                self.state_wait(), self._state_due
            )

    def _cancel_pending_state(self) -> None:
        self._state_pending = False
        if self._state_timer is not None:
            self._state_timer.cancel()
            self._state_timer = None

    async def _publish_state(self) -> None:
        """Publish the current state now (the caller holds the lock)."""
        self._cancel_pending_state()
        event = state_event(await self.state())
        await self._services.broker.publish(self.conversation.id, [event])

    def _state_due(self) -> None:
        self._state_timer = None

        async def publish() -> None:
            async with self._lock:
                if self._state_pending:
                    await self._publish_state()

        task = asyncio.ensure_future(publish())
        self._services.background(task)

    async def _store(
        self,
        conn: Connection,
        out: Outgoing,
        message: Message,
        *,
        unless_duplicate: bool = False,
    ) -> Message:
        """Insert a message (taking a ``seq`` if people can see it) and route it.

        Raises:
            _Duplicate: with ``unless_duplicate``, when the sender already used the
                message's ``local_id`` (the caller's transaction must roll back).
        """
        stored = await msg_repo.insert_message(conn, message, unless_duplicate=unless_duplicate)
        if stored is None:
            assert message.sender_id is not None
            assert message.local_id is not None
            raise _Duplicate(message.sender_id, message.local_id)
        message = stored
        out.stored += 1
        if message.visible:
            self._remember(message.id)
        self._route(out, message)
        return message

    def _remember(self, message_id: str) -> None:
        """Note that a message people see exists in this conversation (a bounded memory:
        a quote of it needs no query)."""
        self._known[message_id] = None
        if len(self._known) > KNOWN_IDS:
            self._known.popitem(last=False)

    def _route(self, out: Outgoing, message: Message) -> None:
        out.publish_message(
            message,
            self.public(message),
            self._bots,
            has_manager=self._manager is not None,
            accepts=self._services.accepts,
        )

    def _system(self, event: SystemEvent, participant_id: str | None = None) -> Message:
        return Message(
            id=new_id(),
            conversation_id=self.conversation.id,
            type=MessageType.SYSTEM,
            time=utcnow(),
            approval=Approval.AUTOMATIC,
            event=event,
            text=event.value,
            additional_metadata={"participant_id": participant_id} if participant_id else {},
        )

    # -- creating and joining ----------------------------------------------------------

    @classmethod
    async def on_create_conversation(
        cls,
        nickname: str | None,
        bots: Sequence[str],
        conversation: Conversation,
        *,
        session_key: str | None = None,
        new_session: SessionRecord | None = None,
    ) -> list[Participant]:
        """Store a new conversation with its human, its bots and the manager.

        Stores the *conversation-created* and the bots' *participant-joined* messages and,
        with ``session_key``, the session's participation, all in one transaction; bots are
        told after commit (that is when external bots are triggered).

        Args:
            nickname: the human's name (``None``: ``ANON_<id>``); already validated.
            bots: names of installed bots, validated (no manager, no duplicates).
            conversation: the new conversation (not stored yet).
            session_key: the creator's session, which gets the human participant.
            new_session: that session when it is new and not stored yet: it is stored in
                the same transaction (one commit for a first visit, not two).

        Returns:
            the participants, the human first, then the bots in order, then the manager.

        Raises:
            ValidationFailed: ``nickname`` reads as an installed bot's name.
        """
        registry = cls.registry()
        settings = registry.settings
        if nickname:
            # (the conversation's bots are among the installed ones)
            refuse_bots_name(nickname, settings.bots, nickname=True)
        human_id = new_id()
        participants = [
            Participant(
                id=human_id,
                conversation_id=conversation.id,
                name=nickname or anonymous_name(human_id),
                type=ParticipantType.HUMAN,
            )
        ]
        names = list(bots) + ([settings.manager] if settings.manager else [])
        for i, name in enumerate(names):
            spec = settings.bots[name]
            participants.append(
                Participant(
                    id=new_id(),
                    conversation_id=conversation.id,
                    name=name,
                    type=ParticipantType.BOT,
                    is_required=spec.required,
                    is_manager=settings.manager is not None and i == len(bots),
                    bot_name=name,
                )
            )
        chat = cls(conversation, participants=participants, registry=registry)
        async with chat._transaction(turn=False) as (conn, out):
            if new_session is not None:
                await session_repo.insert_session(conn, new_session, now=conversation.created_at)
            await conv_repo.insert_conversation(conn, conversation)
            await conv_repo.insert_participants(conn, participants, first_ordinal=0)
            last = await chat._store(conn, out, chat._system(SystemEvent.CONVERSATION_CREATED))
            for bot in participants[1:]:
                last = await chat._store(
                    conn, out, chat._system(SystemEvent.PARTICIPANT_JOINED, bot.id)
                )
            for bot in chat._bots_triggered():
                # Its first socket, when it does not say where it resumes (BLAB's library
                # never does), starts where its trigger goes, as a call-back's does: what
                # people write while it is on its way reaches it (tertulia.recall). The
                # trigger says where, for a bot that says so itself (the SDK).
                copies = 0 if chat.takes_copies(bot) else None
                await conv_repo.hold_resume_point(conn, bot.id, last.seq or 0, copies)
                out.start_at(bot.id, last.seq or 0, copies)
            out.publish_state(participants, registry.accepts, state=await chat.state(current=True))
            if session_key is not None:
                await session_repo.add_participation(conn, session_key, conversation.id, human_id)
        registry._remember(chat)
        chat._recall.triggered(chat._bots_triggered())  # (their first triggers are on the way)
        CONVERSATIONS_CREATED.inc()
        log.info(
            "conversation created",
            conversation_id=conversation.id,
            participant_id=human_id,
            bots=names,
        )
        return participants

    async def join(self, nickname: str | None, *, session_key: str | None = None) -> Participant:
        """A further human joins; returns the new participant.

        Publishes a ``state`` frame and tells the bots; no message is stored (the
        newcomer's *participant-joined* comes when their first socket opens).

        Raises:
            ValidationFailed: the conversation is full, or ``nickname`` reads as a bot's
                name (:meth:`bot_names`).
        """
        if nickname:
            refuse_bots_name(nickname, self.bot_names(), nickname=True)
        participant_id = new_id()
        participant = Participant(
            id=participant_id,
            conversation_id=self.conversation.id,
            name=nickname or anonymous_name(participant_id),
            type=ParticipantType.HUMAN,
        )
        async with self._transaction() as (conn, out):
            # Participants are never removed, so their count is the next ordinal, and a
            # count above what this process knows means another one added some. With
            # several processes they are read again whatever the count (another may have
            # renamed some), and counted so, once the joins of the conversation take turns
            # on its row: two processes counting at once took the same ordinal, and the
            # later insert was refused (409). (Every use case takes the row first.)
            if self._services.single_process:
                ordinal = await conv_repo.count_participants(conn, self.conversation.id)
                if ordinal != len(self.participants):
                    self.participants = await conv_repo.list_participants(
                        conn, self.conversation.id
                    )
            else:
                self.participants = await conv_repo.list_participants(conn, self.conversation.id)
                ordinal = len(self.participants)
            if ordinal >= self.settings.max_participants:
                raise ValidationFailed(detail="This conversation is full.")
            await conv_repo.insert_participants(conn, [participant], first_ordinal=ordinal)
            self.participants = [*self.participants, participant]
            if session_key is not None:
                await session_repo.add_participation(
                    conn, session_key, self.conversation.id, participant_id
                )
            state = await self.state(current=True)
            out.publish_state(self.participants, self._services.accepts, state=state)
        log.info(
            "participant joined",
            conversation_id=self.conversation.id,
            participant_id=participant_id,
        )
        return participant

    async def rename(self, participant: Participant, name: str) -> Participant:
        """Rename a participant; publishes a ``state`` frame and tells the bots.

        Raises:
            ValidationFailed: a person's new name reads as a bot's (:meth:`bot_names`).
        """
        if participant.is_human:
            refuse_bots_name(name, self.bot_names(), nickname=False)
        renamed = replace(participant, name=name)
        async with self._transaction() as (conn, out):
            # (Renames take turns on the conversation's row, as every use case does: two
            # at once through two processes each read the participants before the other's
            # commit, and each frame took the other rename back; multi-process QA.)
            await conv_repo.rename_participant(conn, participant.id, name)
            if self._services.single_process:
                self.participants = [
                    renamed if p.id == participant.id else p for p in self.participants
                ]
            else:  # (what the others changed too, this rename among it)
                self.participants = await conv_repo.list_participants(conn, self.conversation.id)
            state = await self.state(current=True)
            out.publish_state(self.participants, self._services.accepts, state=state)
        return renamed

    def bot_names(self) -> set[str]:
        """The names no person may take here: the installed bots' (the manager's among
        them) and this conversation's bots' (one no longer installed included)."""
        return {*self.settings.bots, *(bot.name for bot in self._bots)}

    async def generate_participant_joined_system_message(self, participant_id: str) -> Message:
        """Store and publish a *participant-joined* system message (a person's counts as
        present from then on, as when their first socket opens)."""
        participant = self._find(participant_id)
        async with self._transaction() as (conn, out):
            if participant is not None and participant.is_human:
                await conv_repo.mark_present(conn, participant_id, True)
            message = await self._store(
                conn, out, self._system(SystemEvent.PARTICIPANT_JOINED, participant_id)
            )
        return message

    # -- presence ----------------------------------------------------------------------

    async def connect(self, participant: Participant, socket_id: str) -> Connected:
        """A socket of ``participant`` opened (after authentication).

        Returns:
            whether this made a person present and their *participant-joined* was
            published (a person the transcript still says is here, their socket closed
            with a restart of the server, which stores nothing, is not announced again);
            and, for a bot called back (:mod:`tertulia.recall`), where its socket starts
            when it does not say. A bot's *participant-joined* was stored at creation; it
            is stored again when the bot comes back after its *participant-left*.
        """
        services = self._services
        first = await services.broker.join(self.conversation.id, participant.id, socket_id)
        returning = services.cancel_leave(self.conversation.id, participant.id)
        if not participant.is_human:
            self._recall.answered(participant.id)
        # A bot back within the grace (its program restarted quickly) did not leave, but
        # may have been called back meanwhile: its row is read (and cleared) all the same.
        if not first or (returning and participant.is_human):
            if first and not services.single_process:
                # Back within the grace: another process, which knows only its own people
                # in their grace, may have told everyone meanwhile that they were gone
                # (multi-process QA: shown offline for good).
                self._state_soon()
            return Connected()
        connected = Connected()
        try:
            async with self._transaction() as (conn, out):
                if participant.is_human:
                    back = await conv_repo.mark_present(conn, participant.id, True)
                    connected = Connected(announced=back)
                else:
                    found = await conv_repo.bot_connects(conn, participant.id)
                    back = found.was_away  # (its class, given this, sees it here: no trigger)
                    connected = Connected(after=found.after, copies_after=found.copies_after)
                if back:
                    await self._store(
                        conn, out, self._system(SystemEvent.PARTICIPANT_JOINED, participant.id)
                    )
                if not returning:  # (back within the grace: nobody saw it go)
                    out.publish_state(self.participants, services.accepts)
        except BaseException:
            # Not joined after all: the socket is not counted present (it would stay so,
            # with no socket, and the participant's next socket would not join).
            await services.broker.leave(self.conversation.id, participant.id, socket_id)
            raise
        return connected

    async def disconnect(
        self, participant: Participant, socket_id: str, *, server_stopping: bool = False
    ) -> None:
        """A socket closed; the participant leaves when its last socket has been gone for
        ``presence_grace`` seconds.

        A socket closed by the server's own shutdown (``server_stopping``) is no longer
        present, but its participant did not leave: nothing is stored. Else a restart would
        say that everyone left, and end every conversation with a required bot (whose
        sessions end with it, so the bot could not even come back after the restart).
        """
        last = await self._services.broker.leave(self.conversation.id, participant.id, socket_id)
        if not last or self.gone:
            return
        if server_stopping:
            log.debug(
                "socket closed by the server's shutdown; the participant did not leave",
                conversation_id=self.conversation.id,
                participant_id=participant.id,
            )
            return
        grace = self.settings.presence_grace
        if grace > 0:
            self._services.schedule_leave(self, participant.id, grace)
        else:
            await self._participant_left(participant.id)

    async def _participant_left(self, participant_id: str) -> None:
        """Store that a participant left, trying again when PostgreSQL ended the
        transaction to let another through (:class:`TurnLost`; storing it twice is
        harmless, the second finds them not present): not stored, they stayed online for
        good."""
        with contextlib.suppress(ConversationGone):  # deleted meanwhile: nobody to tell
            async for attempt in again_if_turn_lost():
                with attempt:
                    await self._store_left(participant_id)

    async def _store_left(self, participant_id: str) -> None:
        participant = await self.participant(participant_id) if not self.gone else None
        if participant is None:
            return
        services = self._services
        async with self._transaction() as (conn, out):
            if participant.is_human and not await conv_repo.mark_present(
                conn, participant_id, False
            ):
                # Not announced as here (their 'left' is stored already, by another
                # process): nothing to say but who is online.
                out.publish_state(self.participants, services.accepts)
                return
            await self._store(conn, out, self._system(SystemEvent.PARTICIPANT_LEFT, participant_id))
            if participant.is_bot:
                await conv_repo.mark_away(conn, participant_id)
            if participant.is_required:
                await self._store(
                    conn, out, self._system(SystemEvent.CONVERSATION_ENDED, participant_id)
                )
                await conv_repo.set_ended(conn, self.conversation.id)
                # The conversation keeps accepting messages, the other bots' too (PROTOCOL
                # 4.4, 9.4): only the leaving bot's sessions end (it has no socket left;
                # it comes back when called back, with a new one). Ending them all lost
                # the next answer of every other external bot (4403; QA).
                await session_repo.expire_bot_sessions(
                    conn, self.conversation.id, participant_id, now=utcnow()
                )
                self.conversation = replace(self.conversation, ended=True)
                log.info(
                    "conversation ended",
                    conversation_id=self.conversation.id,
                    participant_id=participant_id,
                )
            out.publish_state(self.participants, services.accepts)

    # -- messages ----------------------------------------------------------------------

    async def save_message(
        self, participant: Participant, message_data: dict[str, Any]
    ) -> Message | None:
        """Validate and store a message from a human or a bot, applying the manager's rules.

        Returns:
            the stored message, or None when ``local_id`` repeats an earlier one (which is
            then re-sent to the sender's own sockets).

        Raises:
            ValidationFailed: invalid input (CommandError for a manager command); nothing
                is stored then.
        """
        result = await self.submit(participant, message_data)
        return None if result.duplicate else result.message

    async def submit(
        self,
        participant: Participant,
        message_data: dict[str, Any],
        *,
        file: FileInfo | None = None,
    ) -> SaveResult:
        """:meth:`save_message`, also telling a duplicate apart and taking an uploaded file.

        Args:
            participant: the sender (always the session's or the bot's own participant).
            message_data: the input fields of PROTOCOL 5.3.
            file: an uploaded file already stored, for the file types.
        """
        new = parse_new_message(message_data)
        command = ManagerCommand()
        if participant.is_manager and new.command is not None:
            command = parse_command(new.command)
        elif new.command is not None and participant.is_bot:
            # Dropped (PROTOCOL 7.2), as a person's is; but a bot sends one meaning it: a
            # manager's class configured without ``manager = ...``, say.
            log.warning(
                "command dropped: only the manager's are followed (is this bot meant to be "
                "the manager?)",
                conversation_id=self.conversation.id,
                participant_id=participant.id,
                bot=participant.name,
            )
        if new.type in FILE_TYPES:
            if file is None and new.external_file_url is None:
                raise ValidationFailed({"file": ["No file was submitted."]})
            if (
                new.external_file_url
                and participant.is_human
                and self.settings.external_files == "bots"
            ):
                raise ValidationFailed(
                    {"external_file_url": ["Only bots may send external files."]}
                )
        # A plain message on the only process (no file, not a manager's) takes no turn of
        # its own: its first lock is its numbering's, on the conversation's row, or (one
        # awaiting approval) it only reads and inserts. Taking one anyway cost PostgreSQL
        # a tenth of its answers a second (docs/performance-history.md, 2026-12-07,
        # midday). A manager's approval locks the message first, a file's budget is
        # counted under the turn, and with several processes the recording of deliveries
        # needs it (BotRunner.holders).
        plain = self._services.single_process and file is None and not participant.is_manager
        try:
            async with self._transaction(turn=not plain) as (conn, out):
                result = await self._save(conn, out, participant, new, command, file)
        except _Duplicate as duplicate:
            # The transaction rolled back whatever it had done; the first message stands.
            return await self._repeat(participant, duplicate.sender_id, duplicate.local_id)
        if self._recall.enabled and (triggered := self._bots_triggered()):
            if participant.is_human:
                await self._call_back(result.message, triggered)
            elif not (result.message.visible or participant.is_manager):
                # A bot's answer waits for the manager's approval: a manager with no socket
                # is called back to approve it (else it waits, and people, for good).
                await self._call_back(result.message, [b for b in triggered if b.is_manager])
        return result

    def _bots_triggered(self) -> list[Participant]:
        """The bots that come when triggered (:meth:`ChatRegistry.triggered`), listed once
        per list of participants."""
        if self._triggered_bots is None:
            triggered = self._services.triggered
            self._triggered_bots = [bot for bot in self._bots if triggered(bot)]
        return self._triggered_bots

    def _joined(self, bot: Participant, metadata: dict[str, Any]) -> dict[str, Any]:
        """A bot's *participant-joined* as its class is given it (see :mod:`tertulia.recall`)."""
        joined = self._system(SystemEvent.PARTICIPANT_JOINED, bot.id)
        return self.public(replace(joined, additional_metadata=metadata))

    async def _trigger_failed(self, bot: Participant, payload: dict[str, Any]) -> None:
        """The bot's trigger failed for good: it is due at the next person's message, and
        starts where this trigger would have (kept as for a recall it did not answer): the
        recall's own point, or, for the creation's, the *participant-joined* it carried."""
        self._recall.answered(bot.id)
        metadata = payload.get("additional_metadata") or {}
        after = resume_point(metadata, "after")
        if after is None:
            after = resume_point(payload, "seq")  # (the creation's: its participant-joined)
        if after is None:
            return
        copies = resume_point(metadata, "copies_after")
        if copies is None and self.takes_copies(bot):
            copies = 0  # (the creation's trigger: no copy before it)
        async with self._transaction() as (conn, _):
            await conv_repo.hold_resume_point(conn, bot.id, after, copies)

    async def _call_back(self, woken_by: Message, bots: list[Participant]) -> None:
        """A person wrote (or a bot's answer awaits approval): trigger again those of
        ``bots`` (external; the manager, for an answer) that have no socket, when due
        (:mod:`tertulia.recall`), telling each to resume before ``woken_by``: at the
        visible message before it (an answer awaiting approval has no ``seq``; a manager
        resuming there is sent it first, web/ws.py). The message is stored already: a
        failure here is logged, not the sender's."""
        try:
            if not bots:
                return
            present = await self._services.broker.present(self.conversation.id)
            due = self._recall.due([bot for bot in bots if bot.id not in present])
            if not due:
                return
            async with self._transaction() as (conn, out):
                if woken_by.seq is not None:
                    before = max(woken_by.seq - 1, 0)
                else:
                    before = await msg_repo.seq_before(conn, self.conversation.id, woken_by.id)
                for bot in due:
                    copies = None
                    if self.takes_copies(bot):
                        copies = await copy_repo.last(conn, bot.id, before=woken_by.time)
                    # (an earlier call it has not come back from keeps its earlier point)
                    after, copies = await conv_repo.hold_resume_point(conn, bot.id, before, copies)
                    metadata: dict[str, Any] = {"participant_id": bot.id, "after": after}
                    if copies is not None:
                        metadata["copies_after"] = copies
                    out.deliver(bot, "message", self._joined(bot, metadata), self._services.accepts)
                    log.info(
                        "external bot has no socket: triggering it again",
                        conversation_id=self.conversation.id,
                        participant_id=bot.id,
                        after=after,
                    )
        except ConversationGone:
            return
        except Exception:
            log.exception("calling back absent bots failed", conversation_id=self.conversation.id)

    async def _repeat(self, participant: Participant, sender_id: str, local_id: str) -> SaveResult:
        """A repeated ``local_id``: re-send the stored message to the sender's own sockets."""
        async with self._lock:
            async with self._services.db.read() as conn:
                existing = await msg_repo.find_by_local_id(
                    conn, self.conversation.id, sender_id, local_id
                )
            if existing is None:
                # PostgreSQL inserts nothing when the conversation's row is gone, as for a
                # duplicate (its number is taken from that row).
                if await self._services.deleted(self):
                    raise ConversationGone()
                raise RuntimeError(  # pragma: no cover - the row that conflicted is committed
                    "a duplicate local_id whose message cannot be found"
                )
            out = Outgoing(self.conversation.id)
            public = self.public(existing)
            if participant.is_manager and not existing.is_system:
                public["approved"] = existing.visible  # (as on its first delivery)
            out.echo_to(participant.id, public)
            await self._flush(out)
        return SaveResult(existing, duplicate=True)

    async def _save(
        self,
        conn: Connection,
        out: Outgoing,
        participant: Participant,
        new: NewMessage,
        command: ManagerCommand,
        file: FileInfo | None,
    ) -> SaveResult:
        if file is not None and file.path is not None:
            # (first: on PostgreSQL it locks the conversation's row before anything else)
            stored = await msg_repo.stored_file_bytes(conn, self.conversation.id)
            check_files_budget(stored, file.size or 0, self.settings.files_budget)
        sender = participant
        if command.on_behalf_of is not None:
            principal = await self.participant(command.on_behalf_of)
            if principal is None:
                raise CommandError(f"on_behalf_of: no participant {command.on_behalf_of}")
            sender = principal

        quoted: Message | None = None
        quoted_id = new.quoted_message_id
        # A plain quote only needs the message to exist here (and a person's, to be one people
        # see: else the answer would tell that a hidden message exists); recent visible ids
        # are known without a query. A command's target is always read, for its approval.
        if quoted_id is not None and (command.action is not None or quoted_id not in self._known):
            quoted = await msg_repo.get_message(conn, self.conversation.id, quoted_id)
            if quoted is None and not await conv_repo.get_conversation(conn, self.conversation.id):
                # (its quote went with it: a bot answering in a conversation deleted under
                # it, the text stored by another process, is told so, not refused)
                raise ConversationGone()
            if quoted is None or (participant.is_human and not quoted.visible):
                raise ValidationFailed(
                    {"quoted_message_id": ["The quoted message does not exist."]}
                )
            if quoted.visible:
                self._remember(quoted.id)

        targets = await self._targets(command)
        if command.action is not None and quoted is None:
            raise CommandError(f"{command.action} needs quoted_message_id")
        if targets:
            await self._check_copy_ids(conn, command.overrides)

        if participant.is_human or self.manager is None:
            approval = Approval.AUTOMATIC
        elif participant.is_manager and command.self_approve:
            approval = Approval.BY_MANAGER
        else:
            approval = Approval.NOT_APPROVED

        # 1. the action on the quoted message
        if command.action == "approve" and quoted is not None:
            quoted = await self._approve(conn, quoted)
            self._route(out, quoted)
        elif command.action == "redirect" and quoted is not None:
            await self._send_copies(conn, out, targets, quoted, command.overrides)

        # 2. the message itself (numbered as it is stored if people can see it at once)
        message = Message(
            id=new_id(),
            conversation_id=self.conversation.id,
            type=new.type,
            time=utcnow(),
            approval=approval,
            sender_id=sender.id,
            sent_by_human=sender.is_human,
            text=new.text,
            local_id=new.local_id,
            quoted_message_id=new.quoted_message_id,
            options=new.options,
            file=file
            if file is not None
            else (
                FileInfo(
                    external_url=new.external_file_url, name=_url_file_name(new.external_file_url)
                )
                if new.external_file_url
                else None
            ),
            command=_command_text(new.command) if participant.is_manager else None,
            sent_by_manager=participant.is_manager,
            real_sender_id=participant.id if sender.id != participant.id else None,
        )
        message = await self._store(conn, out, message, unless_duplicate=True)

        # 3. self_redirect: the stored message itself goes to the targets
        if command.self_redirect:
            await self._send_copies(conn, out, targets, message, command.overrides)
        if command.on_behalf_of is not None:
            log.info(
                "manager posted on behalf of a participant",
                conversation_id=self.conversation.id,
                participant_id=participant.id,
                principal_id=sender.id,
                message_id=message.id,
            )
        return SaveResult(message)

    async def _targets(self, command: ManagerCommand) -> list[Participant]:
        """Resolve ``bots`` (names or participant ids) for redirect / self_redirect."""
        if command.action != "redirect" and not command.self_redirect:
            return []
        found: list[Participant] = []
        for entry in command.bots:
            bot = next(
                (p for p in self.participants if p.is_bot and (p.id == entry or p.name == entry)),
                None,
            )
            if bot is None:
                await self.refresh()
                bot = next(
                    (
                        p
                        for p in self.participants
                        if p.is_bot and (p.id == entry or p.name == entry)
                    ),
                    None,
                )
            if bot is None:
                raise CommandError(f"bots: no bot {entry!r} in this conversation")
            if bot.is_manager:
                # An internal manager would get the message back as a person's, and
                # redirect it again, for ever.
                raise CommandError("bots: the manager cannot be a target")
            if all(bot.id != other.id for other in found):  # (named twice: one copy)
                found.append(bot)
        return found

    async def _check_copy_ids(self, conn: Connection, overrides: dict[str, Any]) -> None:
        """The ids a manager's overrides give its copies name messages and a participant
        of this conversation: the bot's answer quotes the copy's id, and is refused if it
        names none (the answer would be lost, after every retry of the delivery); a quote
        naming another conversation's message would show it to the bot.

        Raises:
            CommandError: an id naming nothing here.
        """
        for key in ("id", "quoted_message_id"):
            message_id = overrides.get(key)
            if message_id is not None and (
                await msg_repo.get_message(conn, self.conversation.id, message_id) is None
            ):
                raise CommandError(
                    f"overrides: {key} {message_id} is no message of this conversation"
                )
        sender_id = overrides.get("sender_id")
        if sender_id is not None and await self.participant(sender_id) is None:
            raise CommandError(
                f"overrides: sender_id {sender_id} is no participant of this conversation"
            )

    async def _approve(self, conn: Connection, target: Message) -> Message:
        return await msg_repo.approve_message(
            conn, target, approval=Approval.BY_MANAGER, at=utcnow()
        )

    # -- deliveries (also used by redirects) -------------------------------------------

    async def deliver_message_to_bot(
        self,
        message: Message,
        bot: Participant,
        field_overrides: dict[str, Any] | None = None,
    ) -> None:
        """Deliver one message to one bot only (its sockets and its class)."""
        await self._redirect_message(message, [bot.id], field_overrides)

    async def deliver_status_to_bot(self, status: dict[str, Any], bot: Participant) -> None:
        """Deliver a status update (``{"participants": [...]}``) to one bot's class."""
        async with self._transaction() as (_conn, out):
            out.deliver(bot, "status", status, self._services.accepts)

    async def _redirect_message(
        self,
        message: Message,
        targets: Sequence[str],
        field_overrides: dict[str, Any] | None = None,
    ) -> None:
        """Deliver a message to the named bots (names or participant ids), with
        ``field_overrides`` as a manager's redirect would have them.

        Raises:
            CommandError: a target is not a bot of this conversation, or an override one a
                manager's redirect could not give (:func:`checked_overrides`).
        """
        bots = await self._targets(ManagerCommand(action="redirect", bots=tuple(targets)))
        overrides = checked_overrides(field_overrides or {})
        async with self._transaction() as (conn, out):
            await self._check_copy_ids(conn, overrides)
            await self._send_copies(conn, out, bots, message, overrides)

    async def _send_copies(
        self,
        conn: Connection,
        out: Outgoing,
        bots: Sequence[Participant],
        message: Message,
        overrides: dict[str, Any] | None,
    ) -> None:
        """Redirected copies of ``message`` to ``bots``: a bot whose class takes it gets a
        delivery (durable); for any other (it answers over its own sockets) the copy is
        recorded, numbered, so that its socket gets it even when it was away as it went
        out (``?copies_after=``, :meth:`copies_after`)."""
        payload = redirected(self.public(message), overrides)
        accepts = self._services.accepts
        for bot in bots:
            number = None
            if not accepts(bot, "message", payload):
                number = await copy_repo.record(
                    conn, self.conversation.id, bot.id, payload, now=utcnow()
                )
            out.send_copy(bot, payload, accepts, number)

    # -- reading -----------------------------------------------------------------------

    async def replay(
        self, participant: Participant, after: int, *, batch: int = 1000
    ) -> tuple[list[tuple[int, str]], int | None]:
        """One batch of the replay of ``?after=N``: (seq, frame) of the first ``batch``
        visible messages with ``seq > after`` that this participant may see, and the
        ``after`` of the next batch (None when this one reached the end).

        A batch at a time, each in its own read, so that a socket resuming a long
        conversation holds one batch rather than all of it (web/ws.py reads the next once
        it has sent this one). Nothing is lost between reads: a message takes its ``seq``
        as it commits, in order.
        """
        async with self._services.db.read() as conn:
            found = await msg_repo.visible_after(conn, self.conversation.id, after, limit=batch)
        following = found[-1].seq if len(found) == batch else None
        has_manager = self.manager is not None
        frames = []
        for message in found:
            if (
                participant.is_bot
                and has_manager
                and not participant.is_manager
                and not message.is_system
            ):
                continue
            public = self.public(message)
            if participant.is_manager and not message.is_system:
                public["approved"] = True  # (visible: the replay's; events carry none live)
            frames.append((message.seq or 0, message_frame(public)))
        return frames, following

    async def awaiting_approval(
        self, participant: Participant, after: int
    ) -> list[tuple[int, str]]:
        """For the manager resuming with ``?after=N``: frames of the messages still waiting
        for its approval that were stored after the visible message N (``approved`` false,
        no ``seq``), oldest first. A bot's answer stored while it was away would otherwise
        never be approved, and people never see it. Some it may have seen and left
        unapproved on purpose: a manager must take them idempotently (by id). At most
        :data:`AWAITING_SENT` (the oldest)."""
        if not participant.is_manager:
            return []
        async with self._services.db.read() as conn:
            found = await msg_repo.awaiting_approval(
                conn, self.conversation.id, after=after, limit=AWAITING_SENT
            )
        if len(found) == AWAITING_SENT:
            log.warning(
                "more messages await approval than a connecting manager is sent",
                conversation_id=self.conversation.id,
                sent=AWAITING_SENT,
            )
        return [(0, message_frame({**self.public(m), "approved": False})) for m in found]

    def takes_copies(self, participant: Participant) -> bool:
        """Whether redirected copies may go to this participant (a bot, but the manager,
        of a conversation with a manager)."""
        return self.manager is not None and participant.is_bot and not participant.is_manager

    async def last_copy(self, participant: Participant) -> int:
        """The number of the newest redirected copy recorded for this bot (0: none)."""
        async with self._services.db.read() as conn:
            return await copy_repo.last(conn, participant.id)

    async def copies_after(
        self, participant: Participant, after: int
    ) -> tuple[list[tuple[int, str]], int]:
        """For a bot resuming with ``?copies_after=N``: the frames of the redirected copies
        recorded for it numbered above N, oldest first (with ``copy_seq``; no ``seq``, so
        each is paired with 0 as the socket's first frames are with their ``seq``), and
        the number of the last (N when there are none). At most :data:`COPIES_SENT` (the
        oldest): the bot gets the rest when it resumes again, after the last of these."""
        async with self._services.db.read() as conn:
            found = await copy_repo.after(conn, participant.id, after, limit=COPIES_SENT)
        if len(found) == COPIES_SENT:
            log.warning(
                "more redirected copies were missed than a resuming bot is sent",
                conversation_id=self.conversation.id,
                participant_id=participant.id,
                sent=COPIES_SENT,
            )
        frames = [(0, message_frame({**payload, "copy_seq": n})) for n, payload in found]
        return frames, found[-1][0] if found else after

    async def message_with_file(self, key: str) -> Message | None:
        """The message of this conversation that carries the uploaded file ``key``."""
        async with self._services.db.read() as conn:
            return await msg_repo.find_by_file_path(conn, self.conversation.id, key)

    async def stored_upto(self) -> int:
        """The highest seq stored in the conversation (0: none): where the seq order of
        a new subscription starts (``Broker.subscribe``'s ``since``)."""
        async with self._services.db.read() as conn:
            return await msg_repo.max_seq(conn, self.conversation.id)

    async def latest_visible(self) -> Message | None:
        """The newest visible message.

        Raises:
            ConversationGone: none at all: the conversation was deleted (it has at least
                its *conversation-created*).
        """
        async with self._services.db.read() as conn:
            found = await msg_repo.latest_visible(conn, self.conversation.id)
        if not found and await self._services.deleted(self):
            raise ConversationGone()
        return found[0] if found else None

    async def history(
        self, *, until: Any, since: Any, limit: int | None, page: int, page_size: int = 100
    ) -> tuple[int, list[dict[str, Any]]]:
        """A page of the visible history (PROTOCOL 3.9): count and representations.

        Pages without ``until`` / ``since`` are cached (see :class:`HistoryPages`): the
        conversation's visible count, read each time, tells whether a cached page is
        still the truth.
        """
        pages = self._services.history_pages
        async with self._services.db.read() as conn:
            key = visible = None
            if until is None and since is None:
                visible = await msg_repo.visible_count(conn, self.conversation.id)
                key = (self.conversation.id, visible, limit, page, page_size)
                cached = pages.get(key)
                if cached is not None:
                    return cached
            total, found = await msg_repo.history(
                conn,
                self.conversation.id,
                until=until,
                since=since,
                limit=limit,
                offset=(page - 1) * page_size,
                page_size=page_size,
                visible=visible,
            )
        if not total and await self._services.deleted(self):
            raise ConversationGone()
        result = total, [self.public(m) for m in found]
        if key is not None:
            pages.put(key, result)
        return result


def _command_text(raw: str | dict[str, Any] | None) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    return orjson.dumps(raw).decode()


def _url_file_name(url: str | None) -> str | None:
    """The last path segment of a URL, without its query (PROTOCOL 5.1)."""
    if not url:
        return None
    # Decoded, it may hold anything (NUL, control characters, "../"): made safe as an
    # uploaded file's name is.
    return display_name(unquote(urlsplit(url).path.rsplit("/", 1)[-1]))


__all__ = ["Chat", "ChatLimits", "ChatRegistry", "SaveResult"]
