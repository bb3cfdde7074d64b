"""``tertulia delete`` while servers run: a deleted conversation's sockets close with 4404,
its requests get clean 4xx answers, its bots' work is dropped quietly, and its neighbours
go on as if nothing happened (tertulia/chats.py ``ChatRegistry.deleted`` / ``forget``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Integer, column, func, select, text, update
from websockets.exceptions import InvalidStatus

from support.blab import Person, talking
from support.bots import GATES, watch_logs
from support.environment import DatabaseTarget
from support.process import two_servers
from support.server import LiveServer, live_server
from support.waiting import until
from tertulia.chats import Chat
from tertulia.cli import delete
from tertulia.errors import ConversationGone
from tertulia.storage import conversations as conv_repo
from tertulia.storage.database import open_database
from tertulia.storage.tables import participants

T = TypeVar("T")


async def test_a_socket_that_writes_finds_out(make_settings: Any, people: Any) -> None:
    """In-process broker: nothing tells the server; the first text on the deleted
    conversation closes its socket with 4404, and its other requests are refused (404 /
    403, JSON). Bob's conversation on the same server goes on."""
    settings = make_settings()
    with watch_logs() as logs:
        async with live_server(settings) as server:
            alice, bob = people(server), people(server)
            alice_socket = await talking(alice, "alice")
            bob_socket = await talking(bob, "bob")

            assert await asyncio.to_thread(delete, settings, [alice.conversation_id]) == 0

            await alice_socket.say("anyone there?")
            assert await alice_socket.closed_with() == 4404
            retrieved = await alice.http.get(f"/conversations/{alice.conversation_id}/")
            assert retrieved.status_code == 404
            assert retrieved.json()["code"] == "not_found"
            posted = await alice.post(type="T", text="still here?", local_id="late")
            assert posted.status_code == 403, posted.text
            assert posted.json()["code"] == "not_participant"
            with pytest.raises(Exception, match="403"):
                await alice.connect()

            await bob_socket.say("still talking")
            await bob_socket.message(text="STILL TALKING")
    assert logs.errors() == []


@pytest.mark.parametrize("first", ["post", "history", "retrieve"])
async def test_a_request_finds_out_and_the_sockets_close(
    make_settings: Any, people: Any, first: str
) -> None:
    """The first request on the deleted conversation, a write or a read, answers 404
    ``not_found`` (not 409, not an empty page), and its open socket is closed with 4404
    at that moment, though it sent nothing."""
    settings = make_settings()
    with watch_logs() as logs:
        async with live_server(settings) as server:
            alice = people(server)
            socket = await talking(alice, "alice")
            assert await asyncio.to_thread(delete, settings, [alice.conversation_id]) == 0

            if first == "post":
                answer = await alice.post(type="T", text="hello?", local_id="after")
            elif first == "history":
                answer = await alice.history()
            else:
                answer = await alice.http.get(f"/conversations/{alice.conversation_id}/")
            assert answer.status_code == 404, answer.text
            assert answer.json() == {
                "detail": "This conversation no longer exists.",
                "code": "not_found",
            }
            assert await socket.closed_with() == 4404
            assert (await alice.history()).status_code == 403
            # The person's session goes on: a new conversation works.
            assert (await alice.create(nickname="alice", bots=["ECHO"])).status_code == 201
    assert logs.errors() == []


@pytest.mark.parametrize("told", [False, True], ids=["found-out", "told"])
@pytest.mark.parametrize(("bot", "failed_calls"), [("GatedEchoBot", 0), ("FlakyGatedEchoBot", 1)])
async def test_a_bot_at_work_is_dropped_quietly(
    make_settings: Any, people: Any, bot: str, failed_calls: int, told: bool
) -> None:
    """A bot answering in a conversation deleted meanwhile, on its first call or on a
    retry (FlakyGatedEchoBot's first call fails): its answer is refused, the delivery
    dropped without further attempts (one info line), and nothing logged as an error.
    Also when the server was told of the deletion (Redis) and had forgotten the
    conversation before the answer came (QA: that answer's "conversation not found" was
    retried and logged as a delivery failed for good, counted in the metrics)."""
    settings = make_settings(bots={"SLOW": {"module": "support.bots", "class": bot, "retries": 3}})
    with watch_logs() as logs:
        async with live_server(settings) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", name="slow", bots=["SLOW"])
            assert created.status_code == 201
            socket = await alice.connect()
            await socket.say("take your time")
            started = await logs.wait_for(lambda e: e["event"] == "gated bot waiting")
            assert started["conversation_id"] == alice.conversation_id
            assert await asyncio.to_thread(delete, settings, [alice.conversation_id]) == 0
            if told:  # (what a Redis broker's announcement does on every server)
                await server.registry.forget(alice.conversation_id)
            GATES.pop(alice.conversation_id).set()
            await logs.wait_for(lambda e: e["event"] == "conversation deleted; delivery dropped")
            assert await socket.closed_with() == 4404
    failed = [e for e in logs.entries if e["event"] == "bot call failed"]
    assert len(failed) == failed_calls
    assert len([e for e in logs.entries if e["event"] == "gated bot waiting"]) == 1
    assert logs.errors() == []


