"""The database schema (SQLAlchemy Core). Changes go through an Alembic migration."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Integer primary keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC as a naive timestamp; gives back aware UTC datetimes.

    On SQLite the text is SQLAlchemy's own ``YYYY-MM-DD HH:MM:SS.ffffff``, cut out of
    orjson's RFC 3339 (printed in C) and read with ``datetime.fromisoformat``, rather than
    SQLAlchemy's generic formatting and regular expression (this runs for every message).
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def to_text(value: datetime | None) -> str | None:
            # About half the time of isoformat() or of a %-format of seven numbers,
            # and no replace(tzinfo=None) (datetime's keyword parsing costs more).
            if value is None:
                return None
            if value.tzinfo is not None and value.tzinfo is not UTC:
                value = value.astimezone(UTC)
            # '"YYYY-MM-DDTHH:MM:SS.ffffff' then "+00:00" when aware; no fraction when 0.
            printed = orjson.dumps(value)
            if value.microsecond:
                return printed[1:27].decode().replace("T", " ")
            return printed[1:20].decode().replace("T", " ") + ".000000"

        return to_text

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def from_text(value: str | None) -> datetime | None:
            if value is None:
                return None
            return datetime.fromisoformat(value + "+00:00")  # (the UTC singleton)

        return from_text

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # pragma: no cover - drivers give datetimes
            value = datetime.fromisoformat(value)
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(50), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("ended", Boolean, nullable=False, default=False),
    # the last ``seq`` given to a message people can see, bumped in the writing transaction
    # where several processes write (PostgreSQL); SQLite's single writer counts in memory
    # and leaves it alone (storage/messages.py: insert_message, which on PostgreSQL bumps it
    # in the message's own INSERT, and approve_message, in its UPDATE)
    Column("last_seq", BigInteger, nullable=False, default=0),
)
# The rooms list's order (storage/conversations.py: _page): no name first, then names by
# code point, then creation. Read off an index, a page costs its rows (and an offset's);
# sorted, every conversation (soak QA: 17.8 ms a page at 100,000, 190 ms half-way down).
# One index per database, as each spells that order: SQLite's ``BINARY`` collation puts
# NULLs first already; PostgreSQL's (``name COLLATE "C" NULLS FIRST, created_at, id``) is
# made by migration 0010 only, since autogenerate cannot compare an index on an expression
# (tests/storage/test_list_plans.py reads the plans of both).
ONE_DATABASE_INDEXES = {
    "ix_conversations_by_name": "sqlite",
    "ix_conversations_by_name_c": "postgresql",
}
Index(
    "ix_conversations_by_name",
    conversations.c.name,
    conversations.c.created_at,
    conversations.c.id,
).ddl_if(dialect="sqlite")

participants = Table(
    "participants",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("conversation_id", String(36), ForeignKey("conversations.id"), nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    Column("type", String(1), nullable=False),
    Column("is_required", Boolean, nullable=False, default=False),
    Column("is_manager", Boolean, nullable=False, default=False),
    Column("bot_name", String(100), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    # a person the transcript says is here: their *participant-joined* is stored and no
    # *participant-left* since. Sockets come and go with the process (the broker counts
    # them); this outlives a restart, so a person whose socket comes back after one is not
    # announced twice (chats.py: Chat.connect). Bots are announced at creation, not here.
    Column("present", Boolean, nullable=False, default=False, server_default="0"),
    # A bot whose *participant-left* is stored and that has not come back since: its return
    # is announced (chats.py: Chat.connect). And, for a bot called back (tertulia.recall),
    # where its next socket starts when it does not say (``?after=``, ``?copies_after=``):
    # the earliest recall it has not come back from; cleared as it connects.
    Column("away", Boolean, nullable=False, default=False, server_default="0"),
    Column("resume_after", BigInteger, nullable=True),
    Column("resume_copies_after", BigInteger, nullable=True),
    UniqueConstraint("conversation_id", "ordinal"),
    # The people said to be here, for the sweep that announces those who never came back
    # after a restart (absences.py: AbsenceSweep). Partial: only them.
    Index(
        "ix_participants_present",
        "id",
        sqlite_where=text("present = 1"),
        postgresql_where=text("present"),
    ),
)

messages = Table(
    "messages",
    metadata,
    Column("pk", BigId, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("conversation_id", String(36), ForeignKey("conversations.id"), nullable=False),
    Column("type", String(1), nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Column("approval", SmallInteger, nullable=False),
    Column("seq", BigInteger, nullable=True),
    Column("sender_id", String(36), ForeignKey("participants.id"), nullable=True),
    Column("sent_by_human", Boolean, nullable=False, default=False),
    Column("text", Text, nullable=False, default=""),
    Column("local_id", String(32), nullable=True),
    Column("quoted_message_id", String(36), nullable=True),
    Column("event", String(32), nullable=True),
    Column("additional_metadata", JSON, nullable=True),
    Column("options", JSON, nullable=True),
    Column("file_path", String(300), nullable=True),
    Column("external_url", String(1000), nullable=True),
    Column("file_size", BigInteger, nullable=True),
    Column("file_name", String(255), nullable=True),
    Column("mime_type", String(100), nullable=True),
    # audit of manager decisions (PROTOCOL 9 #19, #43); never on the wire
    Column("command", Text, nullable=True),
    Column("sent_by_manager", Boolean, nullable=False, default=False),
    Column("real_sender_id", String(36), nullable=True),
    Column("approved_at", UTCDateTime, nullable=True),
    UniqueConstraint("conversation_id", "seq"),
    UniqueConstraint("conversation_id", "sender_id", "local_id"),
    # History: the messages people can see, in time order (partial, so that the newest
    # ``limit`` are read straight off the index instead of sorting a whole conversation).
    Index(
        "ix_messages_visible",
        "conversation_id",
        "time",
        "pk",
        sqlite_where=text("approval > 0"),
        postgresql_where=text("approval > 0"),
    ),
    # Messages waiting for the manager's approval, for a manager's socket that (re)connects
    # (partial: they are few, and leave it when approved; the manager's own commands, never
    # shown, are not in it).
    Index(
        "ix_messages_awaiting",
        "conversation_id",
        "pk",
        sqlite_where=text("approval = 0 AND sent_by_manager = false"),
        postgresql_where=text("approval = 0 AND sent_by_manager = false"),
    ),
    # Partial: text messages (almost all of them) cost no entry here.
    Index(
        "ix_messages_file",
        "conversation_id",
        "file_path",
        sqlite_where=text("file_path IS NOT NULL"),
        postgresql_where=text("file_path IS NOT NULL"),
    ),
)

sessions = Table(
    "sessions",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("nickname", String(50), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    # a bot's session is scoped to one conversation (PROTOCOL 9 #42)
    Column("bot_conversation_id", String(36), nullable=True),
)

session_participations = Table(
    "session_participations",
    metadata,
    Column(
        "session_key", String(64), ForeignKey("sessions.key", ondelete="CASCADE"), primary_key=True
    ),
    Column("conversation_id", String(36), ForeignKey("conversations.id"), primary_key=True),
    Column("participant_id", String(36), ForeignKey("participants.id"), nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("pk", BigId, primary_key=True, autoincrement=True),
    Column("conversation_id", String(36), ForeignKey("conversations.id"), nullable=False),
    Column("bot_participant_id", String(36), ForeignKey("participants.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # "message" | "status"
    Column("payload", JSON, nullable=False),
    Column("status", String(10), nullable=False, default="pending"),  # pending|done|failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    # The lease of the process running it (bots/runner.py): none, or lapsed, means any
    # process may take it.
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    # Partial: a delivery leaves the index when it is done (one change instead of a move).
    Index(
        "ix_deliveries_pending",
        "bot_participant_id",
        "pk",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
)

copies = Table(
    "copies",
    metadata,
    # Its number: a bot resumes after the last it received (``?copies_after=``). A
    # conversation's copies are numbered in the order they commit (its row is locked while
    # one is recorded, on PostgreSQL; SQLite has one writer).
    Column("pk", BigId, primary_key=True, autoincrement=True),
    Column("conversation_id", String(36), ForeignKey("conversations.id"), nullable=False),
    Column("bot_participant_id", String(36), ForeignKey("participants.id"), nullable=False),
    # the copy as the bot's sockets get it: the message with the manager's overrides
    Column("payload", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_copies_bot", "bot_participant_id", "pk"),
)
"""Redirected copies (PROTOCOL 7.3) for bots that take them over their own sockets: what
a manager redirected to a bot while its socket was away is sent when it comes back. Never
messages: no ``seq``, not in the history, seen by their bot only."""

bot_states = Table(
    "bot_states",
    metadata,
    Column("participant_id", String(36), ForeignKey("participants.id"), primary_key=True),
    Column("data", JSON, nullable=False),
)
