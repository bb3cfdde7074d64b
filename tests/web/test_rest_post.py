"""``POST conversations/<id>/messages/`` with JSON: storing, de-duplication, validation,
bots (PROTOCOL 3.10, 5.3, 5.7). Conformance cases A.1 10, 11 and 13 (12, uploads, is in
``test_uploads.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from support.blab import Person
from support.bots import bot_person
from support.rest import NOWHERE, PersonFactory, SettingsFactory, get
from support.server import LiveServer, live_server
from tertulia import chats

SILENT = {"module": "support.bots", "class": "SilentBot"}
ECHO = {"module": "tertulia.bots.builtin", "class": "UpperCaseEchoBot"}


async def test_post_stores_and_echoes_to_the_sender(alice: Person) -> None:
    """Case 10: 201 with the stored message, and a ``message`` frame with its ``local_id``."""
    socket = await alice.connect()
    response = await alice.post(type="T", text="hi", local_id="r1")
    assert response.status_code == 201
    body = response.json()
    assert body["sender_id"] == alice.participant_id
    assert body["sent_by_human"] is True
    assert (body["type"], body["text"], body["local_id"]) == ("T", "hi", "r1")
    assert body["quoted_message_id"] is None
    assert body["options"] == []
    echoed = await socket.message(local_id="r1")
    assert echoed == body
    answer = await socket.message(quoted_message_id=body["id"])
    assert answer["text"] == "HI"


async def test_repeated_local_id_is_idempotent(
    alice: Person, server: LiveServer, people: PersonFactory
) -> None:
    """Case 10: the same ``local_id`` again is 200 with the stored message, re-sent to the
    sender's sockets only; nothing is stored and no bot answers again."""
    bob = people(server)
    await bob.join(alice.conversation_id, nickname="bob")
    mine = await alice.connect()
    theirs = await bob.connect()
    first = (await alice.post(type="T", text="hi", local_id="r1")).json()
    await mine.message(quoted_message_id=first["id"])  # ECHO's answer
    await theirs.message(quoted_message_id=first["id"])
    count = (await alice.history()).json()["count"]
    start_mine, start_theirs = len(mine.frames), len(theirs.frames)

    again = await alice.post(type="T", text="something else", local_id="r1")
    assert again.status_code == 200
    assert again.json() == first
    assert (await alice.history()).json()["count"] == count
    assert await mine.message(local_id="r1") == first

    # Frames and each bot's deliveries keep their order: once ECHO has answered a later
    # message, it would have answered the repeated one first.
    marker = await mine.message(local_id=await mine.say("later"))
    await mine.message(quoted_message_id=marker["id"])
    await theirs.message(id=marker["id"])
    answers = [m for m in mine.messages()[start_mine:] if m.get("quoted_message_id") == first["id"]]
    assert answers == []
    resent = [
        f for f in theirs.frames[start_theirs:] if f.get("message", {}).get("local_id") == "r1"
    ]
    assert resent == []
    history = (await alice.history()).json()["results"]
    assert [m["id"] for m in history if m.get("local_id") == "r1"] == [first["id"]]

    padded = await alice.post(type="T", text="hi", local_id="  r1 ")
    assert padded.status_code == 200
    assert padded.json()["id"] == first["id"]


async def test_concurrent_repeats_store_one_message(lone_session: Person) -> None:
    """The same ``local_id`` posted several times at once: one 201, the others 200, one id."""
    responses = await asyncio.gather(
        *(lone_session.post(type="T", text="once", local_id="c1") for _ in range(4))
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert (await lone_session.history()).json()["count"] == 2


async def test_empty_or_null_local_ids_never_repeat(lone_session: Person) -> None:
    """``local_id`` null, absent or ``""`` is stored as null and is never a duplicate."""
    for fields in ({"local_id": ""}, {"local_id": ""}, {"local_id": None}, {}, {}):
        response = await lone_session.post(type="T", text="x", **fields)
        assert response.status_code == 201, fields
        assert response.json()["local_id"] is None


async def test_same_local_id_from_two_senders(
    alice: Person, server: LiveServer, people: PersonFactory
) -> None:
    """Duplicates are per sender: another participant may use the same ``local_id``."""
    bob = people(server)
    await bob.join(alice.conversation_id, nickname="bob")
    first = await alice.post(type="T", text="a", local_id="same")
    second = await bob.post(type="T", text="b", local_id="same")
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]


