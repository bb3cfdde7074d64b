"""Protocol-only load client: everything the scenarios say to a server goes through here.

It speaks only the public BLAB protocol (PROTOCOL.md sections 2.1, 3, 4, 5.1, 5.7), so it can
measure Tertulia, the bare echo server, or any other compatible server:

- REST (`Api`): create a conversation, join one, read its history, list the bots; the session
  travels as `Cookie: sessionid=<key>`, read from the `Set-Cookie` of create and join;
- WebSocket (`Socket`): `ws://host/ws/chat/<id>/` with the same cookie; text frames
  `{"type": "T", "text": "bench <hex>", "local_id": "<hex>"}` out; `{"message": ...}` and
  `{"state": ...}` frames in; other frames (e.g. `{"error": ...}`) are counted.

A *round trip* (`RoundTrip`) is: send a human text, see it come back with my `local_id` (the
echo, which gives its message id), then see another participant's message whose
`quoted_message_id` is that id (the bot's answer). Each frame is time-stamped when the reader
task takes it, before any other processing.

Problems are counted, never hidden, in a `Counters` shared by the sockets of one scenario:
answers later than their timeout, answers never seen, the same message id twice on one socket,
error frames, sockets closed by the server.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.httpclient import HttpClient, Response

API = "/api/chat"
MAX_FRAME = 64 * 1024 * 1024  # state frames of big rooms are large
_STATE_ONLY = '{"state"'


class ProtocolError(Exception):
    """The server answered something the protocol does not allow; carries the exchange."""

    def __init__(self, what: str, request: str, response: Response | None = None) -> None:
        detail = f"{what}: {request}"
        if response is not None:
            detail += f" -> {response.status} {response.body[:500]!r}"
        super().__init__(detail)


def new_hex() -> str:
    """Returns a fresh 32-hex id, the form the protocol's clients use for `local_id`."""
    return uuid.uuid4().hex


@dataclass(slots=True)
class Membership:
    """One participant's place in one conversation, as create and join return it."""

    conversation_id: str
    participant_id: str
    session_key: str
    participants: list[dict[str, Any]]


class Api:
    """The REST half of the protocol.

    Args:
        http: the HTTP client to the server.
    """

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    async def bots(self) -> list[str]:
        """Returns the installed bots (`GET bots/`)."""
        response = await self._call("GET", f"{API}/bots/", expect=200)
        return list(response.json()["results"])

    async def create(self, nickname: str, bots: Iterable[str], name: str = "") -> Membership:
        """Creates a conversation with a fresh session; returns the creator's membership."""
        body = {"nickname": nickname, "name": name, "bots": list(bots)}
        request = f"POST {API}/conversations/ {orjson.dumps(body).decode()}"
        response = await self._call("POST", f"{API}/conversations/", json=body, expect=201)
        return _membership(request, response, None, None)

    async def join(
        self, conversation_id: str, nickname: str, session_key: str | None = None
    ) -> Membership:
        """Joins a conversation (a new participant when `session_key` is None, rooms on)."""
        path = f"{API}/conversations/{conversation_id}/join/"
        response = await self._call(
            "POST", path, json={"nickname": nickname}, cookie=session_key, expect=200
        )
        return _membership(f"POST {path}", response, conversation_id, session_key)

    async def history(self, conversation_id: str, session_key: str, limit: int = 100) -> list[Any]:
        """Returns one page of history (`GET messages/?limit=`), a bare list also accepted."""
        path = f"{API}/conversations/{conversation_id}/messages/?limit={limit}"
        body = (await self._call("GET", path, cookie=session_key, expect=200)).json()
        results = body if isinstance(body, list) else body.get("results")
        if not isinstance(results, list):
            raise ProtocolError("history is neither a list nor a page", f"GET {path}")
        return results

    async def _call(
        self,
        method: str,
        path: str,
        *,
        expect: int,
        json: Any = None,
        cookie: str | None = None,
    ) -> Response:
        response = await self.http.request(method, path, json=json, cookie=cookie)
        if response.status != expect:
            raise ProtocolError(f"expected {expect}", f"{method} {path}", response)
        return response


