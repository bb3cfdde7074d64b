"""External files (PROTOCOL 5.3, 9 #44; A.2 case 20): a URL instead of an upload, shown
as BLAB shows it, http(s) only, and optionally only from bots."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from support.blab import Person
from support.server import LiveServer, live_server
from tertulia.domain.times import utcnow
from tertulia.settings import Settings
from tertulia.storage import sessions as session_repo

URL = "https://example.com/a/pic.png?x=1"

# the conftest's fixture types (not imported: ``conftest`` is ambiguous across dirs)
PersonFactory = Callable[[LiveServer], Person]
SettingsFactory = Callable[..., Settings]


async def bot_person(server: LiveServer, people: PersonFactory, human: Person) -> Person:
    """A client holding a session for the conversation's ECHO bot, as an external bot gets
    one from the trigger."""
    assert human.conversation_id is not None
    conversation = (await human.http.get(f"/conversations/{human.conversation_id}/")).json()
    echo = next(p for p in conversation["participants"] if p["name"] == "ECHO")
    key = uuid.uuid4().hex
    async with server.registry.db.write() as conn:
        await session_repo.create_session(
            conn,
            key,
            now=utcnow(),
            expires_at=utcnow() + timedelta(hours=1),
            bot_conversation_id=human.conversation_id,
        )
        await session_repo.add_participation(conn, key, human.conversation_id, echo["id"])
    bot = people(server)
    bot.http.cookies.set("sessionid", key)
    bot.conversation_id = human.conversation_id
    bot.participant_id = echo["id"]
    return bot


@pytest.fixture
async def bots_only(make_settings: SettingsFactory) -> AsyncIterator[LiveServer]:
    """A server where only bots may send external files."""
    async with live_server(make_settings(external_files="bots")) as running:
        yield running


async def test_bot_library_image_url_over_the_socket(
    bots_only: LiveServer, people: PersonFactory
) -> None:
    """A.2 case 20: the bot library's frame (``text: null``, ``external_file_url``, type
    ``i``) is stored and shown with file_url = the URL, file_name = its last path segment,
    file_size null; with ``external_files = "bots"`` a human's URL is refused."""
    human = people(bots_only)
    assert (await human.create(nickname="ann", bots=["ECHO"])).status_code == 201
    human_socket = await human.connect()
    bot = await bot_person(bots_only, people, human)
    bot_socket = await bot.connect()
    local_id = uuid.uuid4().hex
    await bot_socket.send(
        {"type": "i", "text": None, "external_file_url": URL, "local_id": local_id}
    )
    own = await bot_socket.message(local_id=local_id)
    seen = await human_socket.message(local_id=local_id)
    for message in (own, seen):
        assert (message["file_url"], message["file_name"]) == (URL, "pic.png")
        assert (message["file_size"], message["text"]) == (None, "")
        assert message["sender_id"] == bot.participant_id
        assert message["sent_by_human"] is False
    history = (await human.history()).json()["results"]
    assert [m["file_url"] for m in history if m.get("local_id") == local_id] == [URL]

    refused = await human.post(type="i", text="", external_file_url=URL)
    assert refused.status_code == 400
    assert "external_file_url" in refused.json()


async def test_external_urls_must_be_http_or_https(alice: Person) -> None:
    """By default anyone may send an http(s) URL; other schemes are refused with 400."""
    response = await alice.post(type="A", text="doc", external_file_url="http://x.org/f.pdf")
    assert response.status_code == 201
    assert (response.json()["file_url"], response.json()["file_name"]) == (
        "http://x.org/f.pdf",
        "f.pdf",
    )
    for bad in ("javascript:alert(1)", "file:///etc/passwd", "ftp://x.org/f.pdf"):
        response = await alice.post(type="A", text="", external_file_url=bad)
        assert response.status_code == 400, bad
