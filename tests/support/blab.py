"""A BLAB protocol client for tests: people with cookie jars, sockets with timed waits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

Frame = dict[str, Any]
TIMEOUT = 10.0


class Person:
    """A client with its own cookie jar (its own session)."""

    def __init__(self, base_url: str, ws_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url + "/api/chat", timeout=TIMEOUT)
        self.ws_url = ws_url
        self.conversation_id: str | None = None
        self.participant_id: str | None = None
        self.sockets: list[Socket] = []

    async def close(self) -> None:
        for socket in self.sockets:
            await socket.close()
        await self.http.aclose()

    @property
    def session(self) -> str | None:
        return self.http.cookies.get("sessionid")

    async def create(self, **body: Any) -> httpx.Response:
        response = await self.http.post("/conversations/", json=body)
        if response.status_code == 201:
            data = response.json()
            self.conversation_id = data["id"]
            self.participant_id = data["my_participant_id"]
        return response

    async def join(self, conversation_id: str, **body: Any) -> httpx.Response:
        response = await self.http.post(f"/conversations/{conversation_id}/join/", json=body)
        if response.status_code == 200:
            self.conversation_id = conversation_id
            self.participant_id = response.json()["my_participant_id"]
        return response

    async def history(self, **params: Any) -> httpx.Response:
        return await self.http.get(
            f"/conversations/{self.conversation_id}/messages/", params=params
        )

    async def post(self, **body: Any) -> httpx.Response:
        return await self.http.post(f"/conversations/{self.conversation_id}/messages/", json=body)

    async def connect(
        self,
        conversation_id: str | None = None,
        *,
        after: int | str | None = None,
        copies_after: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Socket:
        target = conversation_id or self.conversation_id
        url = f"{self.ws_url}/ws/chat/{target}/"
        query = {"after": after, "copies_after": copies_after}
        if given := [f"{k}={v}" for k, v in query.items() if v is not None]:
            url += "?" + "&".join(given)
        extra = dict(headers or {})
        if self.session:
            extra["Cookie"] = f"sessionid={self.session}"
        connection = await connect(url, additional_headers=extra, open_timeout=TIMEOUT)
        socket = Socket(connection, self.participant_id)
        self.sockets.append(socket)
        return socket


class Socket:
    """One WebSocket; frames are kept so tests can look back at what arrived."""

    def __init__(self, connection: ClientConnection, participant_id: str | None) -> None:
        self.connection = connection
        self.participant_id = participant_id
        self.frames: list[Frame] = []
        self._unread = 0

    async def close(self) -> None:
        await self.connection.close()

    async def send(self, frame: Frame | str) -> None:
        await self.connection.send(
            frame if isinstance(frame, str) else orjson.dumps(frame).decode()
        )

    async def say(self, text: str, **fields: Any) -> str:
        """Send a text message; returns its local_id."""
        local_id = fields.pop("local_id", uuid.uuid4().hex)
        await self.send({"type": "T", "text": text, "local_id": local_id, **fields})
        return str(local_id)

    async def recv(self, timeout: float = TIMEOUT) -> Frame:
        raw = await asyncio.wait_for(self.connection.recv(), timeout)
        frame: Frame = orjson.loads(raw)
        self.frames.append(frame)
        return frame

    async def wait_for(self, predicate: Callable[[Frame], bool], timeout: float = TIMEOUT) -> Frame:
        """The next frame matching ``predicate`` (earlier ones are kept in ``frames``)."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.recv(timeout)
                if predicate(frame):
                    return frame

    async def message(self, timeout: float = TIMEOUT, **fields: Any) -> Frame:
        """The next ``message`` frame whose fields equal ``fields``; returns the message."""
        frame = await self.wait_for(
            lambda f: "message" in f and all(f["message"].get(k) == v for k, v in fields.items()),
            timeout,
        )
        message: Frame = frame["message"]
        return message

    async def received(self, count: int, timeout: float = TIMEOUT, **fields: Any) -> list[Frame]:
        """Every message this socket has received whose fields equal ``fields``, once there
        are at least ``count`` (reading on for at most ``timeout`` seconds in all). Unlike
        :meth:`message`, it counts those that came while an earlier wait read past them
        (an answer that arrived before the echo awaited)."""

        def matching() -> list[Frame]:
            return [m for m in self.messages() if all(m.get(k) == v for k, v in fields.items())]

        async with asyncio.timeout(timeout):
            while len(found := matching()) < count:
                await self.recv(timeout)
        return found

    async def error(self, timeout: float = TIMEOUT) -> Frame:
        frame = await self.wait_for(lambda f: "error" in f, timeout)
        error: Frame = frame["error"]
        return error

    async def state(self, timeout: float = TIMEOUT) -> Frame:
        frame = await self.wait_for(lambda f: "state" in f, timeout)
        state: Frame = frame["state"]
        return state

    async def sync(self, timeout: float = TIMEOUT) -> list[Frame]:
        """Send a marker message and wait for its echo; returns the frames before it.

        Frames ride one socket in order, so whatever the server sent this socket before the
        echo has arrived once this returns: a way to assert that something did *not* come.
        """
        start = len(self.frames)
        local_id = await self.say("sync marker")
        await self.message(timeout, local_id=local_id, sender_id=self.participant_id)
        return self.frames[start:-1]

    def messages(self) -> list[Frame]:
        return [f["message"] for f in self.frames if "message" in f]

    async def closed_with(self, timeout: float = TIMEOUT) -> int | None:
        """Read until the server closes the socket (within ``timeout``); its close code."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    await self.recv(timeout)
                except ConnectionClosed as closed:
                    return closed.rcvd.code if closed.rcvd else None


async def talking(person: Person, name: str) -> Socket:
    """``person`` in a new conversation ``name`` with ECHO, its socket open and answered."""
    assert (await person.create(nickname=name, name=name, bots=["ECHO"])).status_code == 201
    socket = await person.connect()
    await socket.say(f"hello from {name}")
    await socket.message(text=f"HELLO FROM {name.upper()}")
    return socket