async def test_a_bots_pending_work_is_dropped_quietly_too(make_settings: Any, people: Any) -> None:
    """(Multi-process QA F6: a deletion under load logged a warning "delivery to an unknown
    bot dropped" for every delivery still pending, and "bot delivery failed for good" for an
    answer whose quote went with the conversation, which the process had not stored itself.)
    The answer at work and the deliveries behind it are dropped with an info line each,
    and nothing is a warning or an error."""
    settings = make_settings(bots={"SLOW": {"module": "support.bots", "class": "GatedEchoBot"}})
    with watch_logs() as logs:
        async with live_server(settings) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", name="slow", bots=["SLOW"])
            assert created.status_code == 201
            socket = await alice.connect()
            for n in range(3):
                await socket.say(f"text {n}")
            await logs.wait_for(lambda e: e["event"] == "gated bot waiting")
            assert await asyncio.to_thread(delete, settings, [alice.conversation_id]) == 0
            chat = await server.registry.get(alice.conversation_id)
            assert chat is not None
            chat._known.clear()  # (as on a process that did not store the texts itself)
            GATES[alice.conversation_id].set()  # (left open: the later texts pass it)
            dropped = "conversation deleted; delivery dropped"
            try:
                await until(lambda: len([e for e in logs.entries if e["event"] == dropped]) == 3)
            except TimeoutError:
                pytest.fail(str([(e["event"], e["log_level"]) for e in logs.entries]))
            finally:
                GATES.pop(alice.conversation_id, None)
    assert [e for e in logs.entries if e["log_level"] in ("warning", "error")] == []


@pytest.mark.slow
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)  # a shared server database
async def test_redis_tells_every_server_at_once(database: DatabaseTarget, tmp_path: Path) -> None:
    """Two processes sharing PostgreSQL and Redis: the deletion is announced, and the
    sockets on both close with 4404 without sending anything; both then refuse it."""
    async with two_servers(database, tmp_path, rooms=True, media_root=str(tmp_path / "media")) as (
        one,
        two,
        settings,
    ):
        alice = Person(one.base_url, one.ws_url)
        bob = Person(two.base_url, two.ws_url)
        carol = Person(two.base_url, two.ws_url)
        try:
            alice_socket = await talking(alice, "alice")
            assert (await bob.join(alice.conversation_id, nickname="bob")).status_code == 200
            bob_socket = await bob.connect()
            await bob_socket.state()
            carol_socket = await talking(carol, "carol")

            assert await asyncio.to_thread(delete, settings, [alice.conversation_id]) == 0

            assert await alice_socket.closed_with() == 4404
            assert await bob_socket.closed_with() == 4404
            for person in (alice, bob):
                answer = await person.http.get(f"/conversations/{alice.conversation_id}/")
                assert answer.status_code == 404
            await carol_socket.say("on two still")
            await carol_socket.message(text="ON TWO STILL")
        finally:
            for person in (alice, bob, carol):
                await person.close()


async def test_a_handshake_that_finds_out_is_refused(make_settings: Any, people: Any) -> None:
    """A socket opening on a deleted conversation whose controller this process still
    holds, without the participant in memory (as when another process added them): the
    participant's lookup finds the conversation gone, and the handshake is refused (403),
    not failed."""
    settings = make_settings()
    with watch_logs() as logs:
        async with live_server(settings) as server:
            alice = people(server)
            chat = await _gone_quiet(server, alice)
            chat.participants = [p for p in chat.participants if p.id != alice.participant_id]
            assert await asyncio.to_thread(delete, settings, [alice.conversation_id]) == 0

            with pytest.raises(InvalidStatus, match="403"):
                await alice.connect()
            assert chat.gone
    assert logs.errors() == []


