"""Files in the browser: checked against the limits first, uploaded with progress, shown."""

from __future__ import annotations

import asyncio
import re

import pytest

from e2e.browser import CONVERSATION_ID, expect, png
from support.server import live_server
from support.waiting import until

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_an_image_is_uploaded_and_shown(make_settings, open_tab) -> None:
    """A picked image goes up with its caption and shows inline from /media/."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        image = {"name": "gradient.png", "mimeType": "image/png", "buffer": png(64, 40)}
        await tab.page.set_input_files("input[type=file]", files=[image])
        await expect(tab.page.locator(".staged-file")).to_contain_text("gradient.png")
        await tab.send("a gradient")

        row = tab.page.locator("li.msg.mine.type-i:not(.pending)")
        await expect(row).to_have_count(1)
        await expect(row.locator(".caption")).to_have_text("a gradient")
        picture = row.locator("img.media-image")
        await expect(picture).to_have_attribute("src", re.compile(r"^/media/"))
        # Loaded from the server, not a broken image.
        await expect(picture).to_have_js_property("naturalWidth", 64)


async def test_files_the_limits_refuse_never_leave_the_page(make_settings, open_tab) -> None:
    """Too large, or of a kind the server does not take: a clear message, and no upload."""
    limits = {"MAX_IMAGE_SIZE": 100, "MAX_ATTACHMENT_SIZE": 0, "MAX_VOICE_SIZE": 0}
    async with live_server(make_settings(limits=limits)) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        posts: list[str] = []
        tab.page.on(
            "request",
            lambda request: posts.append(request.url) if request.method == "POST" else None,
        )

        big = {"name": "big.png", "mimeType": "image/png", "buffer": png(64, 64)}
        await tab.page.set_input_files("input[type=file]", files=[big])
        error = tab.page.locator(".composer-error")
        await expect(error).to_contain_text("big.png is too large")
        await expect(error).to_contain_text("the limit is 100 B")

        pdf = {"name": "notes.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 x"}
        await tab.page.set_input_files("input[type=file]", files=[pdf])
        await expect(error).to_contain_text("notes.pdf cannot be sent")

        await expect(tab.page.locator(".staged-file")).to_have_count(0)
        await expect(tab.page.locator("button.mic")).to_be_hidden()
        assert posts == []


async def test_a_file_just_over_the_limit_says_sizes_that_differ(make_settings, open_tab) -> None:
    """A file one byte over the limit: its size and the limit are written so that they read
    different (more decimals, or bytes), not "200 kB; the limit is 200 kB"."""
    limits = {"MAX_IMAGE_SIZE": 200_000, "MAX_ATTACHMENT_SIZE": 1_000_000}
    async with live_server(make_settings(limits=limits)) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", [])
        error = tab.page.locator(".composer-error")
        image = {"name": "a.png", "mimeType": "image/png", "buffer": bytes(200_001)}
        await tab.page.set_input_files("input[type=file]", files=[image])
        await expect(error).to_have_text("a.png is too large (200.001 kB); the limit is 200 kB.")
        other = {
            "name": "b.bin",
            "mimeType": "application/octet-stream",
            "buffer": bytes(1_000_001),
        }
        await tab.page.set_input_files("input[type=file]", files=[other])
        await expect(error).to_have_text(
            "b.bin is too large (1,000,001 B); the limit is 1,000,000 B."
        )


SIZES = """async ([a, b]) => {
  const { formatSizes } = await import("/static/js/i18n.js");
  return formatSizes(a, b);
}"""


async def test_sizes_close_to_a_unit_are_written_in_one_unit(make_settings, open_tab) -> None:
    """A size and a limit on either side of a unit's boundary read in one unit, so that
    they differ ("1,000 kB" and "999.999 kB", not "1 MB" and "1,000 kB")."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.page.goto("/")
        sizes = await tab.page.evaluate(SIZES, [1_000_000, 999_999])
        assert sizes == ["1,000 kB", "999.999 kB"]
        assert await tab.page.evaluate(SIZES, [5_200_000, 200_000]) == ["5,200 kB", "200 kB"]


