"""The benchmark scenarios. Each takes a running server and sizes, and returns numbers.

Every scenario talks to the server only through `bench.client`, so it measures Tertulia and
the bare echo server alike. Latencies are in milliseconds, rates per second. Problems are
returned as counts next to the figures, never dropped:

- `lost`: answers (or echoes) that never arrived, even after a grace period;
- `late`: answers that arrived after their timeout (not counted as answered);
- `duplicates`: a message id received twice on one socket;
- `errors`, `other`, `unparsable`: error frames, frames of unknown shape, non-JSON frames;
- `closed`: sockets the server closed on us.

Scenarios:

- `roundtrip`: one conversation with ECHO; send, wait for the answer, N times in sequence.
- `throughput`: K conversations with ECHO, each a closed loop for T seconds: answers/s.
- `create`: conversations created per second, in sequence and C at a time.
- `history`: a conversation filled with M messages; `GET messages/?limit=100` for T seconds,
  in sequence and C at a time.
- `fanout`: a room of H people, each with its own session and socket; one sends; time until
  all H sockets have it.
- `connections`: N idle sockets (rooms of G people); server RSS before and after.
- `manager`: round trips of `1+2` through the `CalcOrEchoManagerBot` manager, expecting `3`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

from bench.client import Api, Counters, Membership, RoundTrip, Socket, close_all, new_hex, open_many
from bench.servers import Target, rss_kib
from bench.stats import latency_summary, percentile

Result = dict[str, float]
Outcome = tuple[Result, Counters]
PROBLEMS = ("errors", "other", "unparsable", "duplicates", "late", "closed")


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each scenario does. The defaults are the issue's; `QUICK` smoke-tests."""

    answer_timeout: float = 5.0
    roundtrip_n: int = 300
    roundtrip_warmup: int = 20
    throughput_conversations: int = 20
    throughput_seconds: float = 10.0
    create_n: int = 300
    create_concurrency: int = 16
    history_fill: int = 3000
    history_window: int = 50
    history_seconds: float = 5.0
    history_concurrency: int = 8
    fanout_people: tuple[int, ...] = (50, 1000)
    fanout_repeats: int = 30
    connections: int = 10_000
    connections_group: int = 20
    connections_hold: float = 5.0
    manager_n: int = 300
    manager_warmup: int = 5
    setup_timeout: float = 300.0


QUICK = Sizes(
    roundtrip_n=50,
    roundtrip_warmup=5,
    throughput_conversations=4,
    throughput_seconds=2.0,
    create_n=30,
    create_concurrency=4,
    history_fill=200,
    history_seconds=1.0,
    history_concurrency=4,
    fanout_people=(10, 50),
    fanout_repeats=5,
    connections=200,
    connections_hold=1.0,
    manager_n=10,
    manager_warmup=2,
    setup_timeout=60.0,
)


@contextlib.asynccontextmanager
async def _api(target: Target, max_connections: int = 32) -> AsyncIterator[Api]:
    http = target.http(max_connections)
    try:
        yield Api(http)
    finally:
        await http.aclose()