def _membership(
    request: str, response: Response, conversation_id: str | None, session_key: str | None
) -> Membership:
    try:
        body = response.json()
        conversation_id = conversation_id or str(body["id"])
        participant_id = str(body["my_participant_id"])
        participants = list(body["participants"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"malformed conversation ({exc!r})", request, response) from exc
    key = response.cookie("sessionid") or session_key
    if not key:
        raise ProtocolError("no Set-Cookie: sessionid", request, response)
    return Membership(conversation_id, participant_id, key, participants)


@dataclass(slots=True)
class Counters:
    """Frame and problem counts shared by the sockets of one scenario run."""

    frames: int = 0
    messages: int = 0
    states: int = 0
    errors: int = 0
    other: int = 0
    unparsable: int = 0
    duplicates: int = 0
    late: int = 0
    closed: int = 0
    greeted: int = 0
    last_frame: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """Returns the counts (not the time stamp) as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "last_frame"}

    async def all_greeted(self, sockets: int, timeout: float) -> bool:
        """Waits until `sockets` sockets have had their first `message` frame.

        The protocol (4.4) says every new human socket gets a message promptly after
        connecting; until then the server has not finished handling the connect.
        """
        deadline = time.perf_counter() + timeout
        while self.greeted < sockets:
            if time.perf_counter() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def quiet(self, idle: float = 0.3, timeout: float = 30.0) -> bool:
        """Waits until no frame arrived for `idle` seconds; False if `timeout` passed first."""
        deadline = time.perf_counter() + timeout
        while (now := time.perf_counter()) < deadline:
            if now - self.last_frame >= idle:
                return True
            await asyncio.sleep(idle / 3)
        return False


@dataclass(slots=True, eq=False)
class RoundTrip:
    """One human message and the bot answer quoting it."""

    local_id: str
    sent_at: float
    answered: asyncio.Future[tuple[float, dict[str, Any]]]
    message_id: str | None = None
    timed_out: bool = False

    @property
    def answer(self) -> dict[str, Any] | None:
        """The answer message, once it arrived."""
        return self.answered.result()[1] if self.answered.done() else None

    @property
    def latency(self) -> float:
        """Seconds from sending to the answer's arrival (answered round trips only)."""
        return self.answered.result()[0] - self.sent_at


@dataclass(slots=True, eq=False)
class Socket:
    """One WebSocket of one participant, with a reader task that dispatches frames."""

    ws: ClientConnection
    participant_id: str
    counters: Counters
    seen: set[str] = field(default_factory=set)
    by_local: dict[str, RoundTrip] = field(default_factory=dict)
    by_message: dict[str, RoundTrip] = field(default_factory=dict)
    watches: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None
    closing: bool = False
    greeted: bool = False

    @classmethod
    async def open(cls, ws_base: str, member: Membership, counters: Counters) -> Socket:
        """Connects to `ws_base/ws/chat/<id>/` as `member` and starts reading."""
        ws = await connect(
            f"{ws_base}/ws/chat/{member.conversation_id}/",
            additional_headers={"Cookie": f"sessionid={member.session_key}"},
            compression=None,
            proxy=None,
            ping_interval=None,
            max_size=MAX_FRAME,
            open_timeout=30,
            close_timeout=2,
            user_agent_header=None,
        )
        sock = cls(ws, member.participant_id, counters)
        sock.reader = asyncio.create_task(sock._read())
        return sock

    @property
    def is_open(self) -> bool:
        """True while the reader runs."""
        return self.reader is not None and not self.reader.done()

    async def send_text(self, text: str, local_id: str | None = None) -> RoundTrip:
        """Sends a human text frame; returns its round trip, to await the answer."""
        local_id = local_id or new_hex()
        loop = asyncio.get_running_loop()
        trip = RoundTrip(local_id, time.perf_counter(), loop.create_future())
        self.by_local[local_id] = trip
        frame = {"type": "T", "text": text, "local_id": local_id}
        await self.ws.send(orjson.dumps(frame).decode())
        return trip

    async def round_trip(self, text: str, timeout: float) -> RoundTrip:
        """Sends `text` and waits up to `timeout` seconds for the answer quoting it."""
        trip = await self.send_text(text)
        await asyncio.wait([trip.answered], timeout=timeout)
        trip.timed_out = not trip.answered.done()
        return trip

    def watch(self, local_id: str) -> asyncio.Future[float]:
        """Returns a future set to the arrival time of the first message with `local_id`."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.watches[local_id] = future
        return future

    async def close(self) -> None:
        """Closes the socket and stops the reader."""
        self.closing = True
        await self.ws.close()
        if self.reader is not None:
            await self.reader

    def abort(self) -> None:
        """Drops the connection at once, without a closing handshake."""
        self.closing = True
        self.ws.transport.abort()

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self._on_frame(raw, time.perf_counter())
        except ConnectionClosed:
            pass
        finally:
            if not self.closing:
                self.counters.closed += 1

    def _on_frame(self, raw: str | bytes, now: float) -> None:
        counters = self.counters
        counters.frames += 1
        counters.last_frame = now
        if isinstance(raw, str) and raw.startswith(_STATE_ONLY) and '"message"' not in raw:
            counters.states += 1  # big rooms send large participant lists: skip parsing
            return
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            counters.unparsable += 1
            return
        if not isinstance(frame, dict):
            counters.other += 1
            return
        message, known = frame.get("message"), False
        if isinstance(message, dict):
            counters.messages += 1
            self._on_message(message, now)
            known = True
        if "state" in frame:
            counters.states += 1
            known = True
        if not known:
            counters.errors += "error" in frame
            counters.other += "error" not in frame

    def _on_message(self, message: dict[str, Any], now: float) -> None:
        if not self.greeted:
            self.greeted = True
            self.counters.greeted += 1
        message_id = str(message.get("id"))  # "None" for a message without one
        if message_id in self.seen:
            self.counters.duplicates += 1
            return
        self.seen.add(message_id)
        local_id = message.get("local_id")
        mine = message.get("sender_id") == self.participant_id
        if local_id:
            watch = self.watches.pop(local_id, None)
            if watch is not None and not watch.done():
                watch.set_result(now)
            trip = self.by_local.get(local_id) if mine else None
            if trip is not None and trip.message_id is None:
                trip.message_id = message_id
                self.by_message[message_id] = trip
        quoted = message.get("quoted_message_id")
        if quoted and not mine:
            self._on_answer(quoted, message, now)

    def _on_answer(self, quoted: str, message: dict[str, Any], now: float) -> None:
        trip = self.by_message.get(quoted)
        if trip is None or trip.answered.done():
            return
        trip.answered.set_result((now, message))
        if trip.timed_out:
            self.counters.late += 1


async def open_many(
    ws_base: str, members: list[Membership], counters: Counters, concurrency: int = 32
) -> tuple[list[Socket], list[BaseException]]:
    """Opens one socket per membership, `concurrency` handshakes at a time.

    Returns:
        The sockets that opened, and the failures of the others.
    """
    slots = asyncio.Semaphore(concurrency)

    async def one(member: Membership) -> Socket:
        async with slots:
            return await Socket.open(ws_base, member, counters)

    results = await asyncio.gather(*(one(m) for m in members), return_exceptions=True)
    sockets = [r for r in results if isinstance(r, Socket)]
    return sockets, [r for r in results if isinstance(r, BaseException)]


async def close_all(sockets: list[Socket], timeout: float = 10.0) -> None:
    """Closes the sockets politely for up to `timeout` seconds, then drops the rest."""
    tasks = [asyncio.create_task(s.close()) for s in sockets]
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)
    for task in tasks:
        task.cancel()
    for sock in sockets:
        if not sock.ws.transport.is_closing():
            sock.abort()
    await asyncio.gather(*tasks, return_exceptions=True)