async def test_a_proxys_413_is_told_without_a_limit(make_settings, open_tab) -> None:
    """A proxy in front refusing the upload with its own HTML 413 page (no limit named):
    the person is told the file is too large, not "larger than null"."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["ECHO"])

        async def proxy_refuses(route) -> None:
            if route.request.method != "POST":
                await route.continue_()
                return
            await route.fulfill(
                status=413, content_type="text/html", body="<html>413 Too Large</html>"
            )

        await tab.page.route("**/messages/", proxy_refuses)
        image = {"name": "huge.png", "mimeType": "image/png", "buffer": png(64, 40)}
        await tab.page.set_input_files("input[type=file]", files=[image])
        await tab.send("too big for the proxy")
        row = tab.page.locator("li.msg.mine.pending")
        await expect(row).to_contain_text("The server refused the file: it is too large.")
        await expect(row).not_to_contain_text("null")
        # (it would only be refused again: Delete, no Try again; web client QA)
        await expect(row.get_by_role("button", name="Delete")).to_be_visible()
        await expect(row.get_by_role("button", name="Try again")).to_have_count(0)


DROP = """(file) => {
  const data = new DataTransfer();
  data.items.add(new File([file.text], file.name, { type: file.type }));
  const target = document.querySelector(".timeline");
  for (const type of ["dragenter", "dragover", "drop"]) {
    const init = { dataTransfer: data, bubbles: true, cancelable: true };
    target.dispatchEvent(new DragEvent(type, init));
  }
}"""


async def test_a_dropped_file_becomes_a_download_link(make_settings, open_tab) -> None:
    """A file dropped on the conversation is sent as an attachment, shown as a link."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        await tab.page.evaluate(DROP, {"text": "hello", "name": "notes.txt", "type": "text/plain"})
        await expect(tab.page.locator(".staged-file")).to_contain_text("notes.txt")
        await tab.page.get_by_role("button", name="Send", exact=True).click()

        link = tab.page.locator("li.msg.mine.type-A:not(.pending) a.file-card")
        await expect(link).to_have_attribute("href", re.compile(r"^/media/"))
        await expect(link).to_contain_text("notes.txt")
        await expect(link).to_contain_text("5 B")


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8"/></svg>'
TIFF = b"II*\x00\x08\x00\x00\x00" + bytes(64)


@pytest.mark.parametrize(
    ("name", "mime", "content"),
    [
        ("drawing.svg", "image/svg+xml", SVG),  # taken as an image by no server: it runs code
        ("memo.amr", "audio/amr", b"#!AMR\n" + bytes(64)),  # not recognised as audio
        ("scan.tiff", "image/tiff", TIFF),  # an image, but no browser shows it
        ("photo.heic", "image/heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"),
        ("render.exr", "image/x-exr", b"\x76\x2f\x31\x01" + bytes(64)),
        ("fake.png", "image/png", b"not a picture at all"),  # the server says so: 415
    ],
    ids=["svg", "amr", "tiff", "heic", "exr", "png_not_a_picture"],
)
async def test_a_file_no_browser_shows_goes_as_an_attachment(
    make_settings, open_tab, name: str, mime: str, content: bytes
) -> None:
    """An image or audio file that the server would refuse as such (SVG, AMR, or a file
    whose content is not what its type says) or that browsers cannot show (TIFF, HEIF,
    EXR) is sent as a plain attachment, a file to download, rather than failing."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", [])
        file = {"name": name, "mimeType": mime, "buffer": content}
        await tab.page.set_input_files("input[type=file]", files=[file])
        # Waiting to be sent, it shows as a file, not as a broken image.
        staged = tab.page.locator(".staged-file", has_text=name)
        await expect(staged.locator(".staged-icon")).to_have_count(1)
        await expect(staged.locator("img")).to_have_count(0)
        await tab.page.get_by_role("button", name="Send", exact=True).click()

        card = tab.page.locator("li.msg.mine.type-A:not(.pending) a.file-card")
        await expect(card).to_contain_text(name)
        await expect(tab.page.locator("li.msg.pending")).to_have_count(0)
        conversation_id = await tab.page.evaluate(CONVERSATION_ID)
        response = await tab.context.request.get(
            f"{server.base_url}/api/chat/conversations/{conversation_id}/messages/"
        )
        results = (await response.json())["results"]
        assert [(m["type"], m["file_name"]) for m in results if m["type"] != "S"] == [("A", name)]


async def test_a_voice_note_is_recorded_and_sent(make_settings, open_tab) -> None:
    """Record, send: a voice message (type V, a file part named "blob") with a player."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url, permissions=["microphone"])
        page = tab.page
        await tab.start_conversation("alice", ["ECHO"])
        await page.get_by_role("button", name="Record a voice message").click()
        await expect(page.locator(".record-clock")).to_have_text("0:01")
        await page.get_by_role("button", name="Send the voice message").click()

        row = page.locator("li.msg.mine.type-V:not(.pending)")
        await expect(row.locator("audio")).to_have_attribute("src", re.compile(r"^/media/"))
        stored = await page.evaluate(
            """async () => {
              const id = sessionStorage.getItem("tertulia.conversation");
              const r = await fetch(`/api/chat/conversations/${id}/messages/`);
              return (await r.json()).results.filter(m => m.type === "V");
            }"""
        )
        assert [(m["file_name"], m["text"]) for m in stored] == [("blob", "")]


