"""The database layer, on SQLite and PostgreSQL alike: transactions, errors, conversions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from support.environment import DatabaseTarget
from tertulia.domain.ids import new_id, new_session_key
from tertulia.domain.model import (
    Approval,
    Conversation,
    FileInfo,
    Message,
    MessageType,
    Participant,
    ParticipantType,
    SystemEvent,
)
from tertulia.errors import ConfigurationError, Conflict
from tertulia.storage import conversations as conv_repo
from tertulia.storage import deliveries as outbox
from tertulia.storage import messages as msg_repo
from tertulia.storage import sessions as session_repo
from tertulia.storage import sql as sql_module
from tertulia.storage.database import Database, open_database
from tertulia.storage.migrate import upgrade_async
from tertulia.storage.postgres import PostgresDatabase
from tertulia.storage.sql import Result
from tertulia.storage.tables import conversations, messages, participants


@pytest.fixture
async def db(database: DatabaseTarget) -> AsyncIterator[Database]:
    """A migrated, empty database, opened as the server opens it."""
    await upgrade_async(database.url, database.schema)
    opened = await open_database(database.url, schema=database.schema)
    try:
        yield opened
    finally:
        await opened.close()


async def new_conversation(db: Database) -> tuple[Conversation, Participant]:
    conversation = Conversation(id=new_id(), name="c", created_at=datetime.now(UTC))
    person = Participant(
        id=new_id(),
        conversation_id=conversation.id,
        name="ana",
        type=ParticipantType.HUMAN,
    )
    async with db.write() as conn:
        await conv_repo.insert_conversation(conn, conversation)
        await conv_repo.insert_participants(conn, [person], first_ordinal=0)
    return conversation, person


def text_message(conversation: Conversation, person: Participant, **fields: object) -> Message:
    values: dict[str, object] = {
        "id": new_id(),
        "conversation_id": conversation.id,
        "type": MessageType.TEXT,
        "time": datetime.now(UTC),
        "approval": Approval.AUTOMATIC,
        "sender_id": person.id,
        "sent_by_human": True,
        "text": "olá",
    }
    values.update(fields)
    return Message(**values)  # type: ignore[arg-type]


async def test_a_committed_write_is_read_back(db: Database) -> None:
    """What a write block stored is there for reads once the block has ended."""
    conversation, person = await new_conversation(db)
    async with db.read() as conn:
        found = await conv_repo.get_conversation(conn, conversation.id)
        people = await conv_repo.list_participants(conn, conversation.id)
    assert found == conversation
    assert people == [person]


async def insert_then_fail(db: Database, conversation: Conversation) -> None:
    """A use case that stores ``conversation``, then fails (raises RuntimeError)."""
    async with db.write() as conn:
        await conv_repo.insert_conversation(conn, conversation)
        raise RuntimeError("use case failed")


async def test_a_failed_write_leaves_nothing(db: Database) -> None:
    """An exception inside a write block rolls back everything the block did."""
    conversation = Conversation(id=new_id(), name="gone", created_at=datetime.now(UTC))

    with pytest.raises(RuntimeError):
        await insert_then_fail(db, conversation)
    async with db.read() as conn:
        assert await conv_repo.get_conversation(conn, conversation.id) is None


async def test_a_broken_constraint_is_a_conflict(db: Database) -> None:
    """A duplicate key raises Conflict; the transaction is undone and the database usable.
    Its detail, which clients are answered, says nothing of the database (REST QA F9: the
    driver's words, with the constraint's name and the key, went out in a 409); the
    driver's words are its ``reason``, for the log."""
    conversation, _ = await new_conversation(db)

    async def duplicate() -> None:
        async with db.write() as conn:
            await conv_repo.insert_conversation(conn, conversation)

    with pytest.raises(Conflict) as refused:
        await duplicate()
    assert refused.value.body() == {
        "detail": "The change conflicts with another one.",
        "code": "conflict",
    }
    assert conversation.id in refused.value.reason or "conversations" in refused.value.reason
    again, _ = await new_conversation(db)
    async with db.read() as conn:
        assert await conv_repo.get_conversation(conn, again.id) == again


