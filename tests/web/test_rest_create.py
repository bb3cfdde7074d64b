"""``POST conversations/``: the response, the cookie, names, nicknames and bots (PROTOCOL 3.6).

Conformance cases A.1 3-6.
"""

from __future__ import annotations

import asyncio
import re
import socket
import uuid

from support.blab import Person
from support.bots import watch_logs
from support.rest import PersonFactory, SettingsFactory, call, set_cookie
from support.server import LiveServer, live_server

TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z$")


def canonical(value: str) -> bool:
    return str(uuid.UUID(value)) == value


def names(response_body: dict) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(p["name"], p["type"]) for p in response_body["participants"]]


async def test_create_answers_201_with_participants_and_cookie(server: LiveServer) -> None:
    """Case 3: a first create gets 201, [alice H, ECHO B], alice's id and a new session cookie."""
    response = await call(
        server,
        "POST",
        "/api/chat/conversations/",
        json={"nickname": "alice", "name": "room", "bots": ["ECHO"]},
    )
    assert response.status_code == 201
    assert "location" not in response.headers
    body = response.json()
    assert list(body) == ["id", "name", "created_at", "participants", "my_participant_id"]
    assert body["name"] == "room"
    assert TIME.match(body["created_at"])
    assert names(body) == [("alice", "H"), ("ECHO", "B")]
    assert all(list(p) == ["id", "name", "type"] for p in body["participants"])
    assert all(canonical(i) for i in [body["id"], *(p["id"] for p in body["participants"])])
    assert body["my_participant_id"] == body["participants"][0]["id"]

    cookie = set_cookie(response)
    assert cookie is not None
    key = cookie.split(";")[0].split("=", 1)[1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22,64}", key)
    attributes = {a.strip().split("=")[0].lower(): a.strip() for a in cookie.split(";")[1:]}
    assert "httponly" in attributes
    assert attributes["path"] == "Path=/"
    assert attributes["samesite"] == "SameSite=Lax"
    assert attributes["max-age"] == "Max-Age=1209600"
    assert "expires" in attributes
    assert "secure" not in attributes
    assert "domain" not in attributes


async def test_cookie_attributes_follow_the_settings(make_settings: SettingsFactory) -> None:
    """``session_cookie_secure`` / ``_samesite`` / ``session_max_age`` shape the cookie."""
    settings = make_settings(
        session_cookie_secure=True, session_cookie_samesite="strict", session_max_age=3600
    )
    async with live_server(settings) as server:
        response = await call(server, "POST", "/api/chat/conversations/", json={})
    cookie = set_cookie(response)
    assert cookie is not None
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite=strict", "max-age=3600", "path=/"} <= attributes


async def test_create_with_empty_body_gets_anonymous_name(server: LiveServer) -> None:
    """Case 4: ``{}`` with no session gives ``name: null`` and ``ANON_<participant id>``."""
    response = await call(server, "POST", "/api/chat/conversations/", json={})
    assert response.status_code == 201
    body = response.json()
    assert body["name"] is None
    me = body["participants"][0]
    assert me == {"id": body["my_participant_id"], "name": f"ANON_{me['id']}", "type": "H"}
    assert body["participants"] == [me]
    assert set_cookie(response) is not None


async def test_create_history_starts_with_created_and_bots_joined(alice: Person) -> None:
    """Creation stores *conversation-created*, then *participant-joined* for each bot only."""
    conversation = (await alice.http.get(f"/conversations/{alice.conversation_id}/")).json()
    echo = conversation["participants"][1]["id"]
    messages = (await alice.history()).json()["results"]
    assert [(m["event"], m["additional_metadata"]) for m in messages] == [
        ("conversation-created", {}),
        ("participant-joined", {"participant_id": echo}),
    ]
    assert all(m["type"] == "S" and m["sent_by_human"] is False for m in messages)