SAFE_URLS = """async (urls) => {
  const { safeUrl } = await import("/static/js/text.js");
  return urls.map((url) => safeUrl(url));
}"""


async def test_only_this_server_paths_and_web_addresses_become_links(
    make_settings, open_tab
) -> None:
    """A file's address is shown as a link only when it is a path on this server or an
    http(s)/ftp(s) address: never a script, and never another host behind a leading "/"
    ("//host", or "/\\host", which browsers read as "//host")."""
    urls = {
        "/media/chat/a.png": "/media/chat/a.png",
        "https://example.org/a.png": "https://example.org/a.png",
        "FTP://example.org/a": "FTP://example.org/a",
        "//evil.example/a.png": None,
        "/\\evil.example/a.png": None,
        "/\t/evil.example/a.png": None,
        "/\n/evil.example/a.png": None,
        "/\r\\evil.example/a.png": None,
        "https://example.org/a\tb.png": None,
        "javascript:alert(1)": None,
        "data:text/html,x": None,
        "": None,
    }
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.page.goto("/")
        assert await tab.page.evaluate(SAFE_URLS, list(urls)) == list(urls.values())


async def test_files_sent_together_are_stored_in_the_order_picked(make_settings, open_tab) -> None:
    """Three files picked at once go up one after the other, so everyone sees them in the
    order picked, however long each takes: the first is held on the way here, and the next
    waits for it, saying so (in parallel, the two small ones were stored first)."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        posts: list[str] = []
        first_seen, release = asyncio.Event(), asyncio.Event()

        async def hold_the_first(route) -> None:
            if route.request.method == "POST":
                posts.append(route.request.url)
                if len(posts) == 1:
                    first_seen.set()
                    await release.wait()
            await route.continue_()

        await tab.page.route("**/messages/", hold_the_first)
        names = ["first.txt", "second.txt", "third.txt"]
        files = [{"name": n, "mimeType": "text/plain", "buffer": n.encode()} for n in names]
        await tab.page.set_input_files("input[type=file]", files=files)
        await tab.page.get_by_role("button", name="Send", exact=True).click()

        async with asyncio.timeout(10):
            await first_seen.wait()
        waiting = tab.page.locator("li.msg.mine.pending.status-next")
        await expect(waiting).to_have_count(2)
        await expect(waiting.first).to_contain_text("Waiting for the file before it")
        assert len(posts) == 1
        release.set()

        cards = tab.page.locator("li.msg.mine.type-A:not(.pending) a.file-card")
        await expect(cards).to_have_count(3)
        assert [(await c.inner_text()).split("\n")[0] for c in await cards.all()] == names
        stored = await tab.page.evaluate(STORED_FILE_NAMES)
        assert stored == names


STORED_FILE_NAMES = """async () => {
  const id = sessionStorage.getItem("tertulia.conversation");
  const page = await (await fetch(`/api/chat/conversations/${id}/messages/`)).json();
  return page.results.filter((m) => m.type === "A").map((m) => m.file_name);
}"""


async def test_a_file_the_server_does_not_take_yet_can_be_cancelled(
    make_settings, open_tab
) -> None:
    """Uploads answered 503 while the socket is up (a proxy, a server restarting behind
    it): the first file says it will be tried again and can be cancelled; the one behind
    it then goes up."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        refused: list[str] = []

        async def busy_for_first(route) -> None:
            if route.request.method == "POST" and b"first.txt" in (
                route.request.post_data_buffer or b""
            ):
                refused.append(route.request.url)
                await route.fulfill(status=503, content_type="text/plain", body="busy")
                return
            await route.continue_()

        await tab.page.route("**/messages/", busy_for_first)
        names = ["first.txt", "second.txt"]
        files = [{"name": n, "mimeType": "text/plain", "buffer": n.encode()} for n in names]
        await tab.page.set_input_files("input[type=file]", files=files)
        await tab.page.get_by_role("button", name="Send", exact=True).click()

        first = tab.page.locator("li.msg.mine.pending.status-waiting")
        await expect(first).to_contain_text("trying again")
        await expect(tab.page.locator("li.msg.mine.pending.status-next")).to_have_count(1)
        await first.get_by_role("button", name="Cancel the upload").click()

        cards = tab.page.locator("li.msg.mine.type-A:not(.pending) a.file-card")
        await expect(cards).to_have_count(1)
        await expect(cards).to_contain_text("second.txt")
        await expect(tab.page.locator("li.msg.mine.pending")).to_have_count(0)
        assert refused


