"""Several processes on one database: each pending delivery is run by one process at a time,
and what a process leaves behind is taken over, at once when it stopped cleanly, when its
claim lapses when it died (bots/runner.py, storage/deliveries.py; docs/operations.md)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from support import runner_bots
from support.blab import Person, Socket
from support.environment import POSTGRES_URL, REDIS_URL, DatabaseTarget, require_service
from support.managers import delivery_rows
from support.process import ServerProcess, server_process, write_config
from support.server import LiveServer, live_server
from support.waiting import until
from tertulia.chats import ChatRegistry
from tertulia.settings import load_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database", ["postgresql"], indirect=True),  # shared by processes
]


def shared(database: DatabaseTarget, **fields: Any) -> dict[str, Any]:
    """Settings fields of a process of a several-process deployment on ``database``, with
    one bot ``Lease`` (a :class:`~support.runner_bots.LeaseBot` given ``bot_kwargs``)."""
    require_service("PostgreSQL", POSTGRES_URL)
    require_service("Redis", REDIS_URL)
    bot_kwargs = fields.pop("bot_kwargs", {})
    return {
        "database_url": database.url,
        "database_schema": database.schema,
        "broker_url": REDIS_URL,
        "presence_grace": 0,
        "rate_limits": {},
        "rooms": True,  # (people join each other's conversations, on either process)
        "bots": {
            "Lease": {"module": "support.runner_bots", "class": "LeaseBot", "kwargs": bot_kwargs}
        },
        **fields,
    }


@asynccontextmanager
async def two_processes(
    database: DatabaseTarget,
    tmp_path: Path,
    *,
    one_bot: dict[str, Any],
    two_bot: dict[str, Any] | None = None,
    **lease: float,
) -> AsyncIterator[tuple[ServerProcess, LiveServer]]:
    """A server process (``one``, its bot given ``one_bot``) and a server in this test's
    own process (``two``, its bot given ``two_bot``: by default it answers at once), on one
    database and broker. (Two servers in one process would share ``Chat``'s binding: not
    two processes at all.)"""
    config = write_config(
        tmp_path / "tertulia.toml",
        {**shared(database, **lease, bot_kwargs=one_bot), "log_format": "json"},
    )
    async with (
        live_server(
            load_settings(None, **shared(database, **lease, bot_kwargs=two_bot or {}))
        ) as two,
        server_process(config, tmp_path, name="one") as one,
    ):
        yield one, two


async def open_conversation(one: ServerProcess) -> tuple[Person, str]:
    """alice in a new conversation with ``Lease`` on ``one``; returns her and the bot's id."""
    alice = one.person()
    created = await alice.create(nickname="alice", bots=["Lease"])
    assert created.status_code == 201, created.text
    return alice, next(p["id"] for p in created.json()["participants"] if p["name"] == "Lease")


async def say_hello(one: ServerProcess) -> tuple[Person, str, dict[str, Any]]:
    """alice says "hello" on ``one`` (its delivery recorded there) and leaves; returns her,
    the bot's id and her message."""
    alice, bot_id = await open_conversation(one)
    try:
        socket = await alice.connect()
        sent = await socket.message(local_id=await socket.say("hello"))
    finally:
        await alice.close()
    return alice, bot_id, sent


async def answer_on(server: LiveServer, alice: Person, sent: dict[str, Any]) -> str:
    """The text of the bot's answer to ``sent``, as alice sees it on ``server``."""
    again = follow(alice, server)
    try:
        resumed = await again.connect(after=sent["seq"])
        answer = await resumed.message(quoted_message_id=sent["id"], timeout=10)
        return str(answer["text"])
    finally:
        await again.close()


@asynccontextmanager
async def room_across(
    database: DatabaseTarget, tmp_path: Path, *, delay: float
) -> AsyncIterator[tuple[Socket, Socket, str, LiveServer]]:
    """alice on a server process and bob on the test's own, in one conversation with a bot
    taking ``delay`` per message, whose answers say which process ran them (``one``,
    ``two``); the polls come too late for any test. Yields their sockets, the bot's id and
    the test's own server."""
    async with two_processes(
        database,
        tmp_path,
        one_bot={"delay": delay, "tag": "one"},
        two_bot={"delay": delay, "tag": "two"},
        bot_poll_interval=60,
        bot_delivery_lease=180,
    ) as (one, two):
        alice, bot_id = await open_conversation(one)
        bob = Person(two.base_url, two.ws_url)
        try:
            assert alice.conversation_id is not None
            assert (await bob.join(alice.conversation_id, nickname="bob")).status_code == 200
            yield await alice.connect(), await bob.connect(), bot_id, two
        finally:
            await alice.close()
            await bob.close()


