"""Serving uploaded files at their ``file_url`` (PROTOCOL 3.11, 9 #38, #46): participants
only, ranges for seeking, and active content never rendered on the API's origin."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx

from files import media_samples as samples
from support.blab import Person
from support.server import LiveServer

# the conftest's fixture types (not imported: ``conftest`` is ambiguous across dirs)
PersonFactory = Callable[[LiveServer], Person]


async def send_file(person: Person, kind: str, name: str, data: bytes) -> dict[str, object]:
    response = await person.http.post(
        f"/conversations/{person.conversation_id}/messages/",
        data={"type": kind, "text": ""},
        files={"file": (name, data, "application/octet-stream")},
    )
    assert response.status_code == 201, response.text
    message: dict[str, object] = response.json()
    return message


async def test_only_participants_may_fetch_a_file(
    server: LiveServer, alice: Person, people: PersonFactory
) -> None:
    """A participant gets 200 (and HEAD works); another session, or none, gets 403; once
    that session joins the conversation it may fetch the file; unknown names are 404."""
    image = samples.png()
    url = server.base_url + str((await send_file(alice, "i", "pic.png", image))["file_url"])

    assert (await alice.http.get(url)).content == image
    head = await alice.http.head(url)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(image))
    assert head.content == b""

    bob = people(server)
    assert (await bob.create(nickname="bob")).status_code == 201
    assert (await bob.http.get(url)).status_code == 403
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(url)).status_code == 403

    assert alice.conversation_id is not None
    assert (await bob.join(alice.conversation_id, nickname="bob")).status_code == 200
    assert (await bob.http.get(url)).content == image

    hex_id = uuid.UUID(alice.conversation_id).hex
    unknown = f"/media/chat/chat_{hex_id}/msg_{'0' * 32}_{'1' * 32}"
    assert (await alice.http.get(server.base_url + unknown)).status_code == 404
    for bad in ("/media/chat/../../etc/passwd", f"/media/chat/chat_{hex_id}/x", "/media/tmp/a"):
        assert (await alice.http.get(server.base_url + bad)).status_code == 404


async def test_range_request_into_a_video_returns_206(server: LiveServer, alice: Person) -> None:
    """A ``Range`` request gets 206 with exactly those bytes, so players can seek."""
    video = samples.mp4(payload=4000)
    message = await send_file(alice, "v", "clip.mp4", video)
    url = server.base_url + str(message["file_url"])
    response = await alice.http.get(url, headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.content == video[100:200]
    assert response.headers["content-range"] == f"bytes 100-199/{len(video)}"
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"


async def test_active_content_is_downloaded_not_rendered(server: LiveServer, alice: Person) -> None:
    """HTML and SVG attachments are served as octet-stream downloads with nosniff and a
    sandboxing CSP, under their original names."""
    for name, data in (("page.html", samples.html()), ("logo.svg", samples.svg())):
        message = await send_file(alice, "A", name, data)
        response = await alice.http.get(server.base_url + str(message["file_url"]))
        assert response.status_code == 200
        assert response.content == data
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"] == f'attachment; filename="{name}"'
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in response.headers["content-security-policy"]