@pytest.mark.parametrize("present", [False, True])
async def test_a_socket_opening_finds_out(make_settings: Any, people: Any, present: bool) -> None:
    """A socket opening on a deleted conversation this process still holds (its
    participant's places cached): closed with 4404 as it starts, whether it would store
    its participant's *joined* (not present) or read the latest message (present: another
    socket of theirs is open, and is closed too)."""
    settings = make_settings(presence_grace=0)
    with watch_logs() as logs:
        async with live_server(settings) as server:
            alice = people(server)
            first = await talking(alice, "alice")
            if not present:
                await first.close()

                async def left() -> bool:
                    found = (await alice.history()).json()["results"]
                    return any(m.get("event") == "participant-left" for m in found)

                await until(left)
            assert await asyncio.to_thread(delete, settings, [alice.conversation_id]) == 0

            second = await alice.connect()
            assert await second.closed_with() == 4404
            if present:
                assert await first.closed_with() == 4404
    assert logs.errors() == []


# The sessions that a PostgreSQL session (its pid) holds back, waiting for its locks.
_BLOCKED_BY = text(
    "SELECT count(*) AS n FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
).columns(column("n", Integer))


# The test's own transaction, which makes the deadlock, checks for one last: PostgreSQL ends
# the transaction whose check finds it, and under load the test's could run first (CI, once).
async def _gone_quiet(server: LiveServer, alice: Person) -> Chat:
    """alice talked in a conversation and closed her socket: its chat (a test stores her
    *left* itself, with ``presence_grace`` long)."""
    socket = await talking(alice, "alice")
    await socket.close()
    chat = await server.registry.get(alice.conversation_id)
    assert chat is not None
    return chat


_PATIENT = text("SET LOCAL deadlock_timeout = '60s'")


async def _blocking(db: Any, pid: int) -> bool:
    """Whether some session waits for a lock that PostgreSQL session ``pid`` holds."""
    async with db.read() as other:
        return bool((await other.execute(_BLOCKED_BY, {"pid": pid})).scalar_one())