@contextlib.contextmanager
def _frozen_gc() -> Iterator[None]:
    """Moves the set-up's objects out of the collector's sight while measuring.

    With a thousand sockets in the client, a full collection takes tens of milliseconds and
    shows up as the server's p99; freezing keeps the client's pauses out of the figures.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _problems(counters: Counters) -> Result:
    counts = counters.as_dict()
    return {name: counts[name] for name in PROBLEMS}


async def _round_trips(
    sock: Socket, sizes: Sizes, *, count: int = 10**7, until: float = math.inf, text: str = ""
) -> list[RoundTrip]:
    """Round trips one after the other: `count` of them, or until `until` (perf_counter)."""
    deadline = min(until, time.perf_counter() + sizes.setup_timeout)
    trips: list[RoundTrip] = []
    while len(trips) < count and time.perf_counter() < deadline:
        trips.append(await sock.round_trip(text or f"bench {new_hex()}", sizes.answer_timeout))
    return trips


async def _settle(trips: list[RoundTrip], grace: float = 2.0) -> int:
    """Gives timed-out trips a last chance (so they count as late); returns the lost."""
    waiting = [t.answered for t in trips if not t.answered.done()]
    if waiting:
        await asyncio.wait(waiting, timeout=grace)
    return sum(not t.answered.done() for t in trips)


def _in_time(trips: list[RoundTrip]) -> list[float]:
    return [t.latency for t in trips if not t.timed_out]


async def _conversation_socket(
    api: Api, target: Target, bots: list[str], counters: Counters
) -> Socket:
    member = await api.create("bench", bots)
    sock = await Socket.open(target.ws_base, member, counters)
    await counters.all_greeted(1, 10.0)
    await counters.quiet(0.1, 5.0)
    return sock


async def roundtrip(target: Target, sizes: Sizes) -> Outcome:
    """Sequential round trips through ECHO in one conversation: latency percentiles."""
    counters = Counters()
    async with _api(target) as api:
        sock = await _conversation_socket(api, target, ["ECHO"], counters)
        try:
            await _round_trips(sock, sizes, count=sizes.roundtrip_warmup)
            with _frozen_gc():
                trips = await _round_trips(sock, sizes, count=sizes.roundtrip_n)
            lost = await _settle(trips)
        finally:
            await close_all([sock])
    answered = _in_time(trips)
    return {**latency_summary(answered), "answers": len(answered), "lost": lost}, counters


async def throughput(target: Target, sizes: Sizes) -> Outcome:
    """K closed loops (one per conversation) for T seconds: answers/s and latency."""
    counters = Counters()
    async with _api(target) as api:
        members = await asyncio.gather(
            *(api.create(f"loop{i}", ["ECHO"]) for i in range(sizes.throughput_conversations))
        )
        sockets, failures = await open_many(target.ws_base, list(members), counters)
        try:
            if failures:
                raise failures[0]
            await counters.quiet(0.2, 10.0)
            await asyncio.gather(*(_round_trips(s, sizes, count=5) for s in sockets))
            with _frozen_gc():
                started = time.perf_counter()
                end = started + sizes.throughput_seconds
                loops = await asyncio.gather(*(_round_trips(s, sizes, until=end) for s in sockets))
                elapsed = time.perf_counter() - started
            trips = [t for loop in loops for t in loop]
            lost = await _settle(trips)
        finally:
            await close_all(sockets)
    answered = _in_time(trips)
    rate = {"answers_per_s": len(answered) / elapsed}
    return {**rate, **latency_summary(answered), "lost": lost}, counters


async def create(target: Target, sizes: Sizes) -> Outcome:
    """Conversations created per second: one at a time, then C at a time."""
    async with _api(target, max_connections=sizes.create_concurrency) as api:
        for i in range(5):
            await api.create(f"warm{i}", ["ECHO"])
        with _frozen_gc():
            sequential, latencies = await _timed_creates(api, sizes.create_n, 1)
            concurrent, _ = await _timed_creates(api, sizes.create_n, sizes.create_concurrency)
    return {
        "sequential_per_s": sequential,
        "concurrent_per_s": concurrent,
        "sequential_p50_ms": percentile(latencies, 50) * 1000,
    }, Counters()


async def _timed_creates(api: Api, count: int, concurrency: int) -> tuple[float, list[float]]:
    slots = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with slots:
            began = time.perf_counter()
            await api.create(f"bench{i}", ["ECHO"])
            latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return count / (time.perf_counter() - started), latencies


async def history(target: Target, sizes: Sizes) -> Outcome:
    """History page reads per second from a conversation of M messages."""
    counters = Counters()
    async with _api(target, max_connections=sizes.history_concurrency) as api:
        member = await api.create("bench", [])
        sock = await Socket.open(target.ws_base, member, counters)
        try:
            fill_started = time.perf_counter()
            lost = await _fill(sock, sizes)
            fill_rate = sizes.history_fill / (time.perf_counter() - fill_started)
        finally:
            await close_all([sock])
        page = len(await api.history(member.conversation_id, member.session_key))
        with _frozen_gc():
            sequential = await _read_history(api, member, sizes.history_seconds, 1)
            concurrent = await _read_history(
                api, member, sizes.history_seconds, sizes.history_concurrency
            )
    return {
        "sequential_per_s": sequential,
        "concurrent_per_s": concurrent,
        "page_size": page,
        "fill_messages_per_s": fill_rate,
        "lost": lost,
    }, counters


async def _fill(sock: Socket, sizes: Sizes) -> int:
    """Sends M messages, at most W awaiting their echo; returns the echoes never seen."""
    pending: deque[asyncio.Future[float]] = deque()
    lost = 0
    deadline = time.perf_counter() + sizes.setup_timeout
    for _ in range(sizes.history_fill):
        if len(pending) >= sizes.history_window:
            lost += await _echoed(pending.popleft(), sizes.answer_timeout)
        if time.perf_counter() > deadline:
            break
        local_id = new_hex()
        pending.append(sock.watch(local_id))
        await sock.send_text(f"bench {local_id}", local_id)
    while pending:
        lost += await _echoed(pending.popleft(), sizes.answer_timeout)
    return lost


async def _echoed(future: asyncio.Future[float], timeout: float) -> int:
    await asyncio.wait([future], timeout=timeout)
    return 0 if future.done() else 1


async def _read_history(api: Api, member: Membership, seconds: float, workers: int) -> float:
    count = 0
    end = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < end:
            await api.history(member.conversation_id, member.session_key, limit=100)
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return count / (time.perf_counter() - started)


async def fanout(target: Target, sizes: Sizes) -> Outcome:
    """For each room size H: time until every one of H sockets has one person's message."""
    counters = Counters()
    result: Result = {}
    async with _api(target, max_connections=16) as api:
        for people in sizes.fanout_people:
            result.update(await _fanout_room(api, target, people, sizes, counters))
    return result, counters