async def test_create_validation_errors(server: LiveServer) -> None:
    """Case 5: bad names, bots, nicknames and bodies are refused with 400 in DRF shapes."""
    cases: list[tuple[object, object]] = [
        (
            {"name": "x" * 51},
            {"name": ["Ensure this field has no more than 50 characters."], "code": "invalid"},
        ),
        ({"bots": "ECHO"}, ["Invalid bot array:'ECHO'"]),
        ({"bots": ["Nope"]}, ["Bot(s) not found: ['Nope']"]),
        ({"bots": ["ECHO", "Nope", "Other"]}, ["Bot(s) not found: ['Nope', 'Other']"]),
        ({"bots": [1]}, None),
        ({"bots": {"ECHO": True}}, None),
        ({"nickname": 5}, ["nickname must be a string"]),
        ({"nickname": ["alice"]}, ["nickname must be a string"]),
        ({"name": 5}, None),
    ]
    for body, expected in cases:
        response = await call(server, "POST", "/api/chat/conversations/", json=body)
        assert response.status_code == 400, body
        if expected is not None:
            assert response.json() == expected, body
        assert set_cookie(response) is None, body
    for raw in (b"[1, 2]", b'{"name": '):
        response = await call(
            server,
            "POST",
            "/api/chat/conversations/",
            content=raw,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400, raw
    listed = await call(server, "GET", "/api/chat/conversations/")
    assert listed.json()["count"] == 0


async def test_create_trims_the_name_and_allows_fifty(server: LiveServer) -> None:
    """The name is trimmed before its 50-character check; blank becomes ``""``."""
    for sent, kept in [
        ("  room  ", "room"),
        (" ", ""),
        ("", ""),
        ("  " + "n" * 50 + "  ", "n" * 50),
        (None, None),
    ]:
        response = await call(server, "POST", "/api/chat/conversations/", json={"name": sent})
        assert response.status_code == 201, sent
        assert response.json()["name"] == kept, sent


async def test_create_ignores_unknown_fields(server: LiveServer) -> None:
    """Unknown fields (the Java client's ``conversation_name``) are ignored."""
    response = await call(
        server,
        "POST",
        "/api/chat/conversations/",
        json={"conversation_name": "x", "nickname": "java", "id": "nope", "participants": []},
    )
    assert response.status_code == 201
    assert response.json()["name"] is None
    assert names(response.json()) == [("java", "H")]


async def test_create_with_unreachable_external_bot(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """Case 6: an external bot that cannot be reached does not fail the create (201, cookie
    set); its trigger failure is logged, and the conversation works over REST and socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    external = {
        "module": "tertulia.bots.external",
        "class": "WebSocketExternalBot",
        "args": [f"http://127.0.0.1:{closed_port}/"],
        "required": True,
        "retries": 0,
    }
    settings = make_settings(
        bots={
            "ECHO": {"module": "tertulia.bots.builtin", "class": "UpperCaseEchoBot"},
            "Ext": external,
        }
    )
    with watch_logs() as logs:
        async with live_server(settings) as server:
            alice = people(server)
            response = await alice.create(nickname="alice", bots=["Ext", "ECHO"])
            assert response.status_code == 201
            assert set_cookie(response) is not None
            body = response.json()
            assert names(body) == [("alice", "H"), ("Ext", "B"), ("ECHO", "B")]
            ext = body["participants"][1]["id"]
            await logs.wait_for(
                lambda e: (
                    e.get("event") == "bot delivery failed for good"
                    and e.get("participant_id") == ext
                )
            )

            again = await alice.http.get(f"/conversations/{alice.conversation_id}/")
            assert again.json() == body
            chat = await alice.connect()
            sent = await alice.post(type="T", text="still here", local_id="r1")
            assert sent.status_code == 201
            await chat.message(quoted_message_id=sent.json()["id"], text="STILL HERE")
            history = (await alice.history()).json()["results"]
            assert sent.json()["id"] in [m["id"] for m in history]


async def test_nickname_falls_back_to_the_session(
    server: LiveServer, people: PersonFactory
) -> None:
    """Absent, null or blank nicknames use the session's last create nickname."""
    alice = people(server)
    assert (await alice.create(nickname="alice")).status_code == 201
    for body in ({}, {"nickname": None}, {"nickname": ""}, {"nickname": "   "}):
        response = await alice.create(**body)
        assert response.status_code == 201, body
        assert names(response.json()) == [("alice", "H")], body


async def test_create_remembers_the_latest_nickname(
    server: LiveServer, people: PersonFactory
) -> None:
    """A later create's nickname replaces the session's; join does not write it."""
    bob = people(server)
    await bob.create(nickname="bob")
    await bob.create(nickname="robert")
    room = people(server)
    await room.create(nickname="host")
    joined = await bob.join(room.conversation_id, nickname="bobby")
    assert joined.json()["participants"][-1]["name"] == "bobby"
    again = await bob.create()
    assert names(again.json()) == [("robert", "H")]


async def test_anonymous_name_is_not_remembered(server: LiveServer, people: PersonFactory) -> None:
    """A session that never gave a nickname stays anonymous: a fresh ANON_ name each time."""
    anon = people(server)
    first = (await anon.create()).json()
    second = (await anon.create()).json()
    for body in (first, second):
        me = body["participants"][0]
        assert me["name"] == f"ANON_{me['id']}"
    assert first["my_participant_id"] != second["my_participant_id"]


async def test_nickname_is_trimmed_and_limited(server: LiveServer, people: PersonFactory) -> None:
    """Nicknames are trimmed and kept up to 50 characters; 51 gets 400 (PROTOCOL 9 #25)."""
    person = people(server)
    trimmed = await person.create(nickname="  ana  ")
    assert names(trimmed.json()) == [("ana", "H")]
    longest = await person.create(nickname="n" * 50)
    assert names(longest.json()) == [("n" * 50, "H")]
    too_long = await person.create(nickname="n" * 51)
    assert too_long.status_code == 400
    assert isinstance(too_long.json(), list)
    assert (await person.create(nickname="  " + "n" * 50 + "  ")).status_code == 201


async def test_create_keeps_the_session_it_was_given(
    server: LiveServer, people: PersonFactory
) -> None:
    """With a valid cookie the same session is reused (and the cookie re-sent); both
    conversations then belong to it."""
    alice = people(server)
    first = await alice.create(nickname="alice")
    key = alice.session
    second = await alice.create(nickname="alice")
    assert set_cookie(second) is not None
    assert alice.session == key
    for body in (first.json(), second.json()):
        again = await alice.http.get(f"/conversations/{body['id']}/")
        assert again.json()["my_participant_id"] == body["my_participant_id"]


async def test_create_with_an_unknown_cookie_starts_a_new_session(server: LiveServer) -> None:
    """A cookie naming no session is replaced by a fresh one."""
    stale = "x" * 32
    response = await call(
        server,
        "POST",
        "/api/chat/conversations/",
        json={},
        headers={"Cookie": f"sessionid={stale}"},
    )
    assert response.status_code == 201
    cookie = set_cookie(response)
    assert cookie is not None
    assert not cookie.startswith(f"sessionid={stale};")


async def test_bots_keep_the_requested_order_then_the_manager(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """Participants: the human, the bots in request order, then the manager."""
    settings = make_settings(
        bots={
            "ECHO": {"module": "tertulia.bots.builtin", "class": "UpperCaseEchoBot"},
            "Calculator": {"module": "tertulia.bots.builtin", "class": "CalculatorBot"},
            "Manager": {"module": "tertulia.bots.builtin", "class": "TransparentManagerBot"},
        },
        manager="Manager",
    )
    async with live_server(settings) as server:
        alice = people(server)
        response = await alice.create(nickname="alice", bots=["Calculator", "ECHO"])
        assert response.status_code == 201
        assert names(response.json()) == [
            ("alice", "H"),
            ("Calculator", "B"),
            ("ECHO", "B"),
            ("Manager", "B"),
        ]
        refused = await alice.create(bots=["Manager"])
        assert refused.status_code == 400
        assert refused.json() == ["Bot(s) not found: ['Manager']"]


async def test_duplicate_bots_are_refused(server: LiveServer, people: PersonFactory) -> None:
    """Asking for the same bot twice is a 400 and creates nothing (PROTOCOL 9 #24)."""
    alice = people(server)
    response = await alice.create(bots=["ECHO", "Calculator", "ECHO"])
    assert response.status_code == 400
    assert isinstance(response.json(), list)
    assert "ECHO" in response.json()[0]
    assert alice.session is None


async def test_concurrent_creates_get_distinct_sessions(server: LiveServer) -> None:
    """Creates without cookies, at the same time, each get their own session and participant."""
    responses = await asyncio.gather(
        *(
            call(server, "POST", "/api/chat/conversations/", json={"nickname": f"p{i}"})
            for i in range(5)
        )
    )
    assert all(r.status_code == 201 for r in responses)
    cookies = {set_cookie(r) for r in responses}
    assert len(cookies) == 5
