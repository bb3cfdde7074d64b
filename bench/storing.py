"""What each part of storing one answer costs: the stored limit's rows, one part left out at
a time.

Run by hand: ``.venv/bin/python -m bench.storing [--answers 10000] [--runs 3]``.

No server and no sockets: the rows the stored limit writes per answer (``bench.stored``:
the person's text and its delivery to the bot in one commit, the bot's answer and the
delivery's end in the next), written in a loop for 20 conversations, on a fresh SQLite file
with Tertulia's schema (its migrations) and connection settings. As under the closed loops
of ``throughput``, commits are grouped: each one holds ten conversations' texts and the
other ten's answers. The log is checkpointed every ``CHECKPOINT_INTERVAL``, as the server
does, but in the same thread, so that the process's CPU counts it.

Each *variant* leaves one part out (an index, the deliveries, the foreign-key checks); the
difference with ``all`` is what that part costs. ``together`` keeps every part but stores a
text and its answer in one commit (each commit holds all twenty conversations' round trips),
as a server would whose bots answered before the text's commit: what that design would save.
Printed per answer, medians of ``--runs`` (the variants take turns): user and system CPU
in µs, and the log's frames (a 4 KiB page each, written with its 24-byte header as two
system calls).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import uuid_utils

from bench.stored import (
    FINISH_DELIVERY,
    INSERT_CONVERSATION,
    INSERT_DELIVERY,
    INSERT_MESSAGE,
    INSERT_MESSAGE_ALWAYS,
    INSERT_PARTICIPANT,
    db_time,
)
from tertulia.domain.times import utcnow
from tertulia.storage.migrate import upgrade
from tertulia.storage.sqlite import CHECKPOINT_INTERVAL, open_connection

CONVERSATIONS = 20
WARM_UP = 2_000  # answers before the measure: the indexes are several levels deep by then
TEXT = "bench 0123456789abcdef"


@dataclass(frozen=True, slots=True)
class Variant:
    """A way of storing: the schema changed by ``prepare``, with or without deliveries."""

    name: str
    meaning: str
    prepare: Callable[[sqlite3.Connection], None] = lambda conn: None
    deliveries: bool = True
    on_conflict: bool = True
    together: bool = False  # a text and its answer in one commit


def _drop_constraint(columns: str) -> Callable[[sqlite3.Connection], None]:
    """Rebuilds ``messages`` without its ``UNIQUE (columns)`` (SQLite cannot drop one)."""

    def prepare(conn: sqlite3.Connection) -> None:
        (table,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'messages'").fetchone()
        indexes = [
            sql
            for (sql,) in conn.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'messages' AND type = 'index' "
                "AND sql IS NOT NULL"
            )
        ]
        rebuilt = re.sub(rf",\s*CONSTRAINT \w+ UNIQUE \({re.escape(columns)}\)", "", table)
        if rebuilt == table:
            raise RuntimeError(f"no UNIQUE ({columns}) on messages")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("DROP TABLE messages")
        conn.execute(rebuilt)
        for sql in indexes:
            conn.execute(sql)
        conn.execute("PRAGMA foreign_keys=ON")

    return prepare


def _drop_index(name: str) -> Callable[[sqlite3.Connection], None]:
    def prepare(conn: sqlite3.Connection) -> None:
        conn.execute(f"DROP INDEX {name}")

    return prepare


def _no_foreign_keys(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA foreign_keys=OFF")


VARIANTS = (
    Variant("all", "Tertulia's rows, as the stored limit writes them"),
    Variant(
        "-visible",
        "without ix_messages_visible (history by time)",
        _drop_index("ix_messages_visible"),
    ),
    Variant(
        "-local_id",
        "without UNIQUE (conversation_id, sender_id, local_id) (resends stored once)",
        _drop_constraint("conversation_id, sender_id, local_id"),
        on_conflict=False,
    ),
    Variant(
        "-seq",
        "without UNIQUE (conversation_id, seq) (replay after a reconnection)",
        _drop_constraint("conversation_id, seq"),
    ),
    Variant(
        "-deliveries", "without the deliveries' rows (a bot's durable queue)", deliveries=False
    ),
    Variant("-foreign_keys", "without the foreign keys' checks", _no_foreign_keys),
    Variant(
        "together",
        "all the rows, but a text and its answer in one commit (a bot answering before the "
        "text's commit)",
        together=True,
    ),
)


@dataclass(frozen=True, slots=True)
class PerAnswer:
    user_us: float
    system_us: float
    frames: float


class Writer:
    """Stores the answers of `CONVERSATIONS` closed loops, as the stored limit would."""

    def __init__(self, path: Path, variant: Variant) -> None:
        upgrade(f"sqlite+aiosqlite:///{path}")
        self.conn = open_connection(str(path))
        variant.prepare(self.conn)
        self.variant = variant
        self.insert_message = INSERT_MESSAGE if variant.on_conflict else INSERT_MESSAGE_ALWAYS
        self.seqs: dict[str, int] = {}
        self.pending: dict[str, int] = {}
        self.frames = 0
        self.last_checkpoint = time.monotonic()
        now = db_time(utcnow())
        self.loops: list[tuple[str, str, str]] = []
        self.conn.execute("BEGIN")
        for _ in range(CONVERSATIONS):
            conversation, person, bot = (str(uuid_utils.uuid7()) for _ in range(3))
            self.conn.execute(INSERT_CONVERSATION, (conversation, now))
            self.conn.execute(INSERT_PARTICIPANT, (person, conversation, 0, "p", "H", None, now))
            self.conn.execute(INSERT_PARTICIPANT, (bot, conversation, 1, "ECHO", "B", "ECHO", now))
            self.loops.append((conversation, person, bot))
        self.conn.execute("COMMIT")
        half = CONVERSATIONS // 2
        self.texting, self.answering = self.loops[:half], self.loops[half:]

    def _message(self, conversation: str, sender: str, human: bool) -> tuple[Any, ...]:
        seq = self.seqs[conversation] = self.seqs.get(conversation, 0) + 1
        row = (str(uuid_utils.uuid7()), conversation, db_time(utcnow()), seq, sender, human)
        return (*row, TEXT, os.urandom(16).hex(), None)

    def _text(self, conversation: str, person: str, bot: str) -> None:
        row = self._message(conversation, person, True)
        self.conn.execute(self.insert_message, row)
        if self.variant.deliveries:
            payload = orjson.dumps({"id": row[0], "type": "T", "text": TEXT}).decode()
            params = (conversation, bot, payload, row[2])
            delivery = self.conn.execute(INSERT_DELIVERY, params).lastrowid
            self.pending[conversation] = delivery or 0

    def _answer(self, conversation: str, bot: str) -> None:
        self.conn.execute(self.insert_message, self._message(conversation, bot, False))
        if self.variant.deliveries:
            delivery = self.pending.pop(conversation)
            self.conn.execute(FINISH_DELIVERY, (db_time(utcnow()), delivery))

    def run(self, answers: int) -> None:
        """Commits until `answers` answers are stored, checkpointing as the server does."""
        done = 0
        while done < answers:
            self.conn.execute("BEGIN IMMEDIATE")
            done += self._round_trips() if self.variant.together else self._halves()
            self.conn.execute("COMMIT")
            if time.monotonic() - self.last_checkpoint >= CHECKPOINT_INTERVAL:
                self.checkpoint()

    def _halves(self) -> int:
        """One commit's rows as under closed loops: one half of the conversations' texts and
        the other half's answers (to the texts of the commit before; a conversation answers
        its first text one commit after it). Returns the answers stored."""
        answered = 0
        for conversation, person, bot in self.texting:
            self._text(conversation, person, bot)
        for conversation, _, bot in self.answering:
            if self.variant.deliveries and conversation not in self.pending:
                continue  # the very first commit: no text to answer yet
            self._answer(conversation, bot)
            answered += 1
        self.texting, self.answering = self.answering, self.texting
        return answered

    def _round_trips(self) -> int:
        """One commit's rows for ``together``: every conversation's text and its answer."""
        for conversation, person, bot in self.loops:
            self._text(conversation, person, bot)
            self._answer(conversation, bot)
        return len(self.loops)

    def checkpoint(self) -> None:
        """Copies the log into the file; the log's frames so far are counted (nothing else
        reads or writes the file, so every frame is copied and the log restarts)."""
        _, log, _ = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.frames += log
        self.last_checkpoint = time.monotonic()


def measure(variant: Variant, workdir: Path, answers: int) -> PerAnswer:
    writer = Writer(workdir / f"{variant.name}.db", variant)
    writer.run(WARM_UP)
    writer.checkpoint()
    writer.frames = 0
    before = resource.getrusage(resource.RUSAGE_SELF)
    writer.run(answers)
    writer.checkpoint()
    after = resource.getrusage(resource.RUSAGE_SELF)
    writer.conn.close()
    return PerAnswer(
        1e6 * (after.ru_utime - before.ru_utime) / answers,
        1e6 * (after.ru_stime - before.ru_stime) / answers,
        writer.frames / answers,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=10_000, help="measured answers per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per variant (medians shown)")
    parser.add_argument(
        "--only", help="variants, comma-separated: " + ", ".join(v.name for v in VARIANTS)
    )
    args = parser.parse_args(argv)
    chosen = [v for v in VARIANTS if args.only is None or v.name in args.only.split(",")]
    results: dict[str, list[PerAnswer]] = {v.name: [] for v in chosen}
    with tempfile.TemporaryDirectory(prefix="tertulia-storing-") as temporary:
        for run in range(args.runs):
            for variant in chosen:
                workdir = Path(temporary) / str(run)
                workdir.mkdir(exist_ok=True)
                results[variant.name].append(measure(variant, workdir, args.answers))
    print(f"per answer, medians of {args.runs} runs of {args.answers:,} answers")
    print(f"{'variant':14} {'user µs':>8} {'system µs':>10} {'total µs':>9} {'frames':>7}  meaning")
    for variant in chosen:
        runs = results[variant.name]
        user = statistics.median(r.user_us for r in runs)
        system = statistics.median(r.system_us for r in runs)
        total = statistics.median(r.user_us + r.system_us for r in runs)
        frames = statistics.median(r.frames for r in runs)
        print(
            f"{variant.name:14} {user:8.0f} {system:10.0f} {total:9.0f} {frames:7.2f}  "
            f"{variant.meaning}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