async def _fanout_room(
    api: Api, target: Target, people: int, sizes: Sizes, counters: Counters
) -> Result:
    began = time.perf_counter()
    members = await _room(api, people)
    greeted_before = counters.greeted
    sockets, failures = await open_many(target.ws_base, members, counters)
    try:
        if failures:
            raise failures[0]
        greeted = await counters.all_greeted(greeted_before + len(sockets), sizes.setup_timeout)
        quiet = greeted and await counters.quiet(0.5, sizes.setup_timeout)
        setup = time.perf_counter() - began
        with _frozen_gc():
            times, late, lost = await _broadcasts(sockets, sizes)
        still_open = sum(s.is_open for s in sockets)
    finally:
        await close_all(sockets)
    summary = latency_summary(times)
    return {
        f"p50_ms_{people}": summary["p50_ms"],
        f"p99_ms_{people}": summary["p99_ms"],
        f"late_{people}": late,
        f"lost_{people}": lost,
        f"open_{people}": still_open,
        f"setup_s_{people}": setup,
        f"setup_quiet_{people}": float(quiet),
    }


async def _room(api: Api, people: int) -> list[Membership]:
    """Creates a room and has `people - 1` more people join it, each with its own session."""
    creator = await api.create("p0", [])
    joins = [api.join(creator.conversation_id, f"p{i}") for i in range(1, people)]
    return [creator, *await asyncio.gather(*joins)]