def log_events(process: ServerProcess) -> list[dict[str, Any]]:
    """The lines of a server process's JSON log."""
    lines = process.log.read_text(encoding="utf-8", errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def follow(alice: Person, server: LiveServer) -> Person:
    """alice, as a client of ``server`` (her session and conversation)."""
    again = Person(server.base_url, server.ws_url)
    again.http.cookies.set("sessionid", alice.session or "")
    again.conversation_id, again.participant_id = alice.conversation_id, alice.participant_id
    return again


async def test_a_slow_delivery_is_run_by_one_process_only(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    """A call lasting many polls and leases of the other process: that process never runs
    it too (before leases, its poll ran every pending delivery, this one included)."""
    async with two_processes(
        database, tmp_path, one_bot={"delay": 1.5}, bot_poll_interval=0.05, bot_delivery_lease=0.3
    ) as (one, two):
        alice, bot_id = await open_conversation(one)
        try:
            socket = await alice.connect()
            sent = await socket.message(local_id=await socket.say("slow"))
            answer = await socket.message(quoted_message_id=sent["id"], timeout=10)
            assert answer["text"] == "SLOW"
            await two.registry.runner.idle()
            assert runner_bots.CALLS[bot_id] == []  # this process never called its bot
        finally:
            await alice.close()


async def test_a_process_stopping_cleanly_hands_its_deliveries_over_at_once(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    """One process stops (SIGTERM) while its bot's call is under way: the delivery is
    another process's to run at its next poll, not a lease later (the lease here outlasts
    the test)."""
    async with two_processes(
        database, tmp_path, one_bot={"hang": True}, bot_poll_interval=0.05, bot_delivery_lease=600
    ) as (one, two):
        alice, bot_id, sent = await say_hello(one)
        await one.stop(signal.SIGTERM)  # (uvicorn raises the signal again once shut down)
        given_up = [e for e in log_events(one) if e["event"] == "delivery claims given up"]
        assert [(e["conversation_id"], e["participant_id"]) for e in given_up] == [
            (alice.conversation_id, bot_id)  # (hello's, and alice's leaving, behind it)
        ]
        assert await answer_on(two, alice, sent) == "HELLO"
        assert runner_bots.CALLS[bot_id] == ["hello"]  # run here, once


async def test_the_deliveries_of_a_process_that_died_are_taken_over_when_its_lease_lapses(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    """A process is killed (SIGKILL: it gives nothing up) while its bot's call is under way:
    another process runs that delivery once the killed one's claim has lapsed."""
    async with two_processes(
        database, tmp_path, one_bot={"hang": True}, bot_poll_interval=0.1, bot_delivery_lease=1.0
    ) as (one, two):
        alice, bot_id, sent = await say_hello(one)
        one.kill()
        assert await answer_on(two, alice, sent) == "HELLO"
        assert runner_bots.CALLS[bot_id] == ["hello"]  # run here, once


async def test_a_bots_deliveries_keep_their_order_across_processes(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    """alice on one process and bob on the other write to one slow bot at once: both
    messages go to the one process running the bot's deliveries (woken through the broker
    when the other recorded one), which runs them in order. Before, each process ran its
    own at the same time."""
    async with room_across(database, tmp_path, delay=0.5) as (talking, watching, bot_id, _):
        first = await talking.message(local_id=await talking.say("first"))
        second = await watching.message(local_id=await watching.say("second"))
        # (The first answer may come before bob's echo, when his message is late.)
        answers = await watching.received(2, sender_id=bot_id)
        assert [a["quoted_message_id"] for a in answers] == [first["id"], second["id"]]
        texts = [a["text"] for a in answers]
        assert texts in (["FIRST (one)", "SECOND (one)"], ["FIRST (two)", "SECOND (two)"])


async def test_people_on_two_processes_get_every_answer_once_and_in_order(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    """alice and bob, on two processes, take turns writing quickly to one bot that takes a
    moment per message: each message is answered once, in the order they were stored,
    whichever process ran which."""
    async with room_across(database, tmp_path, delay=0.02) as (alice, bob, bot_id, _):
        sockets = [alice, bob]
        for n in range(30):
            await sockets[n % 2].say(f"m{n}")
        for socket in sockets:  # each person sees every answer, once, in order

            def answers(socket: Socket = socket) -> list[dict[str, Any]]:
                # (The bot answers the sync markers too: alice's may reach bob's socket
                # before his own marker's echo. Those are not counted.)
                return [
                    m
                    for m in socket.messages()
                    if m.get("sender_id") == bot_id and not m["text"].startswith("SYNC MARKER")
                ]

            async with asyncio.timeout(20):
                while len(answers()) < 30:
                    await socket.recv()
            await socket.sync()  # whatever came before the marker has arrived
            asked = [m for m in socket.messages() if m.get("text", "").startswith("m")]
            stored = sorted(asked, key=lambda m: m["seq"])
            assert len(stored) == 30
            got = answers()
            assert len(got) == 30, [(a["quoted_message_id"], a["text"]) for a in got]  # none twice
            assert [a["quoted_message_id"] for a in got] == [m["id"] for m in stored]
            assert [a["text"].split(" ")[0] for a in got] == [m["text"].upper() for m in stored]


async def test_a_delivery_another_process_recorded_runs_before_this_ones_later_own(
    database: DatabaseTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While this process runs a bot's first message, the other records a second for it and
    wakes it, and this one records a third itself before the wake-up arrives: the second
    runs before the third. Before, the third ran at once (handed over, not read back) and
    the second only once woken, after it (CI: the wake-up came late under load, a message
    answered out of order, and past the test's wait)."""
    held: list[Any] = []  # the wake-ups sent to this process, held until released
    wake = ChatRegistry._woken
    monkeypatch.setattr(ChatRegistry, "_woken", lambda registry, event: held.append(event))
    async with room_across(database, tmp_path, delay=1.5) as (alice, bob, bot_id, two):

        async def settled() -> bool:  # (the join messages' deliveries are done)
            return all(r.status != "pending" for r in await delivery_rows(two, bot_id))

        for socket in (alice, bob):  # (their sockets' joins stored: each has its state)
            await socket.wait_for(lambda f: "state" in f)
        await until(settled)
        first = await bob.message(local_id=await bob.say("first"))
        await until(lambda: runner_bots.CALLS[bot_id] == ["first"])  # running here
        second = await alice.message(local_id=await alice.say("second"))  # claimed for here
        third = await bob.message(local_id=await bob.say("third"))
        answered = await bob.received(2, timeout=10, sender_id=bot_id)
        for event in held:  # (the wake-up, which must make no difference)
            wake(two.registry, event)
        answered = await bob.received(3, timeout=10, sender_id=bot_id)
        assert [a["quoted_message_id"] for a in answered] == [
            first["id"],
            second["id"],
            third["id"],
        ]
        assert [a["text"] for a in answered] == ["FIRST (two)", "SECOND (two)", "THIRD (two)"]


async def test_a_new_message_after_a_clean_stop_runs_after_the_ones_left_behind(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    """One process stops while its bot hangs on alice's message; bob, on the other, writes
    before any poll (they come too late here): the other process takes the message left
    behind along with bob's, and answers them in order."""
    async with two_processes(
        database,
        tmp_path,
        one_bot={"hang": True},
        bot_poll_interval=60,
        bot_delivery_lease=180,
    ) as (one, two):
        alice, bot_id, first = await say_hello(one)
        await one.stop(signal.SIGTERM)
        bob = Person(two.base_url, two.ws_url)
        try:
            assert alice.conversation_id is not None
            assert (await bob.join(alice.conversation_id, nickname="bob")).status_code == 200
            socket = await bob.connect()
            second = await socket.message(local_id=await socket.say("second"))
            # (The answer to alice's may come before bob's echo: it is taken over, and run,
            # as soon as his socket's joining records a delivery to the bot.)
            answers = await socket.received(2, sender_id=bot_id)
            assert [a["quoted_message_id"] for a in answers] == [first["id"], second["id"]]
            assert runner_bots.CALLS[bot_id][-2:] == ["hello", "second"]
        finally:
            await bob.close()
