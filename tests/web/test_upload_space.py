"""What uploads may take of the disk (found by QA: one anonymous participant stored 142
files of 1 MiB in 5.8 s, and nothing stopped uploads before the disk was full, when SQLite
could no longer write anyone's messages): the media file system's free-space floor
(``media_min_free``, 507) and each conversation's budget of stored file bytes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx

from files import media_samples as samples
from support.blab import Person
from support.bots import watch_logs
from support.files import stored_files as files_under
from support.server import LiveServer, live_server
from tertulia.settings import Settings

PersonFactory = Callable[[LiveServer], Person]
SettingsFactory = Callable[..., Settings]


def stored_files(server: LiveServer) -> list[Path]:
    """Every file under the media root (kept or spooled)."""
    return files_under(Path(server.settings.media_root))


async def attach(person: Person, data: bytes, *, streamed: bool = False) -> httpx.Response:
    """POST an attachment the web client's way (``type`` before the file); ``streamed``:
    as a chunked body with no ``Content-Length``."""
    fields = {"type": "A", "text": "", "local_id": uuid.uuid4().hex}
    url = f"/conversations/{person.conversation_id}/messages/"
    if not streamed:
        return await person.http.post(url, data=fields, files={"file": ("f.bin", data)})
    boundary = uuid.uuid4().hex
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    )
    head += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n'
    head += "Content-Type: application/octet-stream\r\n\r\n"

    async def body() -> AsyncIterator[bytes]:
        yield head.encode()
        yield data
        yield f"\r\n--{boundary}--\r\n".encode()

    return await person.http.post(
        url,
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


async def test_an_upload_below_the_free_space_floor_is_507_and_leaves_no_file(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """With less free space than ``media_min_free``, an upload is refused 507 ``no_space``
    (with or without ``Content-Length``), leaves no file, and is logged as a warning; text
    messages still work. With the default floor (1 GiB) uploads are stored."""
    async with live_server(make_settings(media_min_free=2**50)) as full:
        person = people(full)
        assert (await person.create(nickname="ana")).status_code == 201
        with watch_logs() as logs:
            for streamed in (False, True):
                refused = await attach(person, b"x" * 100_000, streamed=streamed)
                assert refused.status_code == 507, refused.text
                assert refused.json() == {
                    "detail": "The server has no room for more files now.",
                    "code": "no_space",
                }
        warned = [e for e in logs.entries if e["event"].startswith("media_root below")]
        assert len(warned) == 1  # (sampled: one line every few seconds)
        assert warned[0]["min_free"] == 2**50
        assert warned[0]["free"] < 2**50
        assert stored_files(full) == []
        text = await person.post(type="T", text="still here", local_id=uuid.uuid4().hex)
        assert text.status_code == 201, text.text
        document = (await person.http.get("/_docs/openapi.json")).json()
        assert (
            "507"
            in document["paths"]["/api/chat/conversations/{conversation_id}/messages/"]["post"][
                "responses"
            ]
        )

    settings = make_settings()
    assert settings.media_min_free == 2**30
    async with live_server(settings) as running:
        person = people(running)
        assert (await person.create(nickname="bia")).status_code == 201
        for streamed in (False, True):
            stored = await attach(person, samples.png(), streamed=streamed)
            assert stored.status_code == 201, stored.text
        assert len(stored_files(running)) == 2


async def test_a_conversations_files_are_kept_within_their_budget(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """``limits.MAX_CONVERSATION_FILES_SIZE`` bounds the bytes of a conversation's stored
    files: a file that fits (to the byte) is stored, one that would pass it is 413 with
    the budget in the body and leaves no file; external files take none of it; another
    conversation has its own; ``limits/`` still answers BLAB's five keys only."""
    limits = {"MAX_ATTACHMENT_SIZE": 2000, "MAX_CONVERSATION_FILES_SIZE": 3000}
    async with live_server(make_settings(limits=limits)) as running:
        ana, bia = people(running), people(running)
        assert (await ana.create(nickname="ana")).status_code == 201
        assert (await bia.create(nickname="bia")).status_code == 201
        assert set((await ana.http.get("/limits/")).json()) == {
            "MAX_ATTACHMENT_SIZE",
            "MAX_IMAGE_SIZE",
            "MAX_VIDEO_SIZE",
            "MAX_AUDIO_SIZE",
            "MAX_VOICE_SIZE",
        }
        for size in (1500, 1000):
            stored = await attach(ana, b"x" * size)
            assert stored.status_code == 201, stored.text
        external = await ana.post(
            type="A", text="", external_file_url="https://example.com/big.bin", local_id="e1"
        )
        assert external.status_code == 201, external.text

        for streamed in (False, True):
            refused = await attach(ana, b"y" * 501, streamed=streamed)
            assert refused.status_code == 413, refused.text
            assert refused.json() == {
                "detail": "This conversation's files may take at most 3000 bytes in all, "
                "and this file would pass that.",
                "code": "too_large",
                "budget": 3000,
            }
        assert len(stored_files(running)) == 2
        last = await attach(ana, b"z" * 500)  # (to the byte)
        assert last.status_code == 201, last.text
        assert (await attach(ana, b"!")).status_code == 413

        other = await attach(bia, b"w" * 2000)
        assert other.status_code == 201, other.text
        assert len(stored_files(running)) == 4
