"""``GET conversations/<id>/messages/``: rights, filters, limit, order, pages (PROTOCOL 3.9).

Conformance case A.1 9. Messages with chosen times are written straight to the store, in
2099 so that they are the newest (the conversation's own *conversation-created* is now).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from support.blab import Person
from support.rest import NOWHERE, PersonFactory, SettingsFactory, get
from support.server import LiveServer, live_server
from tertulia.domain.ids import new_id
from tertulia.domain.model import Approval, Message, MessageType
from tertulia.domain.times import format_time, utcnow
from tertulia.storage import messages as msg_repo

BASE = datetime(2099, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z$")


async def insert(
    server: LiveServer,
    person: Person,
    times: list[datetime],
    *,
    approval: Approval = Approval.AUTOMATIC,
) -> list[str]:
    """Store text messages from ``person`` at ``times``, one insert each (in that order);
    visible ones are numbered as the server numbers them."""
    assert person.conversation_id
    assert person.participant_id
    ids = []
    async with server.registry.db.write() as conn:
        for i, moment in enumerate(times):
            message = Message(
                id=new_id(),
                conversation_id=person.conversation_id,
                type=MessageType.TEXT,
                time=moment,
                approval=approval,
                sender_id=person.participant_id,
                sent_by_human=True,
                text=f"m{i}",
            )
            await msg_repo.insert_message(conn, message)
            ids.append(message.id)
    return ids


@pytest.fixture
async def lone(server: LiveServer, people: PersonFactory) -> Person:
    """A person alone in a conversation without bots (its history: conversation-created)."""
    person = people(server)
    assert (await person.create(nickname="lone")).status_code == 201
    return person


def texts(response_body: dict) -> list[str]:  # type: ignore[type-arg]
    return [m.get("text", m.get("event")) for m in response_body["results"]]


async def test_history_needs_participation(
    alice: Person, server: LiveServer, people: PersonFactory
) -> None:
    """Case 9: 403 without a session, for another session, and for unknown conversations."""
    forbidden = {
        "detail": "You do not have permission to perform this action.",
        "code": "not_participant",
    }
    other = people(server)
    await other.create(nickname="other")
    path = f"/conversations/{alice.conversation_id}/messages/"
    for response in (
        await get(server, f"/api/chat{path}"),
        await other.http.get(path),
        await alice.http.get(f"/conversations/{NOWHERE}/messages/"),
        await alice.http.get("/conversations/not-a-uuid/messages/"),
    ):
        assert response.status_code == 403
        assert response.json() == forbidden
    assert (await alice.http.get(path)).status_code == 200


async def test_history_refuses_bad_limits(lone: Person) -> None:
    """Case 9: a limit that is not decimal digits is 400 ``Invalid limit: <value>``."""
    for raw in ("abc", "-1", "+5", "1.5", "", " 3", "²", "0x10"):
        response = await lone.history(limit=raw)
        assert response.status_code == 400, raw
        assert response.json()["detail"] == f"Invalid limit: {raw}", raw


async def test_history_refuses_numbers_too_long_to_convert(lone: Person) -> None:
    """A limit or a page of thousands of digits (Python refuses to convert over 4,300) is
    the usual 400 / 404, not a server error."""
    huge = "9" * 5000
    response = await lone.history(limit=huge)
    assert response.status_code == 400
    assert response.json()["detail"] == f"Invalid limit: {huge}"
    response = await lone.history(page=huge)
    assert response.status_code == 404
    assert response.json()["detail"] == "Invalid page."


async def test_history_refuses_bad_times(lone: Person) -> None:
    """Case 9: ``until`` / ``since`` that are not date-times (or impossible ones) are 400."""
    for raw in (
        "yesterday",
        "2030-02-30T00:00:00Z",
        "2030-01-01T00:00:00 00:00",  # an unencoded "+" arrives as a space
        "",
        "NOW",
    ):
        for name in ("until", "since"):
            response = await lone.history(**{name: raw})
            assert response.status_code == 400, (name, raw)
            assert response.json()["detail"] == f"Invalid date-time string: {raw}", (name, raw)


async def test_history_refuses_pages_past_the_end(lone: Person) -> None:
    """Case 9: ``page=2`` past the end, 0, or not a number is 404 ``Invalid page.``."""
    for raw in ("2", "0", "-1", "x", "²", "٣", "99999999999999999999999"):
        response = await lone.history(page=raw)
        assert response.status_code == 404, raw
        assert response.json()["detail"] == "Invalid page.", raw
    assert (await lone.history(page="1")).status_code == 200
    assert (await lone.history(page="last")).status_code == 200


async def test_limit_keeps_the_newest_oldest_first(lone: Person, server: LiveServer) -> None:
    """Case 9: ``limit=3`` gives the 3 newest messages in ascending time, ``count: 3``."""
    times = [BASE + timedelta(seconds=s) for s in (4, 1, 3, 0, 2)]
    await insert(server, lone, times)
    body = (await lone.history(limit="3")).json()
    assert body["count"] == 3
    assert body["next"] is None
    assert body["previous"] is None
    assert texts(body) == ["m4", "m2", "m0"]
    assert [m["time"] for m in body["results"]] == sorted(m["time"] for m in body["results"])

    everything = (await lone.history()).json()
    assert everything["count"] == 6
    assert texts(everything) == ["conversation-created", "m3", "m1", "m4", "m2", "m0"]
    assert (await lone.history(limit="0")).json() == {
        "count": 0,
        "next": None,
        "previous": None,
        "results": [],
    }
    assert (await lone.history(limit="100")).json()["count"] == 6


async def test_until_and_since_are_inclusive(lone: Person, server: LiveServer) -> None:
    """Case 9: a message at exactly ``until`` or ``since`` is included, in any spelling."""
    times = [BASE + timedelta(seconds=s) for s in range(5)]
    await insert(server, lone, times)
    exact = format_time(times[2])
    assert texts((await lone.history(until=exact, since=exact)).json()) == ["m2"]
    assert texts((await lone.history(since=exact)).json()) == ["m2", "m3", "m4"]
    until = (await lone.history(until=exact)).json()
    assert texts(until)[1:] == ["m0", "m1", "m2"]

    moment = times[2]
    spellings = [
        moment.isoformat(),  # +00:00, sent encoded as %2B by httpx
        moment.astimezone(timezone_minus_3()).isoformat(),
        moment.replace(tzinfo=None).isoformat(),  # naive: UTC
        exact.replace("Z", "z"),
    ]
    for spelling in spellings:
        body = (await lone.history(until=spelling, since=spelling)).json()
        assert texts(body) == ["m2"], spelling
    just_before = format_time(moment - timedelta(microseconds=1))
    assert texts((await lone.history(until=just_before, since=format_time(times[0]))).json()) == [
        "m0",
        "m1",
    ]


def timezone_minus_3():  # type: ignore[no-untyped-def]
    from datetime import timezone

    return timezone(timedelta(hours=-3))


async def test_bare_dates_and_now(lone: Person, server: LiveServer) -> None:
    """A bare date is midnight UTC; ``until=now`` leaves out what is later than now."""
    await insert(server, lone, [datetime(2099, 1, 1, tzinfo=UTC), datetime(2099, 1, 2, tzinfo=UTC)])
    assert texts((await lone.history(since="2099-01-02")).json()) == ["m1"]
    assert texts((await lone.history(until="2099-01-01", since="2099-01-01")).json()) == ["m0"]
    now = (await lone.history(until="now")).json()
    assert texts(now) == ["conversation-created"]
    assert (await lone.history(since="now")).json()["count"] == 2


async def test_equal_times_keep_insertion_order(lone: Person, server: LiveServer) -> None:
    """Messages with the same time come in the order they were stored, with or without limit."""
    await insert(server, lone, [BASE] * 4)
    since = format_time(BASE)
    assert texts((await lone.history(since=since)).json()) == ["m0", "m1", "m2", "m3"]
    assert texts((await lone.history(since=since, limit="2")).json()) == ["m2", "m3"]
    assert texts((await lone.history(until=since, limit="3")).json()) == ["m1", "m2", "m3"]


async def test_history_shows_only_approved_messages(lone: Person, server: LiveServer) -> None:
    """Messages waiting for the manager's approval are neither listed nor counted."""
    await insert(server, lone, [BASE], approval=Approval.NOT_APPROVED)
    await insert(server, lone, [BASE + timedelta(seconds=1)], approval=Approval.BY_MANAGER)
    body = (await lone.history(since=format_time(BASE))).json()
    assert body["count"] == 1
    assert texts(body) == ["m0"]
    assert body["results"][0]["time"] == format_time(BASE + timedelta(seconds=1))