async def test_values_round_trip_with_their_types(db: Database) -> None:
    """Times (aware UTC, microseconds), JSON, booleans, NULLs and enums come back as written."""
    conversation, person = await new_conversation(db)
    moment = datetime(2026, 12, 2, 3, 4, 5, 678901, tzinfo=UTC)
    system = Message(
        id=new_id(),
        conversation_id=conversation.id,
        type=MessageType.SYSTEM,
        time=moment,
        approval=Approval.AUTOMATIC,
        event=SystemEvent.PARTICIPANT_JOINED,
        text="participant-joined",
        additional_metadata={"participant_id": person.id},
        seq=1,
    )
    upload = text_message(
        conversation,
        person,
        type=MessageType.IMAGE,
        time=moment + timedelta(seconds=1),
        options=("sim", "não"),
        file=FileInfo(path="chat/x.png", size=12, name="x.png", mime_type="image/png"),
        seq=2,
    )
    async with db.write() as conn:
        await msg_repo.insert_messages(conn, [system, upload])
    async with db.read() as conn:
        assert await msg_repo.get_message(conn, conversation.id, system.id) == system
        assert await msg_repo.get_message(conn, conversation.id, upload.id) == upload


async def test_naive_and_offset_times_are_stored_as_utc(db: Database) -> None:
    """A time with another offset is stored as the same instant and read back in UTC."""
    conversation, person = await new_conversation(db)
    local = datetime(2026, 12, 1, 21, 30, tzinfo=timezone(timedelta(hours=-3)))  # 00:30 UTC
    message = text_message(conversation, person, time=local)
    async with db.write() as conn:
        await msg_repo.insert_messages(conn, [message])
    async with db.read() as conn:
        found = await msg_repo.get_message(conn, conversation.id, message.id)
    assert found is not None
    assert found.time == datetime(2026, 12, 2, 0, 30, tzinfo=UTC)
    assert found.time.tzinfo is UTC


async def test_statements_built_per_call_also_run(db: Database) -> None:
    """Ad hoc Core statements (an IN list, literal values) run and give named rows."""
    first, _ = await new_conversation(db)
    second, _ = await new_conversation(db)
    async with db.read() as conn:
        rows = await conn.execute(
            select(conversations.c.id, conversations.c.name)
            .where(conversations.c.id.in_([first.id, second.id, new_id()]))
            .order_by(conversations.c.id)
        )
        ids = [row.id for row in rows]
        count = await conn.execute(select(participants.c.id).where(participants.c.name == "ana"))
    assert ids == sorted([first.id, second.id])
    assert len(count.all()) == 2


async def test_an_insert_leaving_out_a_column_with_a_default_stores_its_default(
    db: Database,
) -> None:
    """A column with a default in the table (a conversation's ``ended`` and ``last_seq``)
    gets it when an ``INSERT`` does not name it, as with SQLAlchemy's own executor."""
    conversation = Conversation(id=new_id(), name="c", created_at=datetime.now(UTC))
    async with db.write() as conn:
        await conn.execute(
            conversations.insert(),
            {"id": conversation.id, "name": "c", "created_at": conversation.created_at},
        )
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(conversations.c.ended, conversations.c.last_seq).where(
                    conversations.c.id == conversation.id
                )
            )
        ).one()
    assert (row.ended, row.last_seq) == (False, 0)


async def store_visible(db: Database, conversation: Conversation, person: Participant) -> int:
    """One visible message, numbered as the server numbers it; returns the seq."""
    async with db.write() as conn:
        stored = await msg_repo.insert_message(conn, text_message(conversation, person, text="m"))
    assert stored is not None
    assert stored.seq is not None
    return stored.seq


async def test_a_seq_is_taken_in_the_writing_transaction(db: Database) -> None:
    """Numbers count up per conversation, and a rolled back use case gives its seq back."""
    conversation, person = await new_conversation(db)
    other, someone = await new_conversation(db)
    assert await store_visible(db, conversation, person) == 1
    assert await store_visible(db, other, someone) == 1

    async def undone() -> None:
        async with db.write() as conn:
            stored = await msg_repo.insert_message(conn, text_message(conversation, person))
            assert stored is not None
            assert stored.seq == 2
            raise RuntimeError("undone")

    with pytest.raises(RuntimeError):
        await undone()
    assert await store_visible(db, conversation, person) == 2
    assert await store_visible(db, other, someone) == 2
    async with db.read() as conn:
        assert await msg_repo.visible_count(conn, conversation.id) == 2