async def _deadlock(
    settings: Any, person: Person, write: Callable[[], Awaitable[T]]
) -> asyncio.Future[T]:
    """Start ``write`` against a transaction of another process that holds ``person``'s
    participant row, waits until the write waits for that row, then takes the
    conversation's row, which the write holds: a deadlock, which PostgreSQL ends by ending
    the write (this transaction checks last). Returns the write, once this one committed."""
    db = await open_database(settings.database_url, schema=settings.database_schema, existing=True)
    try:
        async with db.write() as conn:
            await conn.execute(_PATIENT)
            held = await conn.execute(
                update(participants)
                .where(participants.c.id == person.participant_id)
                .values(name="alice")
            )
            assert held.rowcount == 1
            pid = (await conn.execute(select(func.pg_backend_pid()))).scalar_one()
            writing = asyncio.ensure_future(write())
            await until(lambda: _blocking(db, pid))
            assert person.conversation_id is not None
            assert await conv_repo.take_turns(conn, person.conversation_id)
    finally:
        await db.close()
    return writing


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
@pytest.mark.parametrize("write", ["leave", "rename", "message"])
async def test_a_write_and_a_deletion_at_once_take_turns(
    make_settings: Any, people: Any, write: str
) -> None:
    """PostgreSQL (SQLite writes one transaction at a time): a write of the conversation
    while ``tertulia delete`` deletes it. A person's *left* marked its participant's row
    first, then waited for the conversation's row, which the deletion held and which then
    waited for the participant's: a deadlock, and one of the two died (CI: the deletion,
    status 1). A use case takes the conversation's row first (a plain message's numbering
    does): it waits, finds the conversation gone, and says nothing (the leave) or refuses
    as gone (404 / 4404 to its sender)."""
    settings = make_settings(presence_grace=3600)  # (the test stores the leave itself)
    with watch_logs() as logs:
        async with live_server(settings) as server:
            alice = people(server)
            chat = await _gone_quiet(server, alice)
            participant = await chat.participant(alice.participant_id)
            assert participant is not None
            writes = {
                "leave": lambda: chat._participant_left(participant.id),
                "rename": lambda: chat.rename(participant, "alicia"),
                "message": lambda: chat.submit(participant, {"type": "T", "text": "hi"}),
            }
            db = await open_database(
                settings.database_url, schema=settings.database_schema, existing=True
            )
            try:
                async with db.write() as conn:
                    assert await conv_repo.lock_conversation(conn, alice.conversation_id)
                    pid = (await conn.execute(select(func.pg_backend_pid()))).scalar_one()
                    writing = asyncio.create_task(writes[write]())
                    await until(lambda: _blocking(db, pid))
                    await conv_repo.delete_conversation(conn, alice.conversation_id)
                async with asyncio.timeout(10):
                    if write == "leave":
                        await writing
                    else:
                        with pytest.raises(ConversationGone):
                            await writing
            finally:
                await db.close()
            assert chat.gone
    assert logs.errors() == []


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_a_write_that_loses_a_deadlock_is_refused_as_a_conflict(
    make_settings: Any, people: Any
) -> None:
    """A transaction of another process holds Alice's participant row and then waits for
    the conversation's row, which her rename holds while it waits for that participant's:
    PostgreSQL ends the rename to let the other through. Her request gets 409 and a JSON
    body (it was a 500), the same request then succeeds, and the log has a warning, no
    error."""
    settings = make_settings()
    with watch_logs() as logs:
        async with live_server(settings) as server:
            alice = people(server)
            await talking(alice, "alice")
            path = f"/conversations/{alice.conversation_id}/participants/{alice.participant_id}"
            renaming = await _deadlock(
                settings, alice, lambda: alice.http.patch(path, json={"name": "ali"})
            )
            async with asyncio.timeout(10):
                refused = await renaming
            assert refused.status_code == 409, refused.text
            assert refused.json()["code"] == "conflict"
            again = await alice.http.patch(path, json={"name": "ali"})
            assert again.status_code == 200, again.text
    assert logs.errors() == []
    assert any("deadlock" in e.get("reason", "") for e in logs.entries)


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_a_deletion_that_loses_a_deadlock_tries_again(
    make_settings: Any, people: Any
) -> None:
    """``tertulia delete`` waits for a participant's row that another transaction holds,
    which then waits for the conversation's row the deletion holds: PostgreSQL ends the
    deletion, which tries again once the other is through, and succeeds (status 0)."""
    settings = make_settings()
    async with live_server(settings) as server:
        alice = people(server)
        await talking(alice, "alice")
    deleting = await _deadlock(
        settings, alice, lambda: asyncio.to_thread(delete, settings, [alice.conversation_id])
    )
    async with asyncio.timeout(20):
        assert await deleting == 0
    db = await open_database(settings.database_url, schema=settings.database_schema, existing=True)
    try:
        async with db.read() as conn:
            assert await conv_repo.get_conversation(conn, alice.conversation_id) is None
    finally:
        await db.close()


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_a_socket_whose_opening_loses_a_deadlock_is_told_to_try_again(
    make_settings: Any, people: Any
) -> None:
    """As above for a socket's opening (its participant marked present): closed with 1013,
    which the client retries, and a warning (it was 1011 and an error); the next one opens."""
    settings = make_settings()
    with watch_logs() as logs:
        async with live_server(settings) as server:
            alice = people(server)
            first = await talking(alice, "alice")
            await first.close()
            socket = await (await _deadlock(settings, alice, alice.connect))
            assert await socket.closed_with() == 1013
            again = await alice.connect()
            await again.state()
    assert logs.errors() == []
    assert any(e["event"].startswith("the socket's opening lost") for e in logs.entries)


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_a_leave_that_loses_a_deadlock_is_stored_at_its_next_try(
    make_settings: Any, people: Any
) -> None:
    """As above for a person's *left*: PostgreSQL ends it, and it is tried again once the
    other transaction is through, and stored (not stored, they stayed online for good)."""
    settings = make_settings(presence_grace=3600)  # (the test stores the leave itself)
    with watch_logs() as logs:
        async with live_server(settings) as server:
            alice = people(server)
            chat = await _gone_quiet(server, alice)
            leaving = await _deadlock(
                settings, alice, lambda: chat._participant_left(alice.participant_id)
            )
            async with asyncio.timeout(10):
                await leaving
            history = (await alice.history()).json()["results"]
            left = [m for m in history if m.get("event") == "participant-left"]
            assert len(left) == 1
    assert logs.errors() == []