async def test_history_pages(lone: Person, server: LiveServer) -> None:
    """More than 100: pages of 100 with absolute next/previous keeping the other parameters."""
    await insert(server, lone, [BASE + timedelta(seconds=s) for s in range(250)])
    since = format_time(BASE)
    first = await lone.history(since=since, limit="240")
    body = first.json()
    assert body["count"] == 240
    assert texts(body)[0] == "m10"
    assert len(body["results"]) == 100
    assert body["previous"] is None
    next_url = urlsplit(body["next"])
    assert f"{next_url.scheme}://{next_url.netloc}" == lone.http.base_url.copy_with(
        path="", raw_path=b"/"
    ).__str__().rstrip("/")
    assert next_url.path == f"/api/chat/conversations/{lone.conversation_id}/messages/"
    assert parse_qs(next_url.query) == {"since": [since], "limit": ["240"], "page": ["2"]}

    second = (await lone.http.get(body["next"])).json()
    assert texts(second)[0] == "m110"
    assert parse_qs(urlsplit(second["previous"]).query) == {"since": [since], "limit": ["240"]}
    third = (await lone.http.get(second["next"])).json()
    assert len(third["results"]) == 40
    assert texts(third)[-1] == "m249"
    assert third["next"] is None
    assert parse_qs(urlsplit(third["previous"]).query)["page"] == ["2"]

    last = (await lone.history(since=since, limit="240", page="last")).json()
    assert last["results"] == third["results"]
    assert last["previous"] == third["previous"]
    assert (await lone.history(since=since, limit="240", page="4")).status_code == 404