async def test_a_failed_use_case_in_a_shared_commit_gives_its_seq_back(db: Database) -> None:
    """Use cases that share a transaction (SQLite's group commit): the one that fails in the
    middle gives its number back, and the ones around it keep theirs, with no gap."""
    conversation, person = await new_conversation(db)

    async def one(text: str, *, fail: bool = False) -> int | None:
        async with db.write() as conn:
            stored = await msg_repo.insert_message(
                conn, text_message(conversation, person, text=text)
            )
            if fail:
                raise RuntimeError("undone")
        return stored.seq if stored else None

    outcomes = await asyncio.gather(
        one("a"), one("b", fail=True), one("c"), one("d"), return_exceptions=True
    )
    assert isinstance(outcomes[1], RuntimeError)
    assert await store_visible(db, conversation, person) == 4
    async with db.read() as conn:
        assert await msg_repo.visible_count(conn, conversation.id) == 4
        stored = await conn.execute(
            select(messages.c.text, messages.c.seq)
            .where(messages.c.conversation_id == conversation.id)
            .order_by(messages.c.seq)
        )
        rows = [tuple(row) for row in stored]
    assert [seq for _, seq in rows] == [1, 2, 3, 4]
    assert sorted(text for text, _ in rows[:3]) == ["a", "c", "d"]
    assert rows[3] == ("m", 4)


async def test_seqs_go_on_after_the_database_is_opened_again(database: DatabaseTarget) -> None:
    """A restarted server numbers on from the stored messages (nothing kept in memory is
    needed for that)."""
    await upgrade_async(database.url, database.schema)
    first = await open_database(database.url, schema=database.schema)
    try:
        conversation, person = await new_conversation(first)
        for expected in (1, 2, 3):
            assert await store_visible(first, conversation, person) == expected
    finally:
        await first.close()
    second = await open_database(database.url, schema=database.schema)
    try:
        assert await store_visible(second, conversation, person) == 4
    finally:
        await second.close()


def test_result_helpers_say_what_they_found() -> None:
    """scalar_one insists on one row; the other helpers take what there is."""
    empty, two = Result([]), Result([(1,), (2,)])
    assert empty.first() is None
    assert empty.scalar() is None
    assert empty.scalar_one_or_none() is None
    assert two.scalars() == [1, 2]
    with pytest.raises(LookupError):
        empty.scalar_one()
    with pytest.raises(LookupError):
        two.one()


async def test_an_unsupported_url_is_refused() -> None:
    """Only SQLite files and PostgreSQL are databases here, each refused with one line."""
    with pytest.raises(ConfigurationError, match="unsupported database URL"):
        await open_database("mysql+aiomysql://root@127.0.0.1/test")
    with pytest.raises(ConfigurationError, match="SQLite needs a file"):
        await open_database("sqlite+aiosqlite://")
    with pytest.raises(ConfigurationError, match="SQLite needs a file"):
        await open_database("sqlite:///:memory:")


async def test_concurrent_use_cases_all_land(db: Database) -> None:
    """Many use cases at once (SQLite: one writer, shared commits) each store their rows."""
    conversation, person = await new_conversation(db)

    async def one(i: int) -> None:
        async with db.write() as conn:
            await msg_repo.insert_message(conn, text_message(conversation, person, text=f"m{i}"))

    await asyncio.gather(*(one(i) for i in range(40)))
    async with db.read() as conn:
        total, page = await msg_repo.history(
            conn,
            conversation.id,
            until=None,
            since=None,
            limit=None,
            offset=0,
            page_size=100,
        )
    assert total == 40
    assert sorted(m.text for m in page) == sorted(f"m{i}" for i in range(40))
    assert sorted(m.seq or 0 for m in page) == list(range(1, 41))


async def new_bot(db: Database, conversation: Conversation) -> Participant:
    bot = Participant(
        id=new_id(),
        conversation_id=conversation.id,
        name="ECHO",
        type=ParticipantType.BOT,
        bot_name="ECHO",
    )
    async with db.write() as conn:
        await conv_repo.insert_participants(conn, [bot], first_ordinal=1)
    return bot


def claim_for(owner: str, seconds: float, now: datetime | None = None) -> outbox.Claim:
    return outbox.Claim(owner, (now or datetime.now(UTC)) + timedelta(seconds=seconds))


