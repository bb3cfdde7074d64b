"""The delivery outbox: one row per (event, bot), written in the event's transaction.

Each pending delivery is claimed by the process that runs it (its runner's ``owner``) until
a time that process keeps pushing forward (:func:`renew`). Another process takes a
delivery over only once that claim has lapsed (:func:`claim_lapsed`), which happens when
its process died, and only with the rest of its bot's backlog: not while another process
holds a live claim on any of them. A process that stops cleanly gives its claims up
(:func:`release`).
A bot participant's new delivery goes to the process that holds its pending ones, if any
(:func:`holder`), so that its deliveries keep running one at a time, in order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    bindparam,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    update,
)

from tertulia.storage.database import Connection
from tertulia.storage.tables import bot_states, deliveries

PENDING = "pending"
DONE = "done"
FAILED = "failed"

_THIS = deliveries.c.pk == bindparam("pk")
# Written into the SQL, not bound: only then can the planners use the partial index.
_IS_PENDING = deliveries.c.status == literal_column(f"'{PENDING}'")
_ENQUEUE = deliveries.insert()
_ENQUEUE_RETURNING = _ENQUEUE.returning(deliveries.c.pk)
_MINE = deliveries.c.claimed_by == bindparam("owner")
_PENDING_FOR = (
    select(deliveries)
    .where(
        _IS_PENDING,
        deliveries.c.bot_participant_id == bindparam("bot_participant_id"),
        deliveries.c.pk > bindparam("after"),
        _MINE,
    )
    .order_by(deliveries.c.pk)
    .limit(bindparam("limit"))
)
_HOLDER = (
    select(deliveries.c.claimed_by, deliveries.c.claimed_until)
    .where(
        _IS_PENDING,
        deliveries.c.bot_participant_id == bindparam("bot_participant_id"),
        deliveries.c.claimed_until > bindparam("now"),
    )
    .order_by(deliveries.c.pk.desc())
    .limit(1)
)
_CLAIM: dict[str, Any] = {"claimed_by": bindparam("owner"), "claimed_until": bindparam("until")}
_LAPSED = or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until < bindparam("now"))
# A bot's backlog goes whole: none of its deliveries is taken while another process holds
# a live claim on one of them. A process that died recorded its last deliveries after its
# last renewal, so their claims lapse one after another; taking each as it lapsed split
# the backlog between the processes polling then, which ran them at once, out of order.
_held = deliveries.alias("held")
_HELD_ELSEWHERE = (
    select(literal_column("1"))
    .where(
        _held.c.status == literal_column(f"'{PENDING}'"),
        _held.c.bot_participant_id == deliveries.c.bot_participant_id,
        _held.c.claimed_until >= bindparam("now"),
        _held.c.claimed_by != bindparam("owner"),
    )
    .exists()
)
_CLAIM_LAPSED = (
    update(deliveries)
    .where(_IS_PENDING, _LAPSED, ~_HELD_ELSEWHERE)
    .values(_CLAIM)
    .returning(deliveries.c.bot_participant_id)
)
_CLAIM_BOT_LAPSED = (
    update(deliveries)
    .where(
        _IS_PENDING,
        deliveries.c.bot_participant_id == bindparam("bot_participant_id"),
        _LAPSED,
        ~_HELD_ELSEWHERE,
    )
    .values(_CLAIM)
)
# Taken by a poll's claiming on PostgreSQL: two processes claiming at once would each take
# part of one bot's backlog (rows are locked one by one, in the order each scans them).
CLAIMS_LOCK = 0x7465_7274_756C_6961  # "tertulia"
_CLAIMS_LOCKED = select(func.pg_advisory_xact_lock(literal(CLAIMS_LOCK, BigInteger)))
_CLAIM_ALL = (
    update(deliveries).where(_IS_PENDING).values(_CLAIM).returning(deliveries.c.bot_participant_id)
)
# Rows a process updates in one statement are locked in key order (PostgreSQL), as
# finish_many's are: the renewal locked its rows in the order it scanned them while the
# same process's outcomes were being written, and the two deadlocked (chaos QA: 20
# texts a second in each of 50 conversations; the outcomes not written ran again).
_MINE_BY_KEY = (
    select(deliveries.c.pk)
    .where(_IS_PENDING, _MINE)
    .order_by(deliveries.c.pk)
    .with_for_update()
    .scalar_subquery()
)
_RENEW = (
    update(deliveries)
    .where(deliveries.c.pk.in_(_MINE_BY_KEY))
    .values(claimed_until=bindparam("until"))
    .returning(deliveries.c.bot_participant_id)
)
_RELEASE = (
    update(deliveries)
    .where(_IS_PENDING, _MINE)
    .values(claimed_by=null(), claimed_until=null())
    .returning(deliveries.c.conversation_id, deliveries.c.bot_participant_id)
)
_EXISTS = select(deliveries.c.pk).where(_THIS)
_RECORD_ATTEMPT = (
    update(deliveries)
    .where(_THIS)
    .values(attempts=bindparam("attempts"), last_error=bindparam("error"))
)
_FINISH = (
    update(deliveries)
    .where(_THIS)
    .values(
        status=bindparam("status"),
        attempts=bindparam("attempts"),
        finished_at=bindparam("now"),
        last_error=bindparam("error"),
    )
)
_STATE_OF = bot_states.c.participant_id == bindparam("participant_id")
_LOAD_STATE = select(bot_states.c.data).where(_STATE_OF)
_UPDATE_STATE = update(bot_states).where(_STATE_OF).values(data=bindparam("data"))
_INSERT_STATE = bot_states.insert()


@dataclass(slots=True)
class Delivery:
    pk: int
    conversation_id: str
    bot_participant_id: str
    kind: str  # "message" | "status"
    payload: dict[str, Any]
    attempts: int
    owner: str | None = None  # the runner that claimed it


@dataclass(frozen=True, slots=True)
class Claim:
    """Who runs a delivery (a runner's ``owner``) and until when, unless renewed."""

    owner: str
    until: datetime


@dataclass(slots=True)
class NewDelivery:
    conversation_id: str
    bot_participant_id: str
    kind: str
    payload: dict[str, Any]


def _delivery(row: Any) -> Delivery:
    return Delivery(
        pk=row.pk,
        conversation_id=row.conversation_id,
        bot_participant_id=row.bot_participant_id,
        kind=row.kind,
        payload=dict(row.payload),
        attempts=row.attempts,
        owner=row.claimed_by,
    )


async def enqueue(
    conn: Connection,
    new: list[NewDelivery],
    *,
    now: datetime,
    claim: Claim,
    held: Mapping[str, Claim] | None = None,
) -> list[Delivery]:
    """Record deliveries, claimed by ``claim``, or for a bot participant in ``held`` by the
    claim given there (see :func:`holder`); returns them with their keys, in the order given.

    On SQLite the key is the cursor's ``lastrowid``: a ``RETURNING`` clause costs SQLite a
    few microseconds more per row, and the statement layer a result row.
    """
    recorded = []
    sqlite = conn.dialect.name == "sqlite"
    for d in new:
        mine = claim if held is None else held.get(d.bot_participant_id, claim)
        result = await conn.execute(
            _ENQUEUE if sqlite else _ENQUEUE_RETURNING,
            {
                "conversation_id": d.conversation_id,
                "bot_participant_id": d.bot_participant_id,
                "kind": d.kind,
                "payload": d.payload,
                "status": PENDING,
                "attempts": 0,
                "created_at": now,
                "claimed_by": mine.owner,
                "claimed_until": mine.until,
            },
        )
        pk = result.lastrowid if sqlite else result.scalar_one()
        assert pk is not None
        recorded.append(
            Delivery(pk, d.conversation_id, d.bot_participant_id, d.kind, d.payload, 0, mine.owner)
        )
    return recorded


async def pending_for(
    conn: Connection, bot_participant_id: str, *, owner: str, limit: int, after: int = 0
) -> list[Delivery]:
    """The bot's oldest pending deliveries claimed by ``owner`` past ``after`` (a
    delivery's key), in the order they were recorded."""
    rows = await conn.execute(
        _PENDING_FOR,
        {"bot_participant_id": bot_participant_id, "owner": owner, "limit": limit, "after": after},
    )
    return [_delivery(r) for r in rows]


async def holder(conn: Connection, bot_participant_id: str, *, now: datetime) -> Claim | None:
    """The live claim on the bot participant's newest pending delivery, if any: the process
    running its deliveries now, to which a new one should go."""
    row = (
        await conn.execute(_HOLDER, {"bot_participant_id": bot_participant_id, "now": now})
    ).first()
    return Claim(row.claimed_by, row.claimed_until) if row is not None else None


async def claim_bot_lapsed(
    conn: Connection, bot_participant_id: str, claim: Claim, *, now: datetime
) -> int:
    """Claim the bot participant's pending deliveries that nobody holds (their process
    died, or stopped and gave them up); returns how many."""
    params = {
        "bot_participant_id": bot_participant_id,
        "owner": claim.owner,
        "until": claim.until,
        "now": now,
    }
    return (await conn.execute(_CLAIM_BOT_LAPSED, params)).rowcount


async def claim_lapsed(
    conn: Connection, claim: Claim, *, now: datetime, everything: bool = False
) -> set[str]:
    """Claim the pending deliveries nobody holds (no claim, or one lapsed before ``now``),
    or with ``everything`` every pending one; returns the bot participants that have them.

    One statement, one claimer at a time (an advisory lock on PostgreSQL): of processes
    claiming at once, each delivery goes to one, and one bot's backlog to one process.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(_CLAIMS_LOCKED)  # (until the transaction ends)
    params = {"owner": claim.owner, "until": claim.until, "now": now}
    rows = await conn.execute(_CLAIM_ALL if everything else _CLAIM_LAPSED, params)
    return {r.bot_participant_id for r in rows}


async def renew(conn: Connection, claim: Claim) -> set[str]:
    """Push the claims of ``claim.owner`` on its pending deliveries to ``claim.until``;
    returns the bot participants that have them."""
    rows = await conn.execute(_RENEW, {"owner": claim.owner, "until": claim.until})
    return {r.bot_participant_id for r in rows}


async def release(conn: Connection, owner: str) -> Counter[tuple[str, str]]:
    """Give up the claims of ``owner`` on its pending deliveries (any process may take
    them at once); returns how many there were per (conversation, bot participant)."""
    rows = await conn.execute(_RELEASE, {"owner": owner})
    return Counter((r.conversation_id, r.bot_participant_id) for r in rows)


async def exists(conn: Connection, pk: int) -> bool:
    """Whether the delivery is still stored (deleting its conversation deletes it)."""
    return (await conn.execute(_EXISTS, {"pk": pk})).first() is not None


async def record_attempt(conn: Connection, pk: int, *, attempts: int, error: str | None) -> None:
    await conn.execute(_RECORD_ATTEMPT, {"pk": pk, "attempts": attempts, "error": error})


async def finish(
    conn: Connection,
    pk: int,
    *,
    status: str,
    attempts: int,
    now: datetime,
    error: str | None = None,
) -> None:
    await conn.execute(
        _FINISH, {"pk": pk, "status": status, "attempts": attempts, "now": now, "error": error}
    )


@dataclass(slots=True)
class Outcome:
    """How a delivery ended."""

    pk: int
    status: str  # DONE | FAILED
    attempts: int
    error: str | None = None


async def finish_many(conn: Connection, outcomes: list[Outcome], *, now: datetime) -> None:
    """Record how several deliveries ended, in one batch (in key order: see _RENEW)."""
    await conn.execute(
        _FINISH,
        [
            {"pk": o.pk, "status": o.status, "attempts": o.attempts, "now": now, "error": o.error}
            for o in sorted(outcomes, key=lambda o: o.pk)
        ],
    )


async def load_state(conn: Connection, participant_id: str) -> dict[str, Any]:
    data = (
        await conn.execute(_LOAD_STATE, {"participant_id": participant_id})
    ).scalar_one_or_none()
    return dict(data) if data else {}


async def save_state(conn: Connection, participant_id: str, data: dict[str, Any]) -> None:
    values = {"participant_id": participant_id, "data": data}
    result = await conn.execute(_UPDATE_STATE, values)
    if result.rowcount == 0:
        await conn.execute(_INSERT_STATE, values)
