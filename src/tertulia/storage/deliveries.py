"""The delivery outbox: one row per (event, bot), written in the event's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tertulia.storage.tables import bot_states, deliveries

PENDING = "pending"
DONE = "done"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Delivery:
    pk: int
    conversation_id: str
    bot_participant_id: str
    kind: str  # "message" | "status"
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
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
    )


async def enqueue(
    conn: AsyncConnection, new: list[NewDelivery], *, now: datetime
) -> list[Delivery]:
    """Record deliveries; returns them with their keys, in the order given."""
    if not new:
        return []
    result = await conn.execute(
        deliveries.insert().returning(deliveries.c.pk, sort_by_parameter_order=True),
        [
            {
                "conversation_id": d.conversation_id,
                "bot_participant_id": d.bot_participant_id,
                "kind": d.kind,
                "payload": d.payload,
                "status": PENDING,
                "attempts": 0,
                "created_at": now,
            }
            for d in new
        ],
    )
    return [
        Delivery(pk, d.conversation_id, d.bot_participant_id, d.kind, d.payload, 0)
        for pk, d in zip(result.scalars().all(), new, strict=True)
    ]


async def pending_for(
    conn: AsyncConnection, bot_participant_id: str, *, limit: int
) -> list[Delivery]:
    """The bot's oldest pending deliveries, in the order they were recorded."""
    rows = await conn.execute(
        select(deliveries)
        .where(
            deliveries.c.status == PENDING, deliveries.c.bot_participant_id == bot_participant_id
        )
        .order_by(deliveries.c.pk)
        .limit(limit)
    )
    return [_delivery(r) for r in rows]


async def bots_with_pending(conn: AsyncConnection) -> list[tuple[str, str]]:
    """(conversation id, bot participant id) pairs that have pending deliveries."""
    rows = await conn.execute(
        select(deliveries.c.conversation_id, deliveries.c.bot_participant_id)
        .where(deliveries.c.status == PENDING)
        .distinct()
    )
    return [(r.conversation_id, r.bot_participant_id) for r in rows]


async def record_attempt(
    conn: AsyncConnection, pk: int, *, attempts: int, error: str | None
) -> None:
    await conn.execute(
        update(deliveries).where(deliveries.c.pk == pk).values(attempts=attempts, last_error=error)
    )


async def finish(
    conn: AsyncConnection,
    pk: int,
    *,
    status: str,
    attempts: int,
    now: datetime,
    error: str | None = None,
) -> None:
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.pk == pk)
        .values(status=status, attempts=attempts, finished_at=now, last_error=error)
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a delivery ended."""

    pk: int
    status: str  # DONE | FAILED
    attempts: int
    error: str | None = None


async def finish_many(conn: AsyncConnection, outcomes: list[Outcome], *, now: datetime) -> None:
    """Record how several deliveries ended, in one statement."""
    if not outcomes:
        return
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.pk == bindparam("outcome_pk"))
        .values(
            status=bindparam("outcome_status"),
            attempts=bindparam("outcome_attempts"),
            last_error=bindparam("outcome_error"),
            finished_at=now,
        ),
        [
            {
                "outcome_pk": o.pk,
                "outcome_status": o.status,
                "outcome_attempts": o.attempts,
                "outcome_error": o.error,
            }
            for o in outcomes
        ],
    )


async def load_state(conn: AsyncConnection, participant_id: str) -> dict[str, Any]:
    data = (
        await conn.execute(
            select(bot_states.c.data).where(bot_states.c.participant_id == participant_id)
        )
    ).scalar_one_or_none()
    return dict(data) if data else {}


async def save_state(conn: AsyncConnection, participant_id: str, data: dict[str, Any]) -> None:
    result = await conn.execute(
        update(bot_states).where(bot_states.c.participant_id == participant_id).values(data=data)
    )
    if result.rowcount == 0:
        await conn.execute(bot_states.insert().values(participant_id=participant_id, data=data))