async def test_post_type_errors(lone_session: Person) -> None:
    """Case 11: ``type`` S, unknown, missing or not a string is 400 on the ``type`` field."""
    cases = [
        ({"type": "S"}, ["You cannot create system messages."]),
        ({"type": "Z"}, ['"Z" is not a valid choice.']),
        ({"type": "t"}, ['"t" is not a valid choice.']),
        ({"text": "no type"}, ["This field is required."]),
        ({"type": None, "text": "x"}, ["This field is required."]),
        ({"type": 5}, None),
        ({"type": ["T"]}, None),
    ]
    for body, expected in cases:
        response = await lone_session.http.post(
            f"/conversations/{lone_session.conversation_id}/messages/", json=body
        )
        assert response.status_code == 400, body
        if expected is not None:
            assert response.json()["type"] == expected, body
        else:
            assert "type" in response.json(), body
    assert (await lone_session.history()).json()["count"] == 1


async def test_post_text_rules(lone_session: Person) -> None:
    """Case 11: text over 4000 is 400; 4000 after trimming is fine; null is taken as ``""``."""
    too_long = await lone_session.post(type="T", text="x" * 4001)
    assert too_long.status_code == 400
    assert too_long.json()["text"] == ["Ensure this field has no more than 4000 characters."]
    longest = await lone_session.post(type="T", text="  " + "x" * 4000 + "\n")
    assert longest.status_code == 201
    assert longest.json()["text"] == "x" * 4000
    null = await lone_session.post(type="T", text=None)
    assert null.status_code == 201
    assert null.json()["text"] == ""
    absent = await lone_session.post(type="T")
    assert absent.status_code == 201
    assert absent.json()["text"] == ""
    assert (await lone_session.post(type="T", text=5)).status_code == 400


async def test_post_local_id_limit(lone_session: Person) -> None:
    """A ``local_id`` of 32 characters is kept; 33 is 400."""
    ok = await lone_session.post(type="T", text="x", local_id="a" * 32)
    assert ok.status_code == 201
    assert ok.json()["local_id"] == "a" * 32
    refused = await lone_session.post(type="T", text="x", local_id="a" * 33)
    assert refused.status_code == 400
    assert "local_id" in refused.json()


