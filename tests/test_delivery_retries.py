"""Deliveries to internal bots: retries with backoff, time limits, de-duplicated answers,
order per bot, and status updates (PROTOCOL 6.2; bots/runner.py)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from support.blab import Socket
from support.bots import REFUSED_CALLS, bots_with, watch_logs
from support.managers import (
    ATTEMPTS,
    DELIVERY_IDS,
    ENTERED,
    GATE,
    INBOXES,
    LOOPING,
    OUTCOMES,
    RETURNED,
    delivery_rows,
    loop_again,
    start,
)
from support.server import live_server
from tertulia.bots.runner import delivery_id
from tertulia.storage.database import open_database
from tertulia.storage.tables import deliveries

OURS = "support.managers"
TRANSPARENT = {"module": "tertulia.bots.builtin", "class": "TransparentManagerBot"}


async def say(socket: Socket, text: str) -> dict[str, Any]:
    local_id = await socket.say(text)
    return await socket.message(local_id=local_id)


def row_for(rows: list[Any], message_id: str) -> Any:
    (row,) = [r for r in rows if r.kind == "message" and r.payload["id"] == message_id]
    return row


async def test_a_retried_send_returns_the_message_stored_the_first_time(
    make_settings: Any, people: Any
) -> None:
    """A bot's retried delivery sends its offer again: ``send`` returns the offer stored by
    the first attempt (its id, for the bot to keep), as a repeated ``local_id`` over REST
    gets the stored message. Before, it returned None, and a bot keeping the offer's id
    failed every retry with a TypeError (bot QA), its delivery failing for good."""
    bots = {"Offer": {"module": OURS, "class": "OfferingFlakyBot", "retries": 2}}
    async with live_server(make_settings(bots=bots)) as server:
        alice, socket, ids = await start(server, people, ["Offer"])
        sent = await say(socket, "choose")
        offer = await socket.message(sender_id=ids["Offer"])
        await server.registry.runner.idle()
        assert ATTEMPTS[sent["id"]] == 2
        first, again = RETURNED[sent["id"]]
        assert first is not None
        assert again is not None
        assert again["id"] == first["id"] == offer["id"]
        assert again["options"] == ["this", "that"]
        (row,) = [r for r in await delivery_rows(server, ids["Offer"]) if r.kind == "message"
                  and r.payload["id"] == sent["id"]]  # fmt: skip
        assert row.status == "done"
        texts = [m.get("text") for m in (await alice.history()).json()["results"]]
        assert texts.count("Which?") == 1


@pytest.mark.parametrize("manager", [None, "Manager"])
async def test_a_bot_failing_twice_then_succeeding_answers_once(
    make_settings: Any, people: Any, manager: str | None
) -> None:
    """A bot that answers and then fails twice is retried; people see its answer once."""
    bots: dict[str, Any] = {
        "Flaky": {"module": OURS, "class": "FlakyBot", "kwargs": {"failures": 2}, "retries": 3}
    }
    if manager:
        bots["Manager"] = TRANSPARENT
    async with live_server(make_settings(bots=bots, manager=manager)) as server:
        alice, socket, ids = await start(server, people, ["Flaky"])
        sent = await say(socket, "hello")
        answer = await socket.message(quoted_message_id=sent["id"])
        assert answer["text"] == "HELLO"
        assert answer["sender_id"] == ids["Flaky"]
        await server.registry.runner.idle()
        later = await socket.sync()
        assert not [f for f in later if "message" in f and f["message"]["text"] == "HELLO"]
        history = [m.get("text") for m in (await alice.history()).json()["results"]]
        assert history.count("HELLO") == 1
        assert ATTEMPTS[sent["id"]] == 3
        row = row_for(await delivery_rows(server, ids["Flaky"]), sent["id"])
        assert (row.status, row.attempts) == ("done", 3)


async def test_an_internal_bot_gets_the_delivery_id_a_webhook_gets(
    make_settings: Any, people: Any
) -> None:
    """conversation_info.delivery_id is one UUID string on every retry of a delivery, the id
    a webhook bot is sent for it (an internal bot was given the row's number, an int)."""
    bots = {"Flaky": {"module": OURS, "class": "FlakyBot", "kwargs": {"failures": 1}}}
    async with live_server(make_settings(bots=bots)) as server:
        _, socket, ids = await start(server, people, ["Flaky"])
        sent = await say(socket, "hello")
        await socket.message(quoted_message_id=sent["id"])
        await server.registry.runner.idle()
        row = row_for(await delivery_rows(server, ids["Flaky"]), sent["id"])
        first, again = DELIVERY_IDS[sent["id"]]
        assert first == again == delivery_id(ids["Flaky"], row.pk)
        assert str(uuid.UUID(first)) == first
        # (the id earlier versions sent webhooks for it: a retry across an upgrade is one)
        namespace = uuid.UUID("5b0e7f53-3a55-4c1e-9a63-8f0d27a1c6d4")
        assert first == str(uuid.uuid5(namespace, f"{ids['Flaky']}:{row.pk}"))


async def test_a_call_over_its_time_limit_is_retried(make_settings: Any, people: Any) -> None:
    """A bot call that hangs past its timeout is abandoned and tried again."""
    bots = {"Slow": {"module": OURS, "class": "HangOnceBot", "timeout": 0.3, "retries": 2}}
    async with live_server(make_settings(bots=bots)) as server:
        _, socket, ids = await start(server, people, ["Slow"])
        sent = await say(socket, "wake up")
        answer = await socket.message(quoted_message_id=sent["id"])
        assert answer["text"] == "WAKE UP"
        await server.registry.runner.idle()
        row = row_for(await delivery_rows(server, ids["Slow"]), sent["id"])
        assert (row.status, row.attempts) == ("done", 2)


async def test_a_bot_that_keeps_failing_is_given_up(make_settings: Any, people: Any) -> None:
    """After ``retries`` more attempts a delivery fails for good; later ones still run."""
    bots = {
        "Flaky": {"module": OURS, "class": "FlakyBot", "kwargs": {"failures": 100}, "retries": 1}
    }
    async with live_server(make_settings(bots=bots)) as server:
        _, socket, ids = await start(server, people, ["Flaky"])
        first = await say(socket, "one")
        await socket.message(quoted_message_id=first["id"], text="ONE")
        second = await say(socket, "two")
        await socket.message(quoted_message_id=second["id"], text="TWO")
        await server.registry.runner.idle()
        rows = await delivery_rows(server, ids["Flaky"])
        for sent in (first, second):
            row = row_for(rows, sent["id"])
            assert (row.status, row.attempts) == ("failed", 2)
            assert "flaky failure 2" in row.last_error
        later = await socket.sync()
        assert not [f for f in later if "message" in f and f["message"]["text"] in ("ONE", "TWO")]


async def test_deliveries_to_a_bot_keep_their_order(make_settings: Any, people: Any) -> None:
    """A bot gets a conversation's messages in stored order, a retried one included."""
    bots = {"Recorder": {"module": OURS, "class": "RecordingBot", "retries": 2}}
    async with live_server(make_settings(bots=bots)) as server:
        _, socket, ids = await start(server, people, ["Recorder"])
        texts = [f"fail: {i}" if i in (1, 4) else f"m{i}" for i in range(8)]
        local_ids = [await socket.say(text) for text in texts]  # no waiting in between
        sent = [await socket.message(local_id=local_id) for local_id in local_ids]
        wanted = [m["id"] for m in sent]
        inbox = INBOXES[ids["Recorder"]]
        await inbox.wait(lambda i: wanted[-1] in [m.id for m in i.messages])
        got = [m.id for m in inbox.messages if m.id in wanted]
        assert got == [w for w in wanted for _ in range(2 if w in (wanted[1], wanted[4]) else 1)]


async def test_bots_hear_of_participant_and_presence_changes(
    make_settings: Any, people: Any
) -> None:
    """update_status reaches the bots when someone joins, connects and disconnects."""
    bots = {"Recorder": {"module": OURS, "class": "RecordingBot"}}
    async with live_server(make_settings(bots=bots)) as server:
        alice = people(server)
        created = await alice.create(nickname="alice", bots=["Recorder"])
        recorder = next(p["id"] for p in created.json()["participants"] if p["name"] == "Recorder")
        inbox = INBOXES[recorder]
        await inbox.wait(lambda i: len(i.statuses) >= 1)
        assert [p["name"] for p in inbox.statuses[-1]["participants"]] == ["alice", "Recorder"]

        bob = people(server)
        assert (await bob.join(alice.conversation_id, nickname="bob")).status_code == 200
        await inbox.wait(lambda i: any(len(s["participants"]) == 3 for s in i.statuses))
        count = len(inbox.statuses)

        socket = await alice.connect()
        await inbox.wait(lambda i: len(i.statuses) > count)
        count = len(inbox.statuses)
        await socket.close()
        await inbox.wait(lambda i: len(i.statuses) > count)


async def test_a_bot_still_running_at_shutdown_is_resumed_at_the_next_start(
    make_settings: Any, people: Any
) -> None:
    """A bot call outliving the server stores nothing; the next start redoes it once."""
    settings = make_settings(bots={"Gated": {"module": OURS, "class": "GatedBot"}})
    GATE.clear()
    ENTERED.clear()
    while not OUTCOMES.empty():  # left by an earlier run of this test
        OUTCOMES.get_nowait()
    async with live_server(settings) as server:
        alice, socket, ids = await start(server, people, ["Gated"])
        sent = await say(socket, "hello")
        assert await asyncio.to_thread(ENTERED.wait, 10)
    GATE.set()  # the old server is gone; its bot thread now tries to answer
    assert await asyncio.to_thread(OUTCOMES.get, timeout=10) == "BotStopped"

    async with live_server(settings) as server:
        alice.http.base_url = server.base_url + "/api/chat"
        alice.ws_url = server.ws_url
        resumed = await alice.connect(after=sent["seq"])
        answer = await resumed.message(quoted_message_id=sent["id"])
        assert answer["text"] == "HELLO"
        assert await asyncio.to_thread(OUTCOMES.get, timeout=10) == "sent"
        await server.registry.runner.idle()
        await resumed.sync()
        assert [m.get("text") for m in resumed.messages()].count("HELLO") == 1
        row = row_for(await delivery_rows(server, ids["Gated"]), sent["id"])
        assert row.status == "done"


async def test_a_stop_while_a_manager_is_busy_fails_no_delivery(
    make_settings: Any, people: Any
) -> None:
    """A manager answering in its worker thread, busy (ten self-redirect chains), when
    the server stops: its sends are refused (BotStopped), which is the stop, not the bot's
    failure, so every delivery left is pending for the next start. Before, the refusals
    were retried through the stop and recorded as failed for good, and the worker, its
    cancellation lost (3.11's wait_for handed it the call's outcome), went on to fail the
    next deliveries too (manager QA, round 2: 3 of every run's lost)."""
    bots = {
        "Loop": {"module": OURS, "class": "LoopingManager"},
        "Calculator": {"module": "tertulia.bots.builtin", "class": "CalculatorBot"},
    }
    settings = make_settings(bots=bots, manager="Loop")
    loop_again()
    async with live_server(settings) as server:
        _, socket, _ = await start(server, people, ["Calculator"])
        for n in range(10):
            await socket.say(f"{n}+1")
        assert await asyncio.to_thread(LOOPING.wait, 10)
        await asyncio.sleep(0.5)  # (busier: more chances to stop mid-send)
    db = await open_database(settings.database_url, schema=settings.database_schema, existing=True)
    try:
        async with db.read() as conn:
            counts = await conn.execute(
                select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
            )
            by_status = dict(counts.all())
    finally:
        await db.close()
    assert by_status.get("failed", 0) == 0, by_status
    assert by_status.get("done", 0) > 10, by_status


async def test_a_configuration_error_is_not_retried(make_settings: Any, people: Any) -> None:
    """A bot whose constructor says its configuration cannot work fails its delivery for
    good at the first attempt: retrying would only fail the same way, logging each time."""
    bots = bots_with("Broken", "MisconfiguredBot", retries=3)
    with watch_logs() as logs:
        async with live_server(make_settings(bots=bots)) as server:
            _, socket, ids = await start(server, people, ["Broken"])
            sent = await say(socket, "hello")
            await server.registry.runner.idle()
            row = row_for(await delivery_rows(server, ids["Broken"]), sent["id"])
            assert (row.status, row.attempts) == ("failed", 1)
            assert "the frobnicator's variable is unset" in row.last_error
    mine = [e for e in logs.entries if e.get("participant_id") == ids["Broken"]]
    calls = [e for e in mine if e["event"] == "bot call failed"]
    given_up = [e for e in mine if e["event"] == "bot delivery failed for good"]
    assert len(calls) == len(given_up) >= 1  # (its joining too: one attempt each)
    assert all(e["bot"] == "Broken" and e["attempts"] == 1 for e in given_up)
    # Each line names the delivery as its bot knows it too (its ``delivery_id``).
    assert all(
        e["delivery_id"] == delivery_id(ids["Broken"], e["delivery"]) for e in calls + given_up
    )


async def test_a_send_the_server_refuses_is_not_retried(make_settings: Any, people: Any) -> None:
    """A bot whose answer the server refuses (a 4xx of the chat's rules: a quote of no
    message here, a manager's redirect to no such bot) fails its delivery at the first
    attempt: each retry would be refused the same way, and the bot's later deliveries
    (a manager's: every message of the conversation) would wait out the backoff. (An
    on-loop bot's refused send: test_delivery_on_loop.py.)"""
    bots = bots_with("Refused", "RefusedBot", retries=3)
    REFUSED_CALLS.clear()
    with watch_logs() as logs:
        async with live_server(make_settings(bots=bots)) as server:
            _, socket, ids = await start(server, people, ["Refused"])
            sent = await say(socket, "hello")
            await server.registry.runner.idle()
            row = row_for(await delivery_rows(server, ids["Refused"]), sent["id"])
            assert (row.status, row.attempts) == ("failed", 1)
            assert "quoted_message_id" in row.last_error
    assert [sent["id"]] == REFUSED_CALLS
    given_up = [
        e
        for e in logs.entries
        if e.get("participant_id") == ids["Refused"]
        and e["event"] == "bot delivery failed for good"
    ]
    assert [e["attempts"] for e in given_up] == [1]