async def _broadcasts(sockets: list[Socket], sizes: Sizes) -> tuple[list[float], int, int]:
    """Each repeat, one person sends; the time until every socket still open has it.

    Returns the times of the repeats every open socket got in time, and the copies that came
    late (after the timeout) and never. Sockets the server closed are counted under
    `closed`, not again as missing each repeat.
    """
    times: list[float] = []
    missed: list[asyncio.Future[float]] = []
    for repeat in range(sizes.fanout_repeats):
        live = [s for s in sockets if s.is_open]
        if not live:
            break
        local_id = new_hex()
        arrivals = [s.watch(local_id) for s in live]
        trip = await live[repeat % len(live)].send_text(f"bench {local_id}", local_id)
        _, missing = await asyncio.wait(arrivals, timeout=sizes.answer_timeout)
        if missing:
            missed.extend(missing)
        else:
            times.append(max(a.result() for a in arrivals) - trip.sent_at)
        await sockets[0].counters.quiet(0.05, 2.0)
    if missed:
        await asyncio.wait(missed, timeout=2.0)
    late = sum(f.done() for f in missed)
    return times, late, len(missed) - late


async def connections(target: Target, sizes: Sizes) -> Outcome:
    """N idle sockets held by one server process: its RSS before and after, KiB each."""
    counters = Counters()
    idle = rss_kib(target.pid)
    groups = math.ceil(sizes.connections / sizes.connections_group)
    async with _api(target, max_connections=16) as api:
        rooms = await asyncio.gather(*(_room(api, sizes.connections_group) for _ in range(groups)))
    members = [m for room in rooms for m in room][: sizes.connections]
    await asyncio.sleep(0.5)
    before = rss_kib(target.pid)
    began = time.perf_counter()
    sockets, failures = await open_many(target.ws_base, members, counters, concurrency=64)
    try:
        await counters.all_greeted(len(sockets), sizes.setup_timeout)
        connect_s = time.perf_counter() - began
        await counters.quiet(0.5, sizes.setup_timeout)
        await asyncio.sleep(sizes.connections_hold)
        held = sum(s.is_open for s in sockets)
        after = rss_kib(target.pid)
    finally:
        await close_all(sockets, timeout=5.0)
    return {
        "held": held,
        "failed": len(failures),
        "ungreeted": len(sockets) - counters.greeted,
        "connect_per_s": len(sockets) / connect_s,
        "rss_idle_mib": idle / 1024,
        "rss_before_mib": before / 1024,
        "rss_after_mib": after / 1024,
        "kib_per_connection": (after - before) / held if held else math.nan,
    }, counters


async def manager(target: Target, sizes: Sizes) -> Outcome:
    """Round trips of `1+2` through the manager, which redirects to Calculator and approves."""
    counters = Counters()
    async with _api(target) as api:
        sock = await _conversation_socket(api, target, ["Calculator", "ECHO"], counters)
        try:
            await _round_trips(sock, sizes, count=sizes.manager_warmup, text="1+2")
            with _frozen_gc():
                trips = await _round_trips(sock, sizes, count=sizes.manager_n, text="1+2")
            lost = await _settle(trips)
        finally:
            await close_all([sock])
    answered = _in_time(trips)
    expected = "1+2" if target.bare else "3"
    wrong = sum(1 for t in trips if t.answer is not None and not _is_answer(t, expected))
    return {**latency_summary(answered), "lost": lost, "wrong": wrong}, counters


def _is_answer(trip: RoundTrip, text: str) -> bool:
    answer = trip.answer or {}
    return answer.get("text") == text and answer.get("sent_by_human") is False


ScenarioFn = Callable[[Target, Sizes], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named scenario: its function, whether it needs the manager server, its time cap."""

    name: str
    run: ScenarioFn
    manager: bool = False
    budget_s: float = 300.0

    async def measure(self, target: Target, sizes: Sizes) -> Result:
        """Runs once within the time cap; returns the figures and the problem counts."""
        async with asyncio.timeout(self.budget_s):
            figures, counters = await self.run(target, sizes)
        return {**figures, **_problems(counters)}


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("roundtrip", roundtrip, budget_s=180),
        Scenario("throughput", throughput, budget_s=180),
        Scenario("create", create, budget_s=180),
        Scenario("history", history, budget_s=600),
        Scenario("fanout", fanout, budget_s=1200),
        Scenario("connections", connections, budget_s=1200),
        Scenario("manager", manager, manager=True, budget_s=600),
    )
}