async def test_quoting_a_message_older_than_the_remembered_ids(
    alice: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conversation remembers only its latest message ids (memory per conversation stays
    small); an older message is found in the database and can be quoted all the same."""
    monkeypatch.setattr(chats, "KNOWN_IDS", 2)
    oldest = (await alice.post(type="T", text="oldest")).json()["id"]
    for i in range(3):
        assert (await alice.post(type="T", text=f"later {i}")).status_code == 201
    quoting = await alice.post(type="T", text="re", quoted_message_id=oldest)
    assert quoting.status_code == 201, quoting.text
    assert quoting.json()["quoted_message_id"] == oldest


async def test_post_quoting_rules(alice: Person, server: LiveServer, people: PersonFactory) -> None:
    """Case 11: quoting needs a UUID of a message of this conversation; else 400."""
    other = people(server)
    await other.create(nickname="other")
    foreign = (await other.post(type="T", text="elsewhere")).json()["id"]
    for quoted in ("zzz", 5, NOWHERE, foreign):
        response = await alice.post(type="T", text="re", quoted_message_id=quoted)
        assert response.status_code == 400, quoted
        assert "quoted_message_id" in response.json(), quoted
    unknown = await alice.post(type="T", text="re", quoted_message_id=NOWHERE)
    assert unknown.json()["quoted_message_id"] == ["The quoted message does not exist."]

    target = (await alice.post(type="T", text="target")).json()["id"]
    for spelling in (target, target.upper()):
        quoting = await alice.post(type="T", text="re", quoted_message_id=spelling)
        assert quoting.status_code == 201
        assert quoting.json()["quoted_message_id"] == target
    created = (await alice.history()).json()["results"][0]
    assert created["event"] == "conversation-created"
    quoting_system = await alice.post(type="T", text="re", quoted_message_id=created["id"])
    assert quoting_system.status_code == 201
    for empty in ("", None):
        response = await alice.post(type="T", text="plain", quoted_message_id=empty)
        assert response.status_code == 201
        assert response.json()["quoted_message_id"] is None


async def test_post_options(lone_session: Person) -> None:
    """``options`` are kept in order; not an array, or non-strings inside, is 400."""
    ok = await lone_session.post(type="T", text="pick", options=["b", "a", "c"])
    assert ok.status_code == 201
    assert ok.json()["options"] == ["b", "a", "c"]
    for bad in ("a", [1, 2], [{"option_text": "a"}], {"a": 1}):
        response = await lone_session.post(type="T", text="pick", options=bad)
        assert response.status_code == 400, bad
        assert "options" in response.json(), bad


async def test_post_ignores_fields_a_client_may_not_set(alice: Person) -> None:
    """``sender_id``, ``id``, ``time``, ``approval_status``... are ignored; so is a
    non-manager's ``command``."""
    conversation = (await alice.http.get(f"/conversations/{alice.conversation_id}/")).json()
    echo = conversation["participants"][1]["id"]
    response = await alice.post(
        type="T",
        text="me",
        sender_id=echo,
        id="11111111-1111-4111-8111-111111111111",
        time="2000-01-01T00:00:00Z",
        approval_status=0,
        sent_by_manager=True,
        sent_by_human=False,
        event="conversation-ended",
        file_url="/media/x",
        command=orjson.dumps({"action": "approve", "bots": ["ECHO"]}).decode(),
    )
    assert response.status_code == 201
    body = response.json()
    assert body["sender_id"] == alice.participant_id
    assert body["id"] != "11111111-1111-4111-8111-111111111111"
    assert not body["time"].startswith("2000")
    assert body["sent_by_human"] is True
    assert "event" not in body
    assert "file_url" not in body
    history = (await alice.history()).json()["results"]
    assert body["id"] in [m["id"] for m in history]


async def test_post_external_file_url(lone_session: Person) -> None:
    """A file type with ``external_file_url`` is stored with that URL and its last segment;
    a file type with neither file nor URL, or a bad URL, is 400."""
    url = "https://example.com/path/file.pdf?x=1"
    response = await lone_session.post(type="A", text="ext", external_file_url=url)
    assert response.status_code == 201
    body = response.json()
    assert (body["file_url"], body["file_size"], body["file_name"]) == (url, None, "file.pdf")
    text = await lone_session.post(type="T", text="t", external_file_url=url)
    assert text.status_code == 201
    assert "file_url" not in text.json()
    assert (await lone_session.post(type="i", text="nothing")).status_code == 400
    for bad in ("not a url", "javascript:alert(1)", "file:///etc/passwd", "x" * 1001):
        response = await lone_session.post(type="i", external_file_url=bad)
        assert response.status_code == 400, bad


async def test_post_needs_participation(
    alice: Person, server: LiveServer, people: PersonFactory
) -> None:
    """Posting without a session, from another conversation's session, or to an unknown
    conversation is 403, and nothing is stored."""
    count = (await alice.history()).json()["count"]
    other = people(server)
    await other.create(nickname="other")
    path = f"/conversations/{alice.conversation_id}/messages/"
    body = {"type": "T", "text": "intruder"}
    nobody = people(server)
    for person in (nobody, other):
        response = await person.http.post(path, json=body)
        assert response.status_code == 403
    unknown = await alice.http.post(f"/conversations/{NOWHERE}/messages/", json=body)
    assert unknown.status_code == 403
    assert (await alice.history()).json()["count"] == count
    assert (await get(server, f"/api/chat{path}")).status_code == 403


# -- bots posting over REST (case 13) -------------------------------------------------


@pytest.fixture
async def lone_session(server: LiveServer, people: PersonFactory) -> Person:
    """A person alone in a conversation without bots."""
    person = people(server)
    assert (await person.create(nickname="lone")).status_code == 201
    return person


@pytest.fixture
async def with_silent_bot(make_settings: SettingsFactory) -> AsyncIterator[LiveServer]:
    """A server with a bot that does nothing by itself (the test speaks for it)."""
    async with live_server(make_settings(bots={"ECHO": ECHO, "Silent": SILENT})) as running:
        yield running


async def test_bot_posting_over_rest_is_seen_by_humans(
    with_silent_bot: LiveServer, people: PersonFactory
) -> None:
    """Case 13: with no manager, a bot's REST message reaches humans and the history."""
    alice = people(with_silent_bot)
    created = (await alice.create(nickname="alice", bots=["Silent"])).json()
    silent = created["participants"][1]["id"]
    socket = await alice.connect()
    bot = await bot_person(with_silent_bot, created["id"], silent)
    try:
        response = await bot.post(type="T", text="beep", local_id="b1", options=["x"])
        assert response.status_code == 201
        body = response.json()
        assert body["sender_id"] == silent
        assert body["sent_by_human"] is False
        assert await socket.message(local_id="b1") == body
        history = (await alice.history()).json()["results"]
        assert body in history
        again = await bot.post(type="T", text="beep", local_id="b1")
        assert again.status_code == 200
        assert again.json()["id"] == body["id"]
    finally:
        await bot.close()


async def test_bot_posting_over_rest_waits_for_the_manager(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """With a manager, a bot's REST message is held for approval like one sent over the
    socket; the manager's own REST message with ``self_approve`` is shown at once."""
    settings = make_settings(bots={"Silent": SILENT, "Boss": SILENT}, manager="Boss")
    async with live_server(settings) as server:
        alice = people(server)
        created = (await alice.create(nickname="alice", bots=["Silent"])).json()
        silent, boss = (p["id"] for p in created["participants"][1:])
        socket = await alice.connect()
        bot = await bot_person(server, created["id"], silent)
        manager = await bot_person(server, created["id"], boss)
        try:
            held = await bot.post(type="T", text="held", local_id="h1")
            assert held.status_code == 201
            command = orjson.dumps({"self_approve": True}).decode()
            shown = await manager.post(type="T", text="shown", local_id="m1", command=command)
            assert shown.status_code == 201
            assert (await socket.message(local_id="m1"))["sender_id"] == boss
            frames = await socket.sync()
            assert not [f for f in frames if f.get("message", {}).get("local_id") == "h1"]
            history = [m["id"] for m in (await alice.history()).json()["results"]]
            assert held.json()["id"] not in history
            assert shown.json()["id"] in history

            approve = orjson.dumps({"action": "approve"}).decode()
            ok = await manager.post(
                type="T",
                text="approving",
                command=approve,
                quoted_message_id=held.json()["id"],
            )
            assert ok.status_code == 201
            approved = await socket.message(local_id="h1")
            assert approved["id"] == held.json()["id"]
        finally:
            await bot.close()
            await manager.close()


async def test_nul_characters_are_a_400_on_every_database(alice: Person) -> None:
    """PostgreSQL cannot store a NUL in text: refused up front, on both databases alike,
    over REST and over the socket (DRF's text)."""
    refused = await alice.post(type="T", text="a\x00b")
    assert refused.status_code == 400
    assert refused.json()["text"] == ["Null characters are not allowed."]
    named = await alice.create(nickname="bob", name="room\x00")
    assert named.status_code == 400
    assert named.json()["name"] == ["Null characters are not allowed."]
    socket = await alice.connect()
    await socket.say("a\x00b")
    error = await socket.error()
    assert error["code"] == "invalid"
    assert (await alice.post(type="T", text="after")).status_code == 201


async def test_names_with_control_characters_are_a_400(alice: Person) -> None:
    """A conversation's name or a nickname with a line break or a bidirectional override is
    refused with the field's error; a nickname of zero-width spaces counts as none (the
    session's own stays)."""
    named = await alice.create(nickname="bob", name="room\nTWO")
    assert named.status_code == 400
    assert named.json()["name"] == ["Control characters are not allowed."]
    spoofed = await alice.create(nickname="\u202eecila")
    assert spoofed.status_code == 400
    assert spoofed.json() == ["nickname must not contain control characters"]
    blank = await alice.create(nickname="\u200b\u200b")
    assert blank.status_code == 201
    assert [p["name"] for p in blank.json()["participants"]] == ["alice"]