async def test_history_pages_the_way_the_front_end_reads_them(
    lone: Person, server: LiveServer
) -> None:
    """The web client's ``until=<ms time>&limit=200&page=n`` while ``next``: 200 newest, once."""
    await insert(server, lone, [BASE + timedelta(milliseconds=s) for s in range(300)])
    until = (BASE + timedelta(milliseconds=299)).isoformat(timespec="milliseconds")
    until = until.replace("+00:00", "Z")
    seen: list[str] = []
    page = 1
    while True:
        body = (await lone.history(until=until, limit="200", page=str(page))).json()
        seen += [m["id"] for m in body["results"]]
        if not body["next"]:
            break
        page += 1
    assert page == 2
    assert len(seen) == len(set(seen)) == 200


async def test_page_size_is_ignored(lone: Person, server: LiveServer) -> None:
    """There is no page-size parameter: ``page_size`` changes nothing."""
    await insert(server, lone, [BASE + timedelta(seconds=s) for s in range(120)])
    body = (await lone.history(page_size="10")).json()
    assert len(body["results"]) == 100
    assert body["count"] == 121


async def test_page_links_use_the_request_host(lone: Person, server: LiveServer) -> None:
    """``next`` / ``previous`` are absolute URLs built from the request's ``Host`` (one a
    server on 127.0.0.1 answers by default: web/hosts.py)."""
    await insert(server, lone, [BASE + timedelta(seconds=s) for s in range(120)])
    path = f"/conversations/{lone.conversation_id}/messages/"
    body = (await lone.http.get(path, headers={"Host": "localhost:8443"})).json()
    assert body["next"] == f"http://localhost:8443/api/chat{path}?page=2"


