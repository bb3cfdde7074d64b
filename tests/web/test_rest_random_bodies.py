"""Seeded random bodies on every REST route that reads one: never a 5xx, always a JSON
answer, and an error says what was wrong (the definition of done: bad input gets a clear
4xx with a JSON body). The seed is fixed, so a failure reproduces with its request in the
assertion."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import httpx

from files import media_samples as samples
from support.junk import MESSAGE_FIELDS, SEED, json_value
from support.rest import PersonFactory
from support.server import LiveServer

REQUESTS = 240
KEYS = ("name", "nickname", "bots", *MESSAGE_FIELDS)
MEDIA_TYPES = ("application/json", "text/plain", "application/x-www-form-urlencoded", "")


def _json_answer(response: httpx.Response, described: object) -> Any:
    """The answer's JSON, after checking that it is no server error and is JSON."""
    assert response.status_code < 500, described
    assert response.headers["content-type"].startswith("application/json"), described
    return response.json()


def _body(rnd: random.Random) -> dict[str, Any]:
    """The request's body: mostly a JSON object of known keys and odd values."""
    if rnd.random() < 0.15:
        return {"content": rnd.choice(["{", "[]", "null", '"x"', "1", "", "\u0000", "{}{}"])}
    value = json_value(rnd, KEYS)
    if rnd.random() < 0.7:
        value = {key: json_value(rnd, KEYS) for key in rnd.sample(KEYS, rnd.randint(0, 4))}
        if rnd.random() < 0.3:
            value.update(type="T", text="hello")
    content = json.dumps(value)  # (json: integers beyond 64 bits too)
    media_type = "application/json" if rnd.random() < 0.8 else rnd.choice(MEDIA_TYPES)
    return {"content": content, "headers": {"content-type": media_type} if media_type else {}}


async def test_random_bodies_get_json_answers_and_never_a_server_error(
    server: LiveServer, people: PersonFactory
) -> None:
    alice = people(server)
    assert (await alice.create(nickname="alice", name="room", bots=["ECHO"])).status_code == 201
    conversation = f"/conversations/{alice.conversation_id}"
    routes = [
        ("POST", "/conversations/"),
        ("POST", f"{conversation}/join/"),
        ("PATCH", f"{conversation}/participants/{alice.participant_id}/"),
        ("POST", f"{conversation}/messages/"),
    ]
    rnd = random.Random(SEED)
    statuses: Counter[int] = Counter()
    for _ in range(REQUESTS):
        method, path = rnd.choice(routes)
        request: dict[str, Any] = _body(rnd)
        response: httpx.Response = await alice.http.request(method, path, **request)
        described = (method, path, request, response.status_code, response.text[:300])
        answer = _json_answer(response, described)
        if response.status_code >= 400:
            # DRF's shapes: {"detail"/fields..., "code"}, or one of BLAB's bare lists
            assert isinstance(answer, dict | list), described
            assert answer, described
            if isinstance(answer, dict):
                assert "code" in answer, described
        statuses[response.status_code] += 1
    # Both sides of the rules were reached (a run that only saw 400s proves less).
    assert {200, 201} <= set(statuses), statuses
    assert {400, 415} <= set(statuses), statuses


QUERY_VALUES = (
    "",
    "now",
    "last",
    "0",
    "1",
    "-1",
    "+5",
    "99999999999999999999999",
    "2026-12-02",
    "2026-12-02T10:00:00Z",
    "2026-12-02T10:00:00+25:00",
    "2026-13-45T99:99:99",
    "9999-12-31T23:00:00-14:00",
    "0001-01-01T00:00:00+14:00",
    "\u00e9\u0000",
)
FILE_NAMES = (
    "photo.png",
    "../../etc/passwd",
    "a\\b\\c.txt",
    "\u0000.png",
    "",
    " ",
    "é" * 300 + ".jpg",
    "x" * 300,
    ".hidden",
    "voice.ogg",
    "\u202ereversed.exe",
)


def _query_value(rnd: random.Random) -> str:
    # (a fresh random number among them, drawn first: the seeded sequence is as it was)
    fresh = str(rnd.random())
    return rnd.choice([*QUERY_VALUES, fresh, "x" * 300])


async def test_random_history_queries_never_get_a_server_error(
    server: LiveServer, people: PersonFactory
) -> None:
    """``until``, ``since``, ``limit`` and ``page`` of any value: a page or a 4xx in JSON."""
    alice = people(server)
    assert (await alice.create(nickname="alice", name="room", bots=["ECHO"])).status_code == 201
    for text in ("one", "two", "three"):
        assert (await alice.post(type="T", text=text)).status_code == 201
    paths = (f"/conversations/{alice.conversation_id}/messages/", "/conversations/")
    rnd = random.Random(SEED)
    statuses: Counter[int] = Counter()
    for _ in range(REQUESTS):
        path = rnd.choice(paths)
        names = rnd.sample(("until", "since", "limit", "page"), rnd.randint(1, 4))
        params = {name: _query_value(rnd) for name in names}
        response = await alice.http.get(path, params=params)
        _json_answer(response, (path, params, response.status_code, response.text[:300]))
        statuses[response.status_code] += 1
    assert {200, 400} <= set(statuses), statuses


async def test_random_uploads_never_get_a_server_error(
    server: LiveServer, people: PersonFactory
) -> None:
    """Multipart messages with any fields, file names, media types and contents: a stored
    message or a 4xx in JSON."""
    alice = people(server)
    assert (await alice.create(nickname="alice", name="room", bots=[])).status_code == 201
    path = f"/conversations/{alice.conversation_id}/messages/"
    rnd = random.Random(SEED)
    statuses: Counter[int] = Counter()
    for _ in range(REQUESTS // 2):
        fields = {
            key: str(json_value(rnd, KEYS))
            for key in rnd.sample(("text", "local_id", "quoted_message_id", "options"), 2)
        }
        if rnd.random() < 0.4:  # a caption as a person would write it
            fields = {"text": "look"}
        fields["type"] = rnd.choice(["T", "V", "a", "v", "i", "i", "A", "S", "", "TT"])
        content = rnd.choice([b"", samples.png(), samples.png()[:40], b"text", bytes(3000)])
        media_type = rnd.choice(
            ["image/png", "audio/ogg", "text/plain", "", "x/\u00e9", "video/mp4"]
        )
        files = (
            {"file": (rnd.choice(FILE_NAMES), content, media_type)} if rnd.random() < 0.8 else None
        )
        response = await alice.http.post(path, data=fields, files=files)
        _json_answer(
            response, (fields, files and files["file"][0], media_type, response.text[:300])
        )
        statuses[response.status_code] += 1
    assert {201, 400} <= set(statuses), statuses