async def test_deliveries_are_recorded_with_their_own_keys(db: Database) -> None:
    """enqueue gives each delivery the key of its own row, in the order given (SQLite reads
    it off the cursor, PostgreSQL from RETURNING), and the keys find the rows again."""
    conversation, _ = await new_conversation(db)
    bot = await new_bot(db, conversation)
    new = [
        outbox.NewDelivery(conversation.id, bot.id, "message", {"text": f"m{i}"}) for i in range(3)
    ]
    claim = claim_for("here", 30)
    async with db.write() as conn:
        first = await outbox.enqueue(conn, new[:1], now=datetime.now(UTC), claim=claim)
        more = await outbox.enqueue(conn, new[1:], now=datetime.now(UTC), claim=claim)
    recorded = first + more
    assert [d.payload["text"] for d in recorded] == ["m0", "m1", "m2"]
    keys = [d.pk for d in recorded]
    assert keys == sorted(set(keys))
    async with db.read() as conn:
        pending = await outbox.pending_for(conn, bot.id, owner="here", limit=10)
    assert [(d.pk, d.payload["text"]) for d in pending] == [
        (d.pk, d.payload["text"]) for d in recorded
    ]


async def record(db: Database, bot: Participant, claims: dict[str, outbox.Claim]) -> None:
    """One delivery to ``bot`` per claim, its text the claim's name."""
    async with db.write() as conn:
        for text, claim in claims.items():
            new = outbox.NewDelivery(bot.conversation_id, bot.id, "message", {"text": text})
            await outbox.enqueue(conn, [new], now=datetime.now(UTC), claim=claim)


async def texts_held(db: Database, bot: Participant, owner: str) -> list[str]:
    async with db.read() as conn:
        pending = await outbox.pending_for(conn, bot.id, owner=owner, limit=100)
    return [d.payload["text"] for d in pending]


async def test_only_lapsed_claims_are_taken_and_each_by_one_claimer(db: Database) -> None:
    """Several processes claim at once: each delivery whose claim lapsed (its process died)
    goes to exactly one of them; a claim still running stays with its process."""
    conversation, _ = await new_conversation(db)
    bot = await new_bot(db, conversation)
    other = await new_bot(db, (await new_conversation(db))[0])
    lapsed = {f"lapsed{i}": claim_for("dead", -1) for i in range(20)}
    await record(db, bot, lapsed)
    await record(db, other, {"running": claim_for("alive", 60)})

    async def claim(owner: str) -> set[str]:
        async with db.write() as conn:
            return await outbox.claim_lapsed(conn, claim_for(owner, 30), now=datetime.now(UTC))

    claimers = [f"p{i}" for i in range(4)]
    told = await asyncio.gather(*(claim(owner) for owner in claimers))
    held = {owner: await texts_held(db, bot, owner) for owner in claimers}
    taken = [text for texts in held.values() for text in texts]
    assert sorted(taken) == sorted(lapsed)  # each once, none of the running one
    assert [bool(bots) for bots in told] == [bool(held[owner]) for owner in claimers]
    assert await texts_held(db, other, "alive") == ["running"]
    assert await texts_held(db, bot, "dead") == []


async def test_a_bots_backlog_is_taken_whole_once_every_claim_on_it_lapsed(db: Database) -> None:
    """QA (three processes, one killed): the deliveries a process recorded after its last
    renewal lapse one after another; each taken as it lapsed split one bot's backlog
    between the processes polling then, which ran them at once, out of order. Now none is
    taken while another process holds a live claim on any of the bot's deliveries; once
    the last lapsed, one claimer takes them all."""
    conversation, _ = await new_conversation(db)
    bot = await new_bot(db, conversation)
    now = datetime.now(UTC)
    await record(db, bot, {f"t{i}": claim_for("dead", i + 1, now) for i in range(3)})

    for seconds, owner in ((1.5, "a"), (2.5, "b")):  # t0, then t1 too, have lapsed
        async with db.write() as conn:
            moment = now + timedelta(seconds=seconds)
            assert (
                await outbox.claim_lapsed(conn, claim_for(owner, 30, moment), now=moment) == set()
            )
        assert await texts_held(db, bot, owner) == []
    async with db.write() as conn:
        moment = now + timedelta(seconds=3.5)
        assert await outbox.claim_lapsed(conn, claim_for("c", 30, moment), now=moment) == {bot.id}
    assert await texts_held(db, bot, "c") == ["t0", "t1", "t2"]


