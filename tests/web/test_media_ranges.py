"""Serving uploaded files: ``Range`` headers a player or download manager may send
that the server cannot use get a usable answer, never a bare text error."""

from __future__ import annotations

from files import media_samples as samples
from support.blab import Person
from support.server import LiveServer


async def _video_url(server: LiveServer, person: Person) -> tuple[str, bytes]:
    video = samples.mp4(payload=4000)
    response = await person.http.post(
        f"/conversations/{person.conversation_id}/messages/",
        data={"type": "v", "text": ""},
        files={"file": ("clip.mp4", video, "video/mp4")},
    )
    assert response.status_code == 201, response.text
    return server.base_url + response.json()["file_url"], video


async def test_unusable_ranges_are_ignored(server: LiveServer, alice: Person) -> None:
    """A ``Range`` in another unit, malformed, or reversed is ignored (RFC 9110 14.2: an
    unknown unit MUST be): 200 with the whole file and the usual safety headers. (Before:
    400 with a ``text/plain`` body and no ``nosniff``, so the file could not be had.)"""
    url, video = await _video_url(server, alice)
    for value in ("items=0-1", "bytes=abc", "bytes=9-2", "bytes", "bytes=-"):
        response = await alice.http.get(url, headers={"Range": value})
        assert response.status_code == 200, (value, response.text)
        assert response.content == video, value
        assert response.headers["content-type"] == "video/mp4", value
        assert response.headers["x-content-type-options"] == "nosniff", value
    head = await alice.http.head(url, headers={"Range": "items=0-1"})
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(video))


async def test_a_range_past_the_end_is_a_416_with_a_json_body(
    server: LiveServer, alice: Person
) -> None:
    """A range starting at or after the end is 416 with ``Content-Range: bytes */<size>`` and
    a JSON error body like every other error; ranges that overlap the file still work."""
    url, video = await _video_url(server, alice)
    size = len(video)
    response = await alice.http.get(url, headers={"Range": f"bytes={size}-{size + 10}"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "Requested range not satisfiable.", "code": "range"}
    tail = await alice.http.get(url, headers={"Range": f"bytes={size - 10}-{size + 1000}"})
    assert tail.status_code == 206
    assert tail.content == video[-10:]
    last = await alice.http.get(url, headers={"Range": "bytes=-5"})
    assert last.status_code == 206
    assert last.content == video[-5:]