async def test_after_a_413_the_next_file_is_checked_against_the_new_limits(
    make_settings, open_tab
) -> None:
    """The server's limits lowered since the page loaded them: the file it refuses with 413
    makes the page read them again, so the next file too large is stopped before it goes."""
    limits = {"MAX_IMAGE_SIZE": 100}
    async with live_server(make_settings(limits=limits)) as server:
        tab = await open_tab(server.base_url)
        page = tab.page
        refused = False  # (the page has had its 413: the limits it reads now are current)
        reread = asyncio.Event()  # (and it has read them since)

        async def limits_of_before(route) -> None:
            # Until the 413, the answer is from before the limits were lowered (the page
            # may read them more than once before: on the lobby, on entering).
            response = await route.fetch()
            body = await response.json()
            if not refused:
                body["MAX_IMAGE_SIZE"] = 10_000_000
            await route.fulfill(response=response, json=body)
            if refused:
                reread.set()

        def on_response(response) -> None:
            nonlocal refused
            if response.request.method == "POST" and response.status == 413:
                refused = True

        page.on("response", on_response)
        await page.route("**/api/chat/limits/", limits_of_before)
        await tab.start_conversation("alice", [])
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
        image = {"name": "big.png", "mimeType": "image/png", "buffer": png(64, 64)}
        await page.set_input_files("input[type=file]", files=[image])
        await expect(page.locator(".staged-file")).to_contain_text("big.png")  # (then sent)
        await tab.send("")
        await expect(page.locator("li.msg.mine.pending")).to_contain_text(
            "The server refused the file: it is larger than 100 B."
        )
        await asyncio.wait_for(reread.wait(), 15)
        uploads = len(posts)
        await page.set_input_files("input[type=file]", files=[image])
        error = page.locator(".composer-error")
        await expect(error).to_contain_text("big.png is too large")
        await expect(error).to_contain_text("the limit is 100 B")
        assert len(posts) == uploads


async def test_leaving_with_a_file_not_yet_stored_asks_first(make_settings, open_tab) -> None:
    """A file not stored yet (its upload held up, or refused) is not kept across a reload,
    as a text is: the page asks before it goes (web client QA: a file waiting for the
    connection was gone after a reload, without a word). Once stored, it does not ask."""
    async with live_server(make_settings()) as server:
        tab = await open_tab(server.base_url)
        await tab.start_conversation("alice", ["ECHO"])
        held = asyncio.Event()

        async def held_up(route) -> None:
            if route.request.method != "POST" or held.is_set():
                await route.continue_()
                return
            await route.fulfill(status=503, json={"code": "unavailable"})

        await tab.page.route("**/messages/", held_up)
        asked: list[str] = []

        async def dialog(d) -> None:
            asked.append(d.type)
            await d.dismiss()  # (stay)

        tab.page.on("dialog", dialog)
        image = {"name": "later.png", "mimeType": "image/png", "buffer": png(64, 40)}
        await tab.page.set_input_files("input[type=file]", files=[image])
        await tab.send("a picture for later")
        waiting = tab.page.locator("li.msg.mine.pending.type-i")
        await expect(waiting).to_contain_text("a picture for later")

        await tab.page.evaluate("location.reload()")
        await until(lambda: asked == ["beforeunload"], timeout=10)
        await expect(waiting).to_contain_text("a picture for later")

        held.set()  # (the page tries again by itself)
        stored = tab.page.locator("li.msg.mine.type-i:not(.pending)")
        await expect(stored).to_have_count(1)
        await tab.page.reload()  # (nothing left to lose: no question)
        await expect(tab.page.locator("li.msg.mine.type-i")).to_have_count(1)
        assert asked == ["beforeunload"]
