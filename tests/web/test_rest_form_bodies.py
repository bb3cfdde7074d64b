"""Form and multipart bodies of the conversation endpoints are capped like JSON ones
(64 KB), while they stream, so one request cannot make the server hold megabytes."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator, Callable

from support.blab import Person
from support.server import LiveServer
from tertulia.web.bodies import MAX_BODY

# the conftest's fixture types (not imported: ``conftest`` is ambiguous across dirs)
PersonFactory = Callable[[LiveServer], Person]
FIELD = 60_000
FIELDS = 200  # 12 MB in all, each field under Starlette's own per-part cap


async def _multipart_fields() -> AsyncIterator[bytes]:
    for i in range(FIELDS):
        yield b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n' % i
        yield b"a" * FIELD + b"\r\n"
    yield b"--b--\r\n"


async def _urlencoded_fields() -> AsyncIterator[bytes]:
    for i in range(FIELDS):
        yield b"f%d=" % i + b"a" * FIELD + b"&"


async def _multipart_file() -> AsyncIterator[bytes]:
    yield b'--b\r\nContent-Disposition: form-data; name="nickname"\r\n\r\nfiler\r\n'
    yield b'--b\r\nContent-Disposition: form-data; name="junk"; filename="big.bin"\r\n\r\n'
    for _ in range(FIELDS):
        yield b"\x00" * FIELD
    yield b"\r\n--b--\r\n"


async def test_form_and_multipart_bodies_are_capped_while_streaming(
    server: LiveServer, alice: Person, people: PersonFactory
) -> None:
    """12 MB of form fields, or a 12 MB file part, sent to create, join or rename: 413
    ``MAX = 65536`` like a JSON body of that size, with little memory used, nothing
    created. (Before: accepted; 200 fields of 60 KB were held in memory at once.)"""
    bob = people(server)
    multipart = "multipart/form-data; boundary=b"
    urlencoded = "application/x-www-form-urlencoded"
    paths = [
        "/conversations/",
        f"/conversations/{alice.conversation_id}/join/",
        f"/conversations/{alice.conversation_id}/participants/{alice.participant_id}/",
    ]
    for path in paths:
        for body, kind in (
            (_multipart_fields, multipart),
            (_urlencoded_fields, urlencoded),
            (_multipart_file, multipart),
        ):
            client = alice.http if "participants" in path else bob.http
            method = client.patch if "participants" in path else client.post
            tracemalloc.start()
            try:
                response = await method(path, content=body(), headers={"Content-Type": kind})
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert response.status_code == 413, (path, kind, response.text)
            assert response.json()["detail"] == f"MAX = {MAX_BODY}"
            assert peak < 4 * 1024 * 1024, (path, kind, peak)
    assert bob.session is None  # nothing was created for bob
    assert (await alice.history()).status_code == 200


async def test_small_form_and_multipart_bodies_still_work(
    server: LiveServer, people: PersonFactory
) -> None:
    """Under the cap, form and multipart bodies are read as before (a repeated key keeps its
    last value; a file part is not a string)."""
    person = people(server)
    response = await person.http.post(
        "/conversations/",
        content=b"nickname=first&nickname=%C3%B1and%C3%BA&name=sala",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["participants"][0]["name"] == "ñandú"
    assert response.json()["name"] == "sala"
    response = await person.http.post(
        "/conversations/", files={"nickname": ("n.txt", b"x" * 100, "text/plain")}
    )
    assert response.status_code == 400
    assert response.json() == ["nickname must be a string"]
    for content_type in ("multipart/form-data", "multipart/form-data; boundary=abc"):
        response = await person.http.post(
            "/conversations/", content=b"xx", headers={"Content-Type": content_type}
        )
        assert response.status_code == 400, content_type
        assert "detail" in response.json()
