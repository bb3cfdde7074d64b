"""Uploading files over REST multipart (PROTOCOL 3.10, 5.8; A.1 case 12): limits, content
checks, refusal before or while the body streams, and no file left behind by a refusal."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from files import media_samples as samples
from support.blab import Person
from support.bots import watch_logs
from support.files import stored_files as files_under
from support.server import LiveServer, live_server
from tertulia.chats import Chat
from tertulia.settings import Settings
from tertulia.storage import messages as msg_repo
from tertulia.web import uploads

LIMITS = {
    "MAX_ATTACHMENT_SIZE": 2000,
    "MAX_IMAGE_SIZE": 1000,
    "MAX_VIDEO_SIZE": 0,
    "MAX_AUDIO_SIZE": 5000,
    "MAX_VOICE_SIZE": 5000,
}
LARGEST = 5000

# the conftest's fixture types (not imported: ``conftest`` is ambiguous across dirs)
PersonFactory = Callable[[LiveServer], Person]
SettingsFactory = Callable[..., Settings]


@pytest.fixture
async def small(make_settings: SettingsFactory) -> AsyncIterator[LiveServer]:
    """A server with small limits (image 1000 bytes, video disabled)."""
    async with live_server(make_settings(limits=LIMITS)) as running:
        yield running


@pytest.fixture
async def carol(small: LiveServer, people: PersonFactory) -> Person:
    """A person in a conversation with ECHO on the small-limits server."""
    person = people(small)
    response = await person.create(nickname="carol", bots=["ECHO"])
    assert response.status_code == 201, response.text
    return person


def stored_files(server: LiveServer) -> list[Path]:
    """Every file under the media root (kept or spooled)."""
    return files_under(Path(server.settings.media_root))


async def upload(
    person: Person,
    data: dict[str, str],
    file: tuple[str, bytes, str] | None = None,
    *,
    field: str = "file",
) -> httpx.Response:
    """POST a multipart message the web client's way: text fields, then the file part."""
    if file is None:  # httpx makes multipart only with a file: build the body by hand
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
            for key, value in data.items()
        ]
        return await person.http.post(
            f"/conversations/{person.conversation_id}/messages/",
            content="".join(parts).encode() + f"--{boundary}--\r\n".encode(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    files = {field: file}
    return await person.http.post(
        f"/conversations/{person.conversation_id}/messages/", data=data, files=files
    )


async def test_image_upload_is_stored_shown_and_served(small: LiveServer, carol: Person) -> None:
    """A.1 case 12: an image under the limit → 201 with a relative file_url, file_size and
    file_name; the sender's socket gets it; its URL serves the bytes; the detected MIME type
    is stored."""
    socket = await carol.connect()
    image = samples.png()
    response = await upload(
        carol, {"type": "i", "text": " a caption ", "local_id": "f1"}, ("pic.png", image, "x/y")
    )
    assert response.status_code == 201, response.text
    message = response.json()
    conversation_hex = uuid.UUID(carol.conversation_id).hex
    assert message["file_url"].startswith(f"/media/chat/chat_{conversation_hex}/msg_")
    assert (message["file_size"], message["file_name"]) == (len(image), "pic.png")
    assert (message["text"], message["local_id"], message["type"]) == ("a caption", "f1", "i")
    echoed = await socket.message(local_id="f1")
    assert echoed["file_url"] == message["file_url"]

    served = await carol.http.get(small.base_url + message["file_url"])
    assert served.status_code == 200
    assert served.content == image
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-disposition"].startswith("inline")

    async with small.registry.db.read() as conn:
        stored = await msg_repo.get_message(conn, carol.conversation_id, message["id"])
    assert stored is not None
    assert stored.file is not None
    assert stored.file.mime_type == "image/png"
    assert stored.file.path == message["file_url"].removeprefix("/media/")


async def test_limits_empty_files_and_wrong_encodings(small: LiveServer, carol: Person) -> None:
    """A.1 case 12: over the type's limit → 413 MAX = limit; a disabled type (0) → 413;
    an empty file → 400; form-urlencoded → 415; nothing is left on disk; ``limits/``
    reports the limits in force."""
    assert (await carol.http.get("/limits/")).json() == LIMITS
    over = samples.png() + b"\x00" * 1000
    response = await upload(carol, {"type": "i", "text": ""}, ("big.png", over, "image/png"))
    assert response.status_code == 413
    assert response.json()["detail"] == "MAX = 1000"

    response = await upload(carol, {"type": "v", "text": ""}, ("v.mp4", samples.mp4(), "video/mp4"))
    assert response.status_code == 413
    assert response.json()["detail"] == "MAX = 0"

    response = await upload(carol, {"type": "i", "text": ""}, ("e.png", b"", "image/png"))
    assert response.status_code == 400
    assert response.json()["file"] == ["The submitted file is empty."]

    response = await carol.http.post(
        f"/conversations/{carol.conversation_id}/messages/", data={"type": "T", "text": "x"}
    )
    assert response.status_code == 415
    assert stored_files(small) == []


async def test_file_part_before_the_type_is_still_checked(small: LiveServer, carol: Person) -> None:
    """When the file part comes first, the type's limit is applied once the type is read."""
    boundary = "b0undary"
    over = samples.png() + b"\x00" * 1500  # under the largest limit, over the image limit
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + over
        + (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\ni\r\n'
            f"--{boundary}--\r\n"
        ).encode()
    )
    response = await carol.http.post(
        f"/conversations/{carol.conversation_id}/messages/",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413
    assert response.json()["detail"] == "MAX = 1000"
    assert stored_files(small) == []


async def test_voice_blob_quote_and_repeated_local_id(small: LiveServer, carol: Person) -> None:
    """The web client's voice recording (part filename ``blob``, octet-stream, text "")
    quoting a message is stored as audio; the same local_id again → 200 with the same
    message and no second file."""
    quoted = (await carol.post(type="T", text="say something")).json()
    fields = {"type": "V", "text": "", "local_id": "v1", "quoted_message_id": quoted["id"]}
    blob = ("blob", samples.ogg_opus(), "application/octet-stream")
    first = await upload(carol, fields, blob)
    assert first.status_code == 201, first.text
    voice = first.json()
    assert (voice["type"], voice["text"], voice["file_name"]) == ("V", "", "blob")
    assert voice["quoted_message_id"] == quoted["id"]

    again = await upload(carol, fields, blob, field="blob")
    assert again.status_code == 200
    assert again.json()["id"] == voice["id"]
    assert len(stored_files(small)) == 1

    async with small.registry.db.read() as conn:
        stored = await msg_repo.get_message(conn, carol.conversation_id, voice["id"])
    assert stored is not None
    assert stored.file is not None
    assert stored.file.mime_type == "audio/ogg"


async def test_html_sent_as_image_is_refused(small: LiveServer, carol: Person) -> None:
    """The content decides, not the name or the client's type: HTML as an image → 415."""
    response = await upload(
        carol, {"type": "i", "text": ""}, ("cat.png", samples.html(), "image/png")
    )
    assert response.status_code == 415
    assert "not an image" in response.json()["detail"]
    assert stored_files(small) == []


async def test_missing_and_misplaced_files_are_refused(small: LiveServer, carol: Person) -> None:
    """No file and no URL → 400; ``file`` as a string (JSON or a text part) → 400; a file on
    a ``T`` message → 400 (refused, not silently dropped); an invalid quote → 400 and the
    already stored file is deleted again."""
    response = await upload(carol, {"type": "i", "text": "no file"})
    assert response.status_code == 400
    assert "file" in response.json()

    response = await carol.post(type="i", text="", file="pic.png")
    assert response.status_code == 400
    assert response.json()["file"][0].startswith("The submitted data was not a file.")

    response = await upload(carol, {"type": "i", "file": "pic.png"})
    assert response.status_code == 400
    assert "file" in response.json()

    response = await upload(
        carol, {"type": "T", "text": "hi"}, ("a.png", samples.png(), "image/png")
    )
    assert response.status_code == 400
    assert "file" in response.json()

    response = await upload(
        carol,
        {"type": "i", "text": "", "quoted_message_id": str(uuid.uuid4())},
        ("a.png", samples.png(), "image/png"),
    )
    assert response.status_code == 400
    assert "quoted_message_id" in response.json()
    assert stored_files(small) == []
    history = (await carol.history()).json()["results"]
    assert [m["type"] for m in history if m["type"] != "S"] == []


async def test_text_fields_over_their_bound_are_too_large(small: LiveServer, carol: Person) -> None:
    """(REST QA F5: 400 ``invalid``.) A form whose text fields pass their 32 KiB is refused
    as any body over its bound is: 413 ``too_large``; nothing is stored."""
    response = await upload(carol, {"type": "T", "text": "hi", "extra": "x" * 36_000})
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "too_large"
    history = (await carol.history()).json()["results"]
    assert [m for m in history if m["type"] != "S"] == []


async def test_a_failure_after_the_commit_keeps_the_messages_file(
    small: LiveServer, carol: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload's request fails after its message was committed (here publishing its
    frames; in life a cancellation at shutdown): the message is stored, so its file stays
    (a message without its file is what must never be)."""
    flush = Chat._flush

    async def fails_after(chat: Chat, out: Any) -> None:
        await flush(chat, out)
        if any('"file_url"' in event.frame for event in out.events):
            raise RuntimeError("failed after the commit")

    monkeypatch.setattr(Chat, "_flush", fails_after)
    response = await upload(carol, {"type": "i", "text": ""}, ("a.png", samples.png(), "image/png"))
    assert response.status_code == 500
    monkeypatch.setattr(Chat, "_flush", flush)
    (stored,) = [m for m in (await carol.history()).json()["results"] if m["type"] == "i"]
    served = await carol.http.get(small.base_url + stored["file_url"])
    assert served.status_code == 200
    assert served.content == samples.png()


async def test_a_file_input_left_empty_is_no_file(small: LiveServer, carol: Person) -> None:
    """An HTML form whose file input was left empty sends a part with ``filename=""`` and
    nothing in it: no file, as Django (BLAB) takes it. A text message goes through; an image
    message is refused for having no file."""

    async def send(fields: dict[str, str]) -> httpx.Response:
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
            for key, value in fields.items()
        ]
        parts.append(  # what a browser sends for a file input left empty
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename=""\r\n'
            "Content-Type: application/octet-stream\r\n\r\n\r\n"
        )
        return await carol.http.post(
            f"/conversations/{carol.conversation_id}/messages/",
            content="".join(parts).encode() + f"--{boundary}--\r\n".encode(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )

    response = await send({"type": "T", "text": "just text"})
    assert response.status_code == 201, response.text
    assert response.json()["text"] == "just text"
    response = await send({"type": "i", "text": ""})
    assert response.status_code == 400
    assert "file" in response.json()
    assert stored_files(small) == []


@pytest.mark.parametrize(
    ("disposition", "name"),
    [
        ("filename*=UTF-8''na%C3%AFve%20caf%C3%A9.txt", "naïve café.txt"),
        ("filename=\"naive.txt\"; filename*=UTF-8''na%C3%AFve.txt", "naïve.txt"),
        ("filename*=iso-8859-1'fr'r%E9sum%E9.txt", "résumé.txt"),
        # (browsers, and httpx, write a name's '"' as %22, CR and LF as %0D and %0A, as the
        # HTML standard says: web client QA saw 'a %22quote%22' shown; '%' alone stays)
        ('filename="a %22quote%22 100%.txt"', 'a "quote" 100%.txt'),
        ('filename="two%0D%0Alines.txt"', "twolines.txt"),
    ],
)
async def test_a_file_name_is_read_as_clients_write_it(
    small: LiveServer, carol: Person, disposition: str, name: str
) -> None:
    """A part that names its file as ``filename*=charset'lang'percent-encoded`` (RFC 2231,
    as some HTTP libraries send a name that is not ASCII; Django, hence BLAB, reads it) is
    the file, under that name, which wins over a plain ``filename`` beside it. Before, with
    no ``filename`` it was read as a text field, and the message refused for having no file.
    A plain ``filename`` has the HTML standard's three escapes undone."""
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\nA\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; {disposition}\r\n'
        "Content-Type: text/plain\r\n\r\nsome notes\r\n"
        f"--{boundary}--\r\n"
    )
    response = await carol.http.post(
        f"/conversations/{carol.conversation_id}/messages/",
        content=body.encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 201, response.text
    assert (response.json()["file_name"], response.json()["file_size"]) == (name, 10)


# -- refusing early, on a raw connection ----------------------------------------------
# A blocking socket in a thread, as HTTP clients do it: write until the server closes, then
# read the answer it sent before closing (Linux keeps it readable after the reset).


def _head(server: LiveServer, person: Person, boundary: str, framing: str) -> bytes:
    return (
        f"POST /api/chat/conversations/{person.conversation_id}/messages/ HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Cookie: sessionid={person.session}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"{framing}\r\n\r\n"
    ).encode()


def _exchange(port: int, head: bytes, body: Iterator[bytes]) -> tuple[int, str, Any, int]:
    """Send ``head`` then ``body`` until done or refused; returns the status, the
    Connection header, the JSON body, and how many body bytes were handed to the socket."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        try:
            sock.sendall(head)
            for data in body:
                sock.sendall(data)
                sent += len(data)
        except OSError:
            pass  # refused: the server closed the connection
        received = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                received += chunk
    head_part, _, payload = received.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers.get("connection", ""), orjson.loads(payload), sent


async def test_a_short_upload_refused_early_still_gets_its_answer(
    small: LiveServer, carol: Person
) -> None:
    """Refused at the file part's headers (a type that takes no file), with the rest of a
    short body still on its way: the server reads and drops that rest before it answers,
    so the client reads the 400 rather than a reset connection, every time, and the
    connection stays open for the next request."""
    for attempt in range(30):
        refused = await upload(
            carol, {"type": "TT"}, ("x.png", samples.png() + bytes(2000), "image/png")
        )
        assert refused.status_code == 400, attempt
        assert refused.json()["type"] == ['"TT" is not a valid choice.']
        assert refused.headers.get("connection") != "close"
    assert stored_files(small) == []


async def test_a_refused_upload_does_not_wait_for_a_stalled_client(
    small: LiveServer, carol: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused at the file part's headers, then the client sends nothing more of the body it
    announced: the server stops waiting after ``DRAIN_SECONDS`` and answers, closing."""
    monkeypatch.setattr(uploads, "DRAIN_SECONDS", 0.2)
    boundary = "b"
    start = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\nTT\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    head = _head(small, carol, boundary, f"Content-Length: {len(start) + 5000}")
    status, connection, body, _ = await asyncio.to_thread(
        _exchange, small.port, head, iter([start])
    )
    assert (status, connection) == (400, "close")
    assert body["type"] == ['"TT" is not a valid choice.']


async def test_content_length_over_the_limit_is_refused_before_the_body(
    small: LiveServer, carol: Person
) -> None:
    """A declared length over the largest limit → 413 while not one body byte was sent (the
    type it waits for does not come), and the server closes the connection."""
    head = _head(small, carol, "b", "Content-Length: 10000000")
    status, connection, body, _ = await asyncio.to_thread(_exchange, small.port, head, iter([]))
    assert (status, connection) == (413, "close")
    assert body["detail"] == f"MAX = {LARGEST}"


@pytest.mark.parametrize(
    ("fields_first", "limit"), [(True, LIMITS["MAX_IMAGE_SIZE"]), (False, LARGEST)]
)
async def test_content_length_over_the_limit_is_refused_with_the_types_own_limit(
    small: LiveServer, carol: Person, fields_first: bool, limit: int
) -> None:
    """Declared over the largest limit, with the type before the file (the web client's
    order): refused at the file part's headers with the image's limit, not the largest
    (before: MAX = the largest, told to an image). With the type after the file it is not
    known there: the largest. Not a byte of the file is stored."""
    boundary = "b"
    type_part = f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\ni\r\n'
    file_head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    )
    start = (type_part + file_head if fields_first else file_head).encode() + samples.png()
    head = _head(small, carol, boundary, "Content-Length: 10000000")
    rest = [b"\x00" * 16384] * 8
    status, connection, body, _ = await asyncio.to_thread(
        _exchange, small.port, head, iter([start, *rest])
    )
    assert (status, connection) == (413, "close")
    assert body["detail"] == f"MAX = {limit}"
    assert stored_files(small) == []


async def test_chunked_oversize_upload_is_refused_while_streaming(
    small: LiveServer, carol: Person
) -> None:
    """No Content-Length (chunked): refused with 413 as soon as the file part passes its
    type's limit (MAX = the image limit, not the cap on the whole body), long before the
    client would have finished sending."""
    boundary = "b"
    start = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\ni\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode() + samples.png()
    planned = 64 * 1024 * 1024

    def body() -> Iterator[bytes]:
        for data in [start] + [b"\x00" * 16384] * (planned // 16384):
            yield b"%x\r\n%s\r\n" % (len(data), data)

    head = _head(small, carol, boundary, "Transfer-Encoding: chunked")
    status, connection, answer, sent = await asyncio.to_thread(_exchange, small.port, head, body())
    assert (status, connection) == (413, "close")
    assert answer["detail"] == "MAX = 1000"
    assert sent < planned // 4
    assert stored_files(small) == []


async def test_an_interrupted_upload_leaves_no_file(small: LiveServer, carol: Person) -> None:
    """A client that goes away in the middle of the file leaves no spool file behind."""
    boundary = "b"
    start = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\nA\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + b"\x01" * 500
    with socket.create_connection(("127.0.0.1", small.port), timeout=10) as sock:
        sock.sendall(_head(small, carol, boundary, "Content-Length: 1900") + start)
        async with asyncio.timeout(10):  # the spool file appears once the server has read
            while not stored_files(small):
                await asyncio.sleep(0.01)
    async with asyncio.timeout(10):
        while stored_files(small):
            await asyncio.sleep(0.01)


async def test_a_file_that_cannot_be_written_is_a_503_not_a_500(
    make_settings: SettingsFactory, people: PersonFactory, tmp_path: Path
) -> None:
    """(Found by QA: a media root that cannot be written answered every upload 500 with a
    traceback.) The upload is answered 503 ``unavailable`` with Retry-After, and logged
    with the reason; the server goes on serving texts."""
    (tmp_path / "plain").write_text("not a directory", encoding="utf-8")
    settings = make_settings(media_root=tmp_path / "plain" / "media")
    async with live_server(settings) as running:
        person = people(running)
        assert (await person.create(nickname="dora", bots=["ECHO"])).status_code == 201
        with watch_logs() as logs:
            response = await upload(
                person, {"type": "i", "text": ""}, ("a.png", samples.png(), "image/png")
            )
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "unavailable"
        assert response.headers["Retry-After"] == "30"
        failed = [e for e in logs.entries if e["event"] == "cannot write an uploaded file"]
        assert len(failed) == 1
        assert "Not a directory" in failed[0]["error"]
        text = await person.http.post(
            f"/conversations/{person.conversation_id}/messages/",
            json={"type": "T", "text": "still here", "local_id": uuid.uuid4().hex},
        )
        assert text.status_code == 201, text.text
