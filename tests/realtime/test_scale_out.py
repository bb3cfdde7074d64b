"""Two server processes sharing PostgreSQL and Redis serve one conversation together."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from support.blab import Person
from support.bots import watch_logs
from support.environment import REDIS_URL, DatabaseTarget, require_service
from support.process import ServerProcess, two_servers
from support.server import LiveServer, live_server
from support.waiting import until
from tertulia.errors import DatabaseUnavailable
from tertulia.settings import Settings


@pytest.mark.slow
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)  # a shared server database
async def test_people_on_two_servers_see_each_other(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    """A person on each of two processes: messages, presence and bot answers cross over."""
    async with two_servers(database, tmp_path, presence_grace=0, rooms=True) as (one, two, _):
        alice = Person(one.base_url, one.ws_url)
        bob = Person(two.base_url, two.ws_url)
        try:
            created = await alice.create(nickname="alice", name="room", bots=["ECHO"])
            assert created.status_code == 201
            conversation_id = created.json()["id"]
            alice_socket = await alice.connect()
            assert (await bob.join(conversation_id, nickname="bob")).status_code == 200
            bob_socket = await bob.connect()
            joined = await alice_socket.message(event="participant-joined")
            while joined["additional_metadata"]["participant_id"] != bob.participant_id:
                joined = await alice_socket.message(event="participant-joined")

            await bob_socket.say("hello from two")
            heard = await alice_socket.message(text="hello from two")
            assert heard["sender_id"] == bob.participant_id
            answer = await alice_socket.message(text="HELLO FROM TWO")
            assert answer["quoted_message_id"] == heard["id"]
            await bob_socket.message(text="HELLO FROM TWO")

            await alice_socket.say("and back")
            assert (await bob_socket.message(text="and back"))["sender_id"] == alice.participant_id
        finally:
            await alice.close()
            await bob.close()


@pytest.mark.slow
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_people_joining_at_once_through_two_processes_all_get_in(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    """(REST QA F9: two to four of eight joins at once, half through each process, got 409
    with PostgreSQL's own words, "duplicate key value violates unique constraint …": each
    process counted the participants for the next ordinal before the other's insert.) The
    joins of a conversation take turns on its row: each gets in, with its own ordinal."""
    async with two_servers(database, tmp_path, presence_grace=0) as (one, two, _):
        alice = Person(one.base_url, one.ws_url)
        everyone = [alice]
        try:
            created = await alice.create(nickname="alice", name="room", bots=["ECHO"])
            assert created.status_code == 201
            conversation_id = created.json()["id"]
            for _ in range(3):  # (a race: three rounds of eight)
                people = [Person(s.base_url, s.ws_url) for s in (one, two) * 4]
                everyone += people
                joins = [
                    person.join(conversation_id, nickname=f"p{n}")
                    for n, person in enumerate(people)
                ]
                answers = await asyncio.gather(*joins)
                assert [a.status_code for a in answers] == [200] * len(people), [
                    a.text for a in answers if a.status_code != 200
                ]
            listed = (await alice.http.get(f"/conversations/{conversation_id}/")).json()
            assert len(listed["participants"]) == 2 + 3 * 8
        finally:
            for person in everyone:
                await person.close()


@pytest.mark.slow
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_a_person_back_within_the_grace_is_shown_online_by_every_process(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    """(Multi-process QA F4: bob's tab on one process reloaded within the grace while
    another process published a state frame, which knew nothing of bob's grace and left
    him out; his return published nothing, so everyone showed him offline for good.) A
    person back within the grace, with several processes, is announced online again."""
    async with two_servers(database, tmp_path, presence_grace=3) as (one, two, _):
        alice = Person(one.base_url, one.ws_url)
        bob = Person(one.base_url, one.ws_url)
        carol = Person(two.base_url, two.ws_url)
        try:
            created = await alice.create(nickname="alice", name="room", bots=[])
            conversation_id = created.json()["id"]
            assert (await bob.join(conversation_id, nickname="bob")).status_code == 200
            assert (await carol.join(conversation_id, nickname="carol")).status_code == 200
            watching = await alice.connect()
            tab = await bob.connect()
            await watching.wait_for(lambda f: bob.participant_id in online(f))
            await tab.close()  # (bob's grace starts, on process one)
            await carol.connect()  # (process two says who is online: not bob)
            await watching.wait_for(
                lambda f: carol.participant_id in online(f) and bob.participant_id not in online(f)
            )
            await bob.connect()  # (back within the grace, on process one)
            await watching.wait_for(lambda f: bob.participant_id in online(f), timeout=5)
        finally:
            for person in (alice, bob, carol):
                await person.close()


def online(frame: dict[str, Any]) -> list[str]:
    """Who a ``state`` frame says is online (none for another frame)."""
    return list(frame.get("state", {}).get("online", []))


@pytest.mark.slow
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_the_people_of_a_killed_process_are_announced_as_having_left(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    """Bob's socket is on a process that is SIGKILLed: once its lease lapses, the living
    process announces him as having left, once, and shows him offline; his next socket,
    there, is his arrival again."""
    async with alice_here_and_bob_there(database, tmp_path) as (one, two, alice, bob):
        alice_socket = alice.sockets[0]
        two.kill()
        left = await alice_socket.wait_for(lambda f: about(f, "participant-left", bob), timeout=20)
        state = await alice_socket.wait_for(
            lambda f: "state" in f and bob.participant_id not in f["state"]["online"]
        )
        assert alice.participant_id in state["state"]["online"]

        again = Person(one.base_url, one.ws_url)
        assert bob.session is not None
        again.http.cookies.set("sessionid", bob.session)
        again.conversation_id, again.participant_id = alice.conversation_id, bob.participant_id
        try:
            await again.connect()
            joined = await alice_socket.wait_for(lambda f: about(f, "participant-joined", bob))
            assert joined["message"]["id"] > left["message"]["id"]
            assert await presence_of(bob, alice) == {"participant-joined": 2, "participant-left": 1}
        finally:
            await again.close()


@pytest.mark.slow
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_the_people_of_a_stopped_process_who_do_not_come_back_are_announced_as_left(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    """Bob's process stops on purpose (SIGTERM): it closes his socket and stores nothing,
    as a restart should; no lease lapses either. He does not come back, so the living
    process's sweep announces him as having left, once."""
    async with alice_here_and_bob_there(database, tmp_path) as (one, two, alice, bob):
        await two.stop(signal.SIGTERM)  # (uvicorn re-raises it once stopped: -15)
        await alice.sockets[0].wait_for(lambda f: about(f, "participant-left", bob), timeout=20)
        sweeps = one.app.state.absences
        swept = sweeps.sweeps
        await until(lambda: sweeps.sweeps >= swept + 2)
        assert await presence_of(bob, alice) == {"participant-joined": 1, "participant-left": 1}


@asynccontextmanager
async def alice_here_and_bob_there(
    database: DatabaseTarget, tmp_path: Path
) -> AsyncIterator[tuple[LiveServer, ServerProcess, Person, Person]]:
    """Two servers (a lease of 1 s, no grace); alice's room with her socket on the first,
    bob's on the second, his arrival seen by her socket (``alice.sockets[0]``)."""
    async with two_servers(database, tmp_path, presence_grace=0, presence_lease=1, rooms=True) as (
        one,
        two,
        _,
    ):
        alice = Person(one.base_url, one.ws_url)
        bob = Person(two.base_url, two.ws_url)
        try:
            created = await alice.create(nickname="alice", name="room")
            alice_socket = await alice.connect()
            assert (await bob.join(created.json()["id"], nickname="bob")).status_code == 200
            await bob.connect()
            await alice_socket.wait_for(lambda f: about(f, "participant-joined", bob), timeout=10)
            yield one, two, alice, bob
        finally:
            await alice.close()
            await bob.close()


async def presence_of(person: Person, reader: Person) -> Counter[str]:
    """How many *participant-joined* and *participant-left* about ``person`` the history
    read by ``reader`` holds."""
    history = (await reader.history()).json()["results"]
    return Counter(m["event"] for m in history if about({"message": m}, "", person))


def about(frame: dict[str, Any], event: str, person: Person) -> bool:
    """A frame with a system message of ``event`` (any if empty) about ``person``."""
    message = frame.get("message") or {}
    return bool(
        message.get("event")
        and (not event or message["event"] == event)
        and (message.get("additional_metadata") or {}).get("participant_id")
        == person.participant_id
    )


@pytest.mark.slow
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_state_frames_from_a_process_that_did_not_see_a_join_name_the_new_person(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    """QA (three processes): bob's conversation is served by the first process; alice
    joins and connects through the second. The first process's own ``state`` frames (its
    bot at work) left her out of ``participants`` and ``online``, her own socket's too: it
    knew the participants from before her join. Now it learns them again when someone
    online is unknown to it."""
    slow = {"module": "tertulia.bots.builtin", "class": "CalculatorBot", "kwargs": {"delay": 1}}
    async with two_servers(database, tmp_path, presence_grace=0, bots={"SlowCalc": slow}) as (
        one,
        two,
        _,
    ):
        bob = Person(one.base_url, one.ws_url)
        alice = Person(two.base_url, two.ws_url)
        try:
            created = await bob.create(nickname="bob", name="sums", bots=["SlowCalc"])
            assert created.status_code == 201
            bob_socket = await bob.connect()
            assert (await alice.join(created.json()["id"], nickname="alice")).status_code == 200
            alice_socket = await alice.connect()
            await bob_socket.wait_for(lambda f: about(f, "participant-joined", alice))

            await bob_socket.say("1+1")
            for socket in (alice_socket, bob_socket):
                working = await socket.wait_for(lambda f: bool(f.get("state", {}).get("working")))
                state = working["state"]
                assert alice.participant_id in [p["id"] for p in state["participants"]]
                assert alice.participant_id in state["online"]
            await alice_socket.message(text="2")
        finally:
            await alice.close()
            await bob.close()


@pytest.mark.slow
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_state_frames_from_a_process_that_did_not_see_a_rename_have_the_new_name(
    database: DatabaseTarget, tmp_path: Path
) -> None:
    """alice, on the second process, renames herself; the first process's next ``state``
    frame (bob leaving it, say) named her as before, and every client, hers too, took her
    old name back (seen on the wire, as a race: the second process's frame may come last).
    With several processes a state frame now reads the participants afresh."""
    async with two_servers(database, tmp_path, presence_grace=0) as (one, two, _):
        bob = Person(one.base_url, one.ws_url)
        alice = Person(two.base_url, two.ws_url)
        try:
            created = await bob.create(nickname="bob", name="chat")
            assert created.status_code == 201
            bob_socket = await bob.connect()
            assert (await alice.join(created.json()["id"], nickname="alice")).status_code == 200
            await alice.connect()
            await bob_socket.wait_for(lambda f: about(f, "participant-joined", alice))
            renamed = await alice.http.patch(
                f"/conversations/{alice.conversation_id}/participants/{alice.participant_id}/",
                json={"name": "alicia"},
            )
            assert renamed.status_code == 200, renamed.text

            def names(frame: dict[str, Any]) -> dict[str, str]:
                return {p["id"]: p["name"] for p in frame["state"]["participants"]}

            await bob_socket.wait_for(
                lambda f: "state" in f and names(f)[alice.participant_id] == "alicia"
            )
            # The first process's next state frame (bob leaving, its bot at work: whichever
            # comes), as it builds it:
            chat = await one.registry.get(alice.conversation_id)
            assert chat is not None
            assert names({"state": await chat.state()})[alice.participant_id] == "alicia"
        finally:
            await alice.close()
            await bob.close()


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_a_state_frame_goes_out_with_the_participants_last_read_when_the_database_is_out(
    make_settings: Callable[..., Settings],
    people: Callable[[LiveServer], Person],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With several processes a state frame reads the participants first; the database out
    of reach, it goes out all the same with those last read (as before they were read for
    every frame), and says so in the log, rather than failing (no frame at all)."""
    require_service("Redis", REDIS_URL)
    async with live_server(make_settings(broker_url=REDIS_URL)) as server:
        alice = people(server)
        assert (await alice.create(nickname="alice")).status_code == 201
        chat = await server.registry.get(alice.conversation_id or "")
        assert chat is not None

        async def unreachable() -> None:
            raise DatabaseUnavailable("ConnectionRefusedError: [Errno 111] refused")

        monkeypatch.setattr(chat, "refresh", unreachable)
        with watch_logs() as logs:
            state = await chat.state()
        assert [p["name"] for p in state["participants"]] == ["alice"]
        assert any("database unreachable" in e["event"] for e in logs.entries)