async def test_renewed_claims_are_kept_and_released_ones_taken_at_once(db: Database) -> None:
    """A process renews only its own pending claims; what it gives up (stopping cleanly)
    another process takes at once, while a renewed claim is never taken. A lapsed claim on
    a bot whose other deliveries a live process holds goes to that process alone."""
    conversation, _ = await new_conversation(db)
    bot = await new_bot(db, conversation)
    now = datetime.now(UTC)
    await record(
        db,
        bot,
        {"a1": claim_for("a", 1, now), "a2": claim_for("a", 1, now), "b": claim_for("b", 1, now)},
    )
    later = now + timedelta(seconds=5)  # every claim recorded has lapsed by then
    async with db.write() as conn:
        assert await outbox.renew(conn, claim_for("a", 30, later)) == {bot.id}
        assert await outbox.claim_lapsed(conn, claim_for("c", 30, later), now=later) == set()
        assert await outbox.claim_lapsed(conn, claim_for("a", 30, later), now=later) == {bot.id}
    assert await texts_held(db, bot, "a") == ["a1", "a2", "b"]
    assert await texts_held(db, bot, "c") == []
    async with db.write() as conn:
        assert await outbox.release(conn, "a") == {(conversation.id, bot.id): 3}
        assert await outbox.claim_lapsed(conn, claim_for("d", 30, now), now=now) == {bot.id}
    assert await texts_held(db, bot, "d") == ["a1", "a2", "b"]
    async with db.write() as conn:  # everything: what a process that is the only one does
        assert await outbox.claim_lapsed(conn, claim_for("e", 30), now=now, everything=True)
    assert await texts_held(db, bot, "e") == ["a1", "a2", "b"]