async def test_limit_is_capped_by_the_setting(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """``history_max_limit`` caps ``limit``: the newest that many, oldest first."""
    async with live_server(make_settings(history_max_limit=5)) as server:
        person = people(server)
        await person.create(nickname="capped")
        await insert(server, person, [BASE + timedelta(seconds=s) for s in range(8)])
        body = (await person.history(limit="100")).json()
        assert body["count"] == 5
        assert texts(body) == ["m3", "m4", "m5", "m6", "m7"]
        assert texts((await person.history(limit="2")).json()) == ["m6", "m7"]


async def test_history_carries_the_message_representation(alice: Person) -> None:
    """History items are the same objects the POST answered, keys as in PROTOCOL 5.1."""
    socket = await alice.connect()
    sent = (await alice.post(type="T", text="hello", local_id="h1", options=["a", "b"])).json()
    await socket.message(quoted_message_id=sent["id"])
    body = (await alice.history()).json()
    stored = next(m for m in body["results"] if m["id"] == sent["id"])
    assert stored == sent
    assert list(stored)[:9] == [
        "type",
        "time",
        "id",
        "sent_by_human",
        "quoted_message_id",
        "sender_id",
        "local_id",
        "text",
        "options",
    ]
    for message in body["results"]:
        assert TIME.match(message["time"])
        assert message["type"] in "STVavi A"
        if message["type"] == "S":
            assert isinstance(message["additional_metadata"], dict)
    assert [m["time"] for m in body["results"]] == sorted(m["time"] for m in body["results"])


async def test_unfiltered_pages_count_and_order(lone: Person, server: LiveServer) -> None:
    """Without time filters: count, the newest ``limit`` oldest first, pages and ``last``."""
    await insert(server, lone, [BASE + timedelta(seconds=s) for s in range(250)])
    everything = (await lone.history()).json()
    assert everything["count"] == 251  # with conversation-created
    assert texts(everything)[:2] == ["conversation-created", "m0"]
    newest = (await lone.history(limit="240")).json()
    assert newest["count"] == 240
    assert texts(newest)[0] == "m10"
    second = (await lone.history(limit="240", page="2")).json()
    assert texts(second)[0] == "m110"
    last = (await lone.history(limit="240", page="last")).json()
    assert texts(last)[0] == "m210"
    assert texts(last)[-1] == "m249"
    assert len(last["results"]) == 40
    assert texts((await lone.history(limit="3")).json()) == ["m247", "m248", "m249"]


async def test_a_repeated_page_is_never_stale(lone: Person, server: LiveServer) -> None:
    """The same request after a new message, an approval, or another process's write shows
    the change (cached pages are checked against the database each time)."""
    assert texts((await lone.history(limit="5")).json()) == ["conversation-created"]
    assert (await lone.post(type="T", text="one", local_id="l1")).status_code == 201
    assert texts((await lone.history(limit="5")).json()) == ["conversation-created", "one"]

    # Stored by "another process": straight into the database, as a second server would.
    await insert(server, lone, [utcnow()])
    body = (await lone.history(limit="5")).json()
    assert texts(body) == ["conversation-created", "one", "m0"]
    assert body["count"] == 3

    # A message waiting for approval, then approved: it appears, at its own time.
    hidden = await insert(server, lone, [utcnow()], approval=Approval.NOT_APPROVED)
    assert (await lone.history(limit="5")).json()["count"] == 3
    async with server.registry.db.write() as conn:
        held = await msg_repo.get_message(conn, lone.conversation_id or "", hidden[0])
        assert held is not None
        await msg_repo.approve_message(conn, held, approval=Approval.BY_MANAGER, at=utcnow())
    body = (await lone.history(limit="5")).json()
    assert body["count"] == 4
    assert [m["id"] for m in body["results"]][-1] == hidden[0]
