"""BLAB's WebSocket-triggered external bots, written with the SDK (PROTOCOL 6.3, A.2 19-20)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from external.fakes import (
    TIMEOUT,
    PersonFactory,
    Recorder,
    SettingsFactory,
    bot_id,
    closed_port,
    external_bot,
    serve,
)
from support.blab import Person, Socket
from support.bots import watch_logs
from support.proxy import ProxyFactory
from support.server import live_server
from support.waiting import until
from tertulia.cli import delete
from tertulia.client import BotApp, ChatMessage, Conversation, websocket_base
from tertulia.client import conversation as client_conversation
from tertulia.settings import Settings


class EchoBot:
    """A small SDK bot: greets on connect, answers each human text with ``echo: <text>``."""

    def __init__(self, **options: Any) -> None:
        self.app = BotApp("http://127.0.0.1:1", backoff=(0.02, 0.2), **options)
        self.seen: list[str] = []
        self.conversation: Conversation | None = None
        self.known_at_greeting: list[str] = []
        self.got_state = asyncio.Event()

        @self.app.on_connect
        async def greet(conversation: Conversation) -> None:
            self.conversation = conversation
            self.known_at_greeting = [p["name"] for p in conversation.participants]
            await conversation.send("Hello from Ext")

        @self.app.on_state
        async def state(conversation: Conversation, state: dict[str, Any]) -> None:
            self.got_state.set()  # (an asyncio.Event: on the loop, so not a plain callback)

        @self.app.on_message
        async def echo(conversation: Conversation, message: ChatMessage) -> None:
            self.seen.append(message.text or "")
            await conversation.send(f"echo: {message.text}", quote=message)

    def point_at(self, server_url: str) -> None:
        self.app.ws_url = websocket_base(server_url)


@asynccontextmanager
async def with_bot(
    bot: EchoBot, settings: Settings, people: PersonFactory
) -> AsyncIterator[tuple[Person, str, Socket]]:
    """alice in a conversation with ``bot`` as "Ext", served by ``settings``, her socket
    open (the bot perhaps not there yet); (alice, the bot's participant id, her socket)."""
    async with live_server(settings) as server:
        bot.point_at(server.base_url)
        alice = people(server)
        created = await alice.create(nickname="alice", bots=["Ext"])
        ext_id = bot_id(created.json(), "Ext")
        socket = await alice.connect(after=0)
        yield alice, ext_id, socket
        await bot.app.aclose()


@asynccontextmanager
async def greeted(
    bot: EchoBot, settings: Settings, people: PersonFactory
) -> AsyncIterator[tuple[Person, str, Socket]]:
    """As :func:`with_bot`, the bot's greeting on her socket."""
    async with with_bot(bot, settings, people) as (alice, ext_id, socket):
        await socket.message(sender_id=ext_id, text="Hello from Ext")
        yield alice, ext_id, socket


async def test_required_external_bot_case_19(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """Trigger with the three keys as JSON; the bot connects, greets, answers; its leaving
    stores participant-left then conversation-ended; people can still write."""
    bot = EchoBot()
    recorder = Recorder(bot.app.asgi)
    async with serve(recorder, lifespan="on") as trigger_url:
        settings = make_settings(bots={"Ext": external_bot(trigger_url, required=True)})
        async with live_server(settings) as server:
            bot.point_at(server.base_url)
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["Ext"])
            assert created.status_code == 201, created.text
            ext_id = bot_id(created.json(), "Ext")

            (trigger,) = await recorder.wait_for(1)
            assert trigger.method == "POST"
            assert trigger.path == "/"
            assert trigger.headers["content-type"] == "application/json"
            body = trigger.json()
            # BLAB's three keys, and where the bot's first socket starts (its library
            # ignores the extra key)
            assert set(body) == {"conversation_id", "bot_participant_id", "session", "after"}
            assert body["conversation_id"] == alice.conversation_id
            assert body["bot_participant_id"] == ext_id

            socket = await alice.connect(after=0)
            greeting = await socket.message(sender_id=ext_id, text="Hello from Ext")
            assert greeting["sent_by_human"] is False
            await asyncio.wait_for(bot.got_state.wait(), TIMEOUT)
            assert bot.conversation is not None
            assert ext_id in [p["id"] for p in bot.conversation.participants]

            asked = await socket.message(local_id=await socket.say("hi"))
            answer = await socket.message(sender_id=ext_id, quoted_message_id=asked["id"])
            assert answer["text"] == "echo: hi"

            await bot.conversation.close()
            left = await socket.message(event="participant-left")
            assert left["additional_metadata"] == {"participant_id": ext_id}
            ended = await socket.message(event="conversation-ended")
            assert ended["additional_metadata"] == {"participant_id": ext_id}
            assert socket.messages().index(left) < socket.messages().index(ended)

            mine = await socket.message(local_id=await socket.say("still here?"))
            assert mine["text"] == "still here?"
            async with httpx.AsyncClient(base_url=server.base_url) as client:
                url = f"/api/chat/conversations/{alice.conversation_id}/messages/"
                cookie = {"Cookie": f"sessionid={body['session']}"}
                assert (await client.get(url, headers=cookie)).status_code == 403
            await bot.app.aclose()


async def test_a_bot_whose_program_restarted_is_called_back_and_answers(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """The required bot's program stops (it leaves: the conversation ends) and starts
    again; alice writes: the bot is triggered again, resumes at her message and answers it
    (PROTOCOL 6.3, 9.2 #22)."""
    bot = EchoBot()
    async with bot.app.running() as trigger_url:
        bots = {"Ext": external_bot(trigger_url, required=True)}
        settings = make_settings(bots=bots, bot_recall=0.001)
        async with greeted(bot, settings, people) as (_, ext_id, socket):
            await bot.app.aclose()  # (as a stopping program does)
            ended = await socket.message(event="conversation-ended")
            asked = await socket.message(local_id=await socket.say("are you back?"))
            answer = await socket.message(sender_id=ext_id, quoted_message_id=asked["id"])
            assert answer["text"] == "echo: are you back?"
            back = [
                m
                for m in socket.messages()
                if m.get("event") == "participant-joined"
                and m["additional_metadata"] == {"participant_id": ext_id}
            ]
            order = socket.messages()
            assert order.index(ended) < order.index(back[-1]) < order.index(answer), "back"
            assert bot.seen == ["are you back?"]


async def test_what_a_person_writes_before_the_bot_comes_is_answered(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """alice writes before the creation's trigger has reached the bot: the trigger says
    where its first socket starts (``after``, as a call-back's does), so the bot answers
    her message too (bot authors' QA: the SDK read the newest ``seq`` itself, just before
    connecting, and skipped what was written while its trigger was on its way)."""
    bot = EchoBot()
    arrived = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_to_come(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            arrived.set()
            await go_on.wait()
        await bot.app.asgi(scope, receive, send)

    recorder = Recorder(slow_to_come)
    async with serve(recorder, lifespan="on") as trigger_url:
        settings = make_settings(bots={"Ext": external_bot(trigger_url)})
        async with with_bot(bot, settings, people) as (_, ext_id, socket):
            await asyncio.wait_for(arrived.wait(), TIMEOUT)
            asked = await socket.message(local_id=await socket.say("are you there yet?"))
            go_on.set()
            answer = await socket.message(sender_id=ext_id, quoted_message_id=asked["id"])
            assert answer["text"] == "echo: are you there yet?"
            assert recorder.requests[0].json()["after"] < asked["seq"]


async def test_bot_library_image_message_case_20(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """An image with ``text: null`` and an external URL is stored and shown with its name."""
    bot = EchoBot()
    async with bot.app.running() as trigger_url:
        settings = make_settings(bots={"Ext": external_bot(trigger_url)})
        async with greeted(bot, settings, people) as (alice, ext_id, socket):
            assert bot.conversation is not None

            url = "https://example.com/pics/cat.png?size=2"
            await bot.conversation.send(None, type="i", external_file_url=url)
            image = await socket.message(sender_id=ext_id, type="i")
            assert image["text"] == ""
            assert image["file_url"] == url
            assert image["file_name"] == "cat.png"
            assert image["file_size"] is None
            history = (await alice.history()).json()["results"]
            assert image["id"] in [m["id"] for m in history]
            await bot.app.aclose()


async def test_the_greeting_knows_who_is_in_the_conversation(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """``on_connect`` runs once the socket's first ``state`` has arrived, so a greeting can
    name the people (it ran before any frame, with no participants known)."""
    bot = EchoBot()
    async with bot.app.running() as trigger_url:
        settings = make_settings(bots={"Ext": external_bot(trigger_url)})
        async with greeted(bot, settings, people):
            assert bot.known_at_greeting == ["alice", "Ext"]
            await bot.app.aclose()


async def test_the_greeting_does_not_wait_for_a_server_that_sends_nothing_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A compatible server need not send a frame when a socket opens: the greeting then
    runs after ``GREETING_WAIT`` seconds, with no participants known."""
    monkeypatch.setattr(client_conversation, "GREETING_WAIT", 0.2)
    opened = asyncio.Event()

    async def silent(connection: ServerConnection) -> None:
        opened.set()
        await connection.wait_closed()

    async with ws_serve(silent, "127.0.0.1", 0) as quiet:
        port = quiet.sockets[0].getsockname()[1]
        app = BotApp(f"http://127.0.0.1:{port}", backoff=(0.02, 0.2))
        greeted_with: asyncio.Future[list[dict[str, str]]] = asyncio.Future()

        @app.on_connect
        async def greet(conversation: Conversation) -> None:
            greeted_with.set_result(conversation.participants)

        app.join("c1", "p1", "s1")
        async with asyncio.timeout(TIMEOUT):
            await opened.wait()
            assert await greeted_with == []
        await app.aclose()


async def test_a_server_closing_each_socket_at_once_is_waited_for_ever_longer() -> None:
    """A server that takes the socket and closes it at once (a proxy in trouble, a server
    restarting in a loop): the bot waits longer before each new try, as after failed
    handshakes (it used to start over from the shortest wait at every handshake)."""
    opened: list[float] = []
    enough = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def closing(connection: ServerConnection) -> None:
        opened.append(loop.time())
        if len(opened) == 6:
            enough.set()

    async with ws_serve(closing, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        app = BotApp(f"http://127.0.0.1:{port}", backoff=(0.05, 1.0))
        app.join("c1", "p1", "s1")
        async with asyncio.timeout(TIMEOUT):
            await enough.wait()
        await app.aclose()
    # The fifth wait is at least half of 0.05 x 2**4 (the waits are jittered by 0.5 to 1).
    waits = [round(b - a, 3) for a, b in itertools.pairwise(opened)]
    assert waits[4] >= 0.4, waits


async def test_unreachable_bot_does_not_fail_creation(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A bot whose URL refuses connections: 201 at once, the failure logged, chat usable."""
    url = f"http://127.0.0.1:{closed_port()}/"
    settings = make_settings(
        bots={
            "ECHO": {"module": "tertulia.bots.builtin", "class": "UpperCaseEchoBot"},
            "Ext": external_bot(url, required=True, retries=1),
        }
    )
    with watch_logs() as logs:
        async with live_server(settings) as server:
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["ECHO", "Ext"])
            assert created.status_code == 201, created.text
            ext_id = bot_id(created.json(), "Ext")

            failed = await logs.wait_for(
                lambda e: (
                    e.get("event") == "bot delivery failed for good"
                    and e.get("participant_id") == ext_id
                )
            )
            assert failed["conversation_id"] == alice.conversation_id
            assert "cannot reach" in failed["error"]

            socket = await alice.connect()
            asked = await socket.message(local_id=await socket.say("still works"))
            answer = await socket.message(quoted_message_id=asked["id"])
            assert answer["text"] == "STILL WORKS"


async def test_dropped_bot_resumes_without_losing_messages(
    make_settings: SettingsFactory, people: PersonFactory, proxy_to: ProxyFactory
) -> None:
    """The bot's connection is cut; what was said meanwhile is replayed once it is back, and
    what it sent meanwhile is delivered once."""
    bot = EchoBot()
    async with bot.app.running() as trigger_url:
        settings = make_settings(bots={"Ext": external_bot(trigger_url)})
        async with live_server(settings) as server:
            proxy = await proxy_to(server.port)
            bot.point_at(f"http://127.0.0.1:{proxy.listen_port}")
            alice = people(server)
            created = await alice.create(nickname="alice", bots=["Ext"])
            ext_id = bot_id(created.json(), "Ext")
            socket = await alice.connect(after=0)
            await socket.message(sender_id=ext_id, text="Hello from Ext")
            one = await socket.message(local_id=await socket.say("one"))
            await socket.message(sender_id=ext_id, quoted_message_id=one["id"])
            conversation = bot.conversation
            assert conversation is not None

            proxy.refusing = True
            proxy.drop()
            left = await socket.message(event="participant-left")
            assert left["additional_metadata"] == {"participant_id": ext_id}
            two = await socket.message(local_id=await socket.say("two"))
            away = await conversation.send("sent while away")
            assert away in conversation.pending

            proxy.refusing = False
            answer = await socket.message(sender_id=ext_id, quoted_message_id=two["id"])
            assert answer["text"] == "echo: two"
            if away not in [m.get("local_id") for m in socket.messages()]:
                await socket.message(sender_id=ext_id, local_id=away)
            await socket.sync()
            from_bot = [m["text"] for m in socket.messages() if m.get("sender_id") == ext_id]
            assert sorted(from_bot) == sorted(
                ["Hello from Ext", "echo: one", "echo: two", "sent while away"]
            )
            assert bot.seen == ["one", "two"]
            assert conversation.pending == []
            assert proxy.accepted >= 2
            await bot.app.aclose()


async def test_trigger_endpoint_refuses_malformed_bodies() -> None:
    """The SDK's trigger answers 400 to a body that is not the three strings, 200 otherwise."""
    app = BotApp("ws://127.0.0.1:1", backoff=(5.0, 5.0))
    async with app.running() as url, httpx.AsyncClient() as client:
        assert (await client.post(url, content=b"not json")).status_code == 400
        assert (await client.post(url, json=[1, 2])).status_code == 400
        missing = {"conversation_id": "c", "session": "s"}
        assert (await client.post(url, json=missing)).status_code == 400
        good = {"conversation_id": "c", "bot_participant_id": "b", "session": "s"}
        response = await client.post(url, json=good)
        assert response.status_code == 200
        assert response.content == b""
        assert set(app.conversations) == {"c"}
    assert app.conversations == {}


def test_websocket_base_accepts_http_and_ws_urls() -> None:
    """Servers may be named by their HTTP or their WebSocket URL."""
    assert websocket_base("http://h:8000/") == "ws://h:8000"
    assert websocket_base("https://h") == "wss://h"
    assert websocket_base("ws://h:1") == "ws://h:1"


async def test_refused_session_closes_the_conversation(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A handshake refused with 403 (a lapsed or foreign session) is final, not retried."""
    async with live_server(make_settings()) as server:
        alice = people(server)
        created = await alice.create(nickname="alice", bots=["ECHO"])
        assert alice.conversation_id is not None
        app = BotApp(server.base_url, backoff=(0.02, 0.2))
        conversation = app.join(alice.conversation_id, bot_id(created.json(), "ECHO"), "bogus")
        await asyncio.wait_for(conversation.wait_closed(), TIMEOUT)
        assert conversation.closed
        assert app.conversations == {}
        with pytest.raises(RuntimeError):
            await conversation.send("too late")


async def test_a_throttled_or_failed_handshake_is_retried_not_final() -> None:
    """429 (after its Retry-After) and 5xx handshakes are tried again until the server takes
    the socket; a 404 after that, as a 403, is final."""
    answers = [(429, "1"), (503, None), (429, "0")]
    tried: list[float] = []
    opened = asyncio.Event()
    loop = asyncio.get_running_loop()

    def gate(connection: ServerConnection, request: Request) -> Response | None:
        if "Upgrade" not in request.headers:  # (the SDK's REST look-up before its first try)
            return Response(404, "Not Found", Headers(), b"")
        tried.append(loop.time())
        if not answers:
            return None
        status, retry_after = answers.pop(0)
        headers = Headers({"Retry-After": retry_after} if retry_after else {})
        return Response(status, "No", headers, b"")

    async def accepted(connection: ServerConnection) -> None:
        opened.set()
        await connection.close()  # (then the next handshake is refused for good)
        answers.append((404, None))

    async with ws_serve(accepted, "127.0.0.1", 0, process_request=gate) as server:
        port = server.sockets[0].getsockname()[1]
        app = BotApp(f"http://127.0.0.1:{port}", backoff=(0.02, 5.0))
        conversation = app.join("c1", "p1", "s1")
        async with asyncio.timeout(TIMEOUT):
            await opened.wait()
            await conversation.wait_closed()
        await app.aclose()
    assert len(tried) == 5  # 429, 503, 429, accepted, 404
    assert tried[1] - tried[0] >= 1.0  # the first 429's Retry-After


def test_a_throttled_refusals_wait_is_read_from_the_frame_or_an_older_servers_detail() -> None:
    """``retry_after`` beside the text ``detail``, or inside ``detail`` (an object: servers
    before it was always a text); none for another code."""
    wait = client_conversation._retry_after
    assert wait({"code": "throttled", "detail": "Too many.", "retry_after": 2}) == 2.0
    assert wait({"code": "throttled", "detail": {"retry_after": 3}}) == 3.0
    assert wait({"code": "invalid", "detail": "x", "retry_after": 2}) is None
    assert wait({"code": "throttled", "detail": "Too many."}) is None
    # the database out of reach: for now too (before: dropped, a bot's answer lost)
    assert wait({"code": "unavailable", "detail": "Try again.", "retry_after": 5}) == 5.0


async def test_a_burst_over_the_rate_limit_is_slowed_not_lost(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """A bot sending more than the ``message`` limit at once: the refused messages wait
    the ``retry_after`` the server names and go again, so every one arrives, in order."""
    bot = EchoBot()
    lines = [f"line {i}" for i in range(8)]

    @bot.app.on_message
    async def burst(conversation: Conversation, message: ChatMessage) -> None:
        for line in lines:
            await conversation.send(line)

    async with bot.app.running() as trigger_url:
        settings = make_settings(
            bots={"Ext": external_bot(trigger_url)}, rate_limits={"message": "3/second"}
        )
        async with greeted(bot, settings, people) as (_, ext_id, socket):
            await socket.say("go")
            got = [(await socket.message(sender_id=ext_id, text=line))["text"] for line in lines]
            assert got == lines


async def test_a_deleted_conversation_is_left_not_retried(
    make_settings: SettingsFactory, people: PersonFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The server closes a deleted conversation's sockets with 4404: the SDK leaves the
    conversation at once, saying why, rather than reconnecting to be refused."""
    bot = EchoBot()
    caplog.set_level("INFO", logger="tertulia.client")
    async with bot.app.running() as trigger_url:
        settings = make_settings(bots={"Ext": external_bot(trigger_url)})
        async with greeted(bot, settings, people) as (alice, _, _):
            assert bot.conversation is not None

            assert await asyncio.to_thread(delete, settings, [alice.conversation_id]) == 0
            # (the in-process broker: the server finds out at the next write)
            answer = await alice.post(type="T", text="hello?", local_id="late")
            assert answer.status_code == 404

            await asyncio.wait_for(bot.conversation.wait_closed(), TIMEOUT)
            assert bot.app.conversations == {}
    said = [r.getMessage() for r in caplog.records if r.name == "tertulia.client"]
    assert f"conversation {alice.conversation_id} was deleted; leaving" in said
    assert not [m for m in said if "refused the socket" in m]


async def test_a_new_trigger_ends_the_reconnection_pause_at_once() -> None:
    """The server restarted: the bot's socket is refused (503) and it pauses before trying
    again, up to its ceiling; the restarted server calls it back (a new trigger, with a
    new session). That trigger says the server is up: the socket is tried again at once,
    with the new session (before: only the session was swapped, and the bot answered
    after its pause ran out: 20-30 s late)."""
    sessions: list[str] = []
    refused, opened = asyncio.Event(), asyncio.Event()

    def gate(connection: ServerConnection, request: Request) -> Response | None:
        if "Upgrade" not in request.headers:  # (the SDK's REST look-up before its first try)
            return Response(404, "Not Found", Headers(), b"")
        sessions.append(request.headers.get("Cookie", ""))
        if len(sessions) == 1:
            refused.set()
            return Response(503, "Restarting", Headers(), b"")
        return None

    async def accepted(connection: ServerConnection) -> None:
        opened.set()
        await connection.wait_closed()

    async with ws_serve(accepted, "127.0.0.1", 0, process_request=gate) as server:
        port = server.sockets[0].getsockname()[1]
        app = BotApp(f"http://127.0.0.1:{port}", backoff=(60.0, 60.0))
        app.join("c1", "p1", "old")
        async with asyncio.timeout(TIMEOUT):
            await refused.wait()
            app.join("c1", "p1", "new")
            await opened.wait()
        await app.aclose()
    assert sessions == ["sessionid=old", "sessionid=new"]


async def test_a_refused_message_is_logged_with_its_conversation(
    make_settings: SettingsFactory, people: PersonFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A bot in many conversations learns which one refused its message: the SDK's line
    names the conversation, the ``local_id`` and the server's reason (before: only the
    ``local_id``)."""
    bot = EchoBot()

    @bot.app.on_message
    async def too_long(conversation: Conversation, message: ChatMessage) -> None:
        await conversation.send("x" * 5000)

    caplog.set_level("WARNING", logger="tertulia.client")
    async with bot.app.running() as trigger_url:
        settings = make_settings(bots={"Ext": external_bot(trigger_url)})
        async with greeted(bot, settings, people) as (alice, _, socket):
            await socket.say("go")
            await until(lambda: any("refused" in r.getMessage() for r in caplog.records))
    said = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert said[0].startswith(f"server refused a message in conversation {alice.conversation_id} ")
    assert "4000" in said[0]


async def test_the_trigger_endpoint_bounds_a_requests_headers() -> None:
    """The SDK's trigger endpoint is a server too: headers past 64 KiB get the server's
    431 (security QA: a bot's endpoint took headers without end, like the server did)."""
    bot = EchoBot()
    async with bot.app.running() as trigger_url:
        port = int(trigger_url.split(":")[2].split("/")[0])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"POST /trigger HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            with contextlib.suppress(ConnectionError):
                for _ in range(20):
                    writer.write(b"X-A: " + b"a" * 8_000 + b"\r\n")
                    await writer.drain()
            async with asyncio.timeout(TIMEOUT):
                answered = await reader.read(-1)
        finally:
            writer.close()
    assert answered.startswith(b"HTTP/1.1 431 ")