async def test_seqs_stay_right_when_the_counts_kept_in_memory_are_bounded(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``COUNTED_CONVERSATIONS`` conversations the counts start over, read back from
    the messages: numbering goes on without a gap or a repeat."""
    monkeypatch.setattr(msg_repo, "COUNTED_CONVERSATIONS", 2)
    pairs = [await new_conversation(db) for _ in range(3)]
    for expected in (1, 2, 3):
        for conversation, person in pairs:
            assert await store_visible(db, conversation, person) == expected


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)  # asyncpg's pool
async def test_a_pooled_connection_comes_back_clean_with_no_reset_query(
    database: DatabaseTarget,
) -> None:
    """PostgreSQL: a connection goes back to the pool with no reset query (asyncpg's
    default, ``… RESET ALL``, is one more round trip per use case), and yet the next use
    case on it finds no transaction left open, the failed one's rows undone, and the
    configured schema."""
    await upgrade_async(database.url, database.schema)
    db = await PostgresDatabase.open(database.url, schema=database.schema, max_size=1)
    sent: list[str] = []
    try:
        async with db.read() as conn:  # the pool's one connection, from now on
            conn._raw.add_query_logger(lambda record: sent.append(record.query))
        conversation, _ = await new_conversation(db)
        lost = Conversation(id=new_id(), name="lost", created_at=datetime.now(UTC))
        with pytest.raises(RuntimeError):
            await insert_then_fail(db, lost)
        async with db.read() as conn:
            assert not conn._raw.is_in_transaction()
            assert await conv_repo.get_conversation(conn, lost.id) is None
            assert await conv_repo.get_conversation(conn, conversation.id) == conversation
            search_path = await conn._raw.fetchval("SHOW search_path")
    finally:
        await db.close()
    assert search_path == database.schema
    assert "ROLLBACK;" in sent
    assert not [query for query in sent if "RESET ALL" in query]


class _Resent(Exception):
    """A duplicate's use case ends with this, to roll back as the chat's does."""


async def store_unless_resent(db: Database, message: Message) -> Message | None:
    """``message`` stored (numbered) in a use case of its own, or None for a resent
    ``local_id``, whose use case is rolled back (giving back any number it took)."""
    try:
        async with db.write() as conn:
            stored = await msg_repo.insert_message(conn, message, unless_duplicate=True)
            if stored is None:
                raise _Resent
    except _Resent:
        return None
    return stored


async def test_a_stored_message_is_numbered_and_a_resent_one_gives_its_number_back(
    db: Database,
) -> None:
    """insert_message numbers what people can see (and only that); a resent ``local_id``
    stores nothing, and once its transaction rolls back (as the chat's does) the next
    message takes the number it may have taken."""
    conversation, person = await new_conversation(db)
    duplicates: list[Message] = []

    async def store(message: Message) -> Message | None:
        stored = await store_unless_resent(db, message)
        if stored is None:
            duplicates.append(message)
        return stored

    first = await store(text_message(conversation, person, local_id="a"))
    held = await store(text_message(conversation, person, approval=Approval.NOT_APPROVED))
    resent = text_message(conversation, person, local_id="a")
    assert await store(resent) is None
    second = await store(text_message(conversation, person, local_id="b"))
    assert first is not None
    assert first.seq == 1
    assert held is not None
    assert held.seq is None
    assert duplicates == [resent]
    assert second is not None
    assert second.seq == 2
    async with db.read() as conn:
        stored = await conn.execute(
            select(messages.c.id, messages.c.local_id, messages.c.seq)
            .where(messages.c.conversation_id == conversation.id)
            .order_by(messages.c.pk)
        )
        rows = [tuple(row) for row in stored]
    assert rows == [(first.id, "a", 1), (held.id, None, None), (second.id, "b", 2)]


async def test_an_approved_message_is_numbered_when_it_becomes_visible(db: Database) -> None:
    """approve_message gives a held message the next seq (no gap, no repeat with the
    messages stored meanwhile), and leaves a numbered message's seq as it is."""
    conversation, person = await new_conversation(db)
    at = datetime.now(UTC)
    async with db.write() as conn:
        held = await msg_repo.insert_message(
            conn, text_message(conversation, person, approval=Approval.NOT_APPROVED)
        )
        shown = await msg_repo.insert_message(conn, text_message(conversation, person))
    assert held is not None
    assert shown is not None
    async with db.write() as conn:
        approved = await msg_repo.approve_message(conn, held, approval=Approval.BY_MANAGER, at=at)
        again = await msg_repo.approve_message(conn, approved, approval=Approval.BY_MANAGER, at=at)
    after = await store_visible(db, conversation, person)
    assert (shown.seq, approved.seq, again.seq, after) == (1, 2, 2, 3)
    async with db.read() as conn:
        stored = await msg_repo.get_message(conn, conversation.id, held.id)
    assert stored == approved
    assert stored.approval == Approval.BY_MANAGER


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)  # asyncpg's logger
async def test_postgresql_numbers_a_message_in_its_insert(database: DatabaseTarget) -> None:
    """PostgreSQL keeps the number in the conversation's row: a visible message is
    numbered and stored in one statement (one round trip), not an UPDATE and an INSERT,
    and an approval numbers the message it makes visible in its own UPDATE (after reading
    the message's stored number under its row's lock: another process may have approved
    it since the caller read it)."""
    await upgrade_async(database.url, database.schema)
    db = await PostgresDatabase.open(database.url, schema=database.schema, max_size=1)
    sent: list[str] = []
    try:
        conversation, person = await new_conversation(db)
        async with db.write() as conn:
            conn._raw.add_query_logger(lambda record: sent.append(record.query))
            stored = await msg_repo.insert_message(
                conn, text_message(conversation, person, local_id="a"), unless_duplicate=True
            )
            plain = await msg_repo.insert_message(conn, text_message(conversation, person))
            held = await msg_repo.insert_message(
                conn, text_message(conversation, person, approval=Approval.NOT_APPROVED)
            )
            assert held is not None
            approved = await msg_repo.approve_message(
                conn, held, approval=Approval.BY_MANAGER, at=datetime.now(UTC)
            )
    finally:
        await db.close()
    assert stored is not None
    assert stored.seq == 1
    assert plain is not None
    assert plain.seq == 2
    assert approved.seq == 3
    assert [query.split()[0] for query in sent] == [
        "WITH",
        "WITH",
        "INSERT",
        "SELECT",
        "WITH",
        "COMMIT;",
    ]
    assert "FOR UPDATE" in sent[3]
    numbering = [sent[0], sent[1], sent[4]]
    assert all("UPDATE conversations" in query for query in numbering)


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)  # several writers
async def test_writers_in_two_processes_number_one_conversation_without_gap(
    database: DatabaseTarget,
) -> None:
    """Two pools (as two server processes have) store messages into one conversation at
    once, some of them resends: every stored message gets its own number, 1 to N."""
    await upgrade_async(database.url, database.schema)
    pools = [
        await PostgresDatabase.open(database.url, schema=database.schema, max_size=4)
        for _ in range(2)
    ]
    try:
        conversation, person = await new_conversation(pools[0])

        async def one(db: Database, i: int) -> Message | None:
            # every third local_id is sent by both "processes"
            local_id = f"r{i // 3}" if i % 3 == 0 else f"{id(db)}-{i}"
            return await store_unless_resent(
                db, text_message(conversation, person, local_id=local_id)
            )

        outcomes = await asyncio.gather(*(one(db, i) for i in range(30) for db in pools))
    finally:
        for db in pools:
            await db.close()
    stored = [m for m in outcomes if m is not None]
    assert len(stored) == 50  # 60 sends, of which the 10 shared local_ids' second ones
    assert sorted(m.seq for m in stored) == list(range(1, 51))


async def test_the_holder_of_a_bots_deliveries_is_its_newest_live_claim(db: Database) -> None:
    """A new delivery goes to the process holding the bot's newest pending one, if its
    claim is live; a lapsed claim or none holds nothing."""
    conversation, _ = await new_conversation(db)
    bot = await new_bot(db, conversation)
    now = datetime.now(UTC)
    async with db.read() as conn:
        assert await outbox.holder(conn, bot.id, now=now) is None
    await record(db, bot, {"old": claim_for("a", 60, now), "new": claim_for("b", 60, now)})
    async with db.read() as conn:
        held = await outbox.holder(conn, bot.id, now=now)
        assert held is not None
        assert held.owner == "b"
        assert await outbox.holder(conn, bot.id, now=now + timedelta(seconds=61)) is None


async def test_expired_sessions_are_purged_in_batches_with_their_participations(
    db: Database,
) -> None:
    """A purge deletes at most ``limit`` expired sessions (and their participations) per
    transaction, and says how many; a valid session and its participation stay."""
    from tertulia.storage import sessions as session_repo
    from tertulia.storage.tables import session_participations, sessions

    conversation, person = await new_conversation(db)
    now = datetime.now(UTC)
    async with db.write() as conn:
        for n in range(5):
            key = f"old{n}"
            await session_repo.create_session(
                conn, key, now=now, expires_at=now - timedelta(seconds=1)
            )
            await session_repo.add_participation(conn, key, conversation.id, person.id)
        await session_repo.create_session(conn, "new", now=now, expires_at=now + timedelta(days=1))
        await session_repo.add_participation(conn, "new", conversation.id, person.id)
    purged = []
    while not purged or purged[-1] == 2:
        async with db.write() as conn:
            purged.append(await session_repo.purge_expired(conn, now=now, limit=2))
    assert purged == [2, 2, 1]
    async with db.read() as conn:
        keys = [r.key for r in await conn.execute(select(sessions.c.key))]
        held = [
            r.session_key for r in await conn.execute(select(session_participations.c.session_key))
        ]
    assert keys == ["new"]
    assert held == ["new"]


async def test_a_snapshot_reads_the_database_as_it_was_at_its_start(db: Database) -> None:
    """What commits during a snapshot (a message, a new participant) is not in it, and a
    snapshot cannot write; reads outside it see the change at once."""
    conversation, person = await new_conversation(db)
    async with db.write() as conn:
        first = await msg_repo.insert_message(conn, text_message(conversation, person))
    async with db.snapshot() as snap:
        assert await msg_repo.stored_keys(snap, conversation.id) != []
        before = await msg_repo.stored_keys(snap, conversation.id)
        async with db.write() as conn:
            await msg_repo.insert_message(conn, text_message(conversation, person, text="2"))
            late = Participant(
                id=new_id(), conversation_id=conversation.id, name="bo", type=ParticipantType.HUMAN
            )
            await conv_repo.insert_participants(conn, [late], first_ordinal=1)
        assert await msg_repo.stored_keys(snap, conversation.id) == before
        assert len(await conv_repo.list_participants(snap, conversation.id)) == 1
        [(message, approved_at)] = await msg_repo.stored_messages(snap, before)
        assert (message.id, approved_at) == (first.id, None)
        async with db.read() as conn:
            assert len(await msg_repo.stored_keys(conn, conversation.id)) == 2
        with pytest.raises(Exception, match=r"(?i)read.only|readonly"):
            await conv_repo.set_ended(snap, conversation.id)


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_recording_deliveries_of_one_conversation_in_two_processes_take_turns(
    db: Database,
) -> None:
    """Two processes (PostgreSQL) each store a message no one sees yet (a bot's answer
    waiting for the manager: no seq, so only the foreign key's share lock on the
    conversation's row) and then lock the conversation to record its deliveries. The lock
    must not conflict with that share lock: the second waits for the first, rather than
    each waiting for the other's share lock until PostgreSQL kills one as a deadlock (a
    person's message refused as 'internal', found by QA with two processes and a manager)."""
    assert isinstance(db, PostgresDatabase)  # (SQLite has one writer: nothing interleaves)
    conversation, person = await new_conversation(db)
    inserted = [asyncio.Event(), asyncio.Event()]

    async def recording(me: int) -> None:
        async with db.write() as conn:
            if me == 1:
                await inserted[0].wait()
            hidden = text_message(conversation, person, approval=Approval.NOT_APPROVED)
            await msg_repo.insert_message(conn, hidden)
            inserted[me].set()
            await inserted[1 - me].wait()  # (both share-locked the row before either locks)
            await conv_repo.take_turns(conn, conversation.id)

    await asyncio.wait_for(asyncio.gather(recording(0), recording(1)), timeout=20)
    async with db.read() as conn:
        assert await msg_repo.visible_count(conn, conversation.id) == 0
        stored = await conn.execute(
            select(messages.c.id).where(messages.c.conversation_id == conversation.id)
        )
        assert len(list(stored)) == 2


async def test_a_process_renewing_while_writing_outcomes_does_not_deadlock(db: Database) -> None:
    """(Chaos QA, PostgreSQL: 20 texts a second in each of 50 conversations.) The renewal of
    a process's claims and the batch of its deliveries' outcomes update the same rows; they
    locked them in opposite orders and deadlocked, and the outcomes not written ran again.
    Both now lock in key order: rounds of the two at once all commit."""
    conversation, _ = await new_conversation(db)
    bot = await new_bot(db, conversation)
    rounds = 10 if db.is_sqlite else 40
    for round_ in range(rounds):
        await record(db, bot, {f"r{round_}-{i}": claim_for("here", 60) for i in range(30)})
        async with db.read() as conn:
            mine = await outbox.pending_for(conn, bot.id, owner="here", limit=100)
        done = [outbox.Outcome(d.pk, outbox.DONE, 1, None) for d in reversed(mine)]

        async def finish(outcomes: list[outbox.Outcome] = done) -> None:
            async with db.write() as conn:
                await outbox.finish_many(conn, outcomes, now=datetime.now(UTC))

        async def renew() -> None:
            async with db.write() as conn:
                await outbox.renew(conn, claim_for("here", 60))

        await asyncio.gather(finish(), renew(), renew())
        async with db.read() as conn:
            assert await outbox.pending_for(conn, bot.id, owner="here", limit=100) == []


async def test_a_sessions_participations_compile_once_whatever_the_page(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rooms list asks which of its page's conversations the session is in: one statement
    for every page, compiled once (soak QA: built per call with an IN list as long as the
    page, each list compiled it again and took a place in the statement cache). Pages past
    one statement's ids are asked in chunks, and nothing is missed."""
    compiled: list[object] = []
    original = sql_module.Compiled

    def counting(*args: object, **kwargs: object) -> object:
        compiled.append(args[0])
        return original(*args, **kwargs)  # type: ignore[arg-type]

    joined = [(await new_conversation(db)) for _ in range(3)]
    key = new_session_key()
    async with db.write() as conn:
        now = datetime.now(UTC)
        await session_repo.create_session(conn, key, now=now, expires_at=now + timedelta(days=1))
        for conversation, person in joined:
            await session_repo.add_participation(conn, key, conversation.id, person.id)
    ids = [c.id for c, _ in joined]
    async with db.read() as conn:
        await session_repo.participations(conn, key, ids[:1])  # (compiled here, once)
        monkeypatch.setattr(sql_module, "Compiled", counting)
        found = await session_repo.participations(conn, key, [new_id(), *ids])
        many = await session_repo.participations(conn, key, [new_id() for _ in range(120)] + ids)
    assert compiled == []
    assert found == many == {c.id: p.id for c, p in joined}
