"""Helpers for the REST tests: one-off requests without a session, and settings types."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from support.blab import Person, Socket
from support.server import LiveServer
from tertulia.settings import Settings

SettingsFactory = Callable[..., Settings]
PersonFactory = Callable[[LiveServer], Person]
NOWHERE = "00000000-0000-4000-8000-000000000000"


async def call(server: LiveServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request with no cookie jar shared with anybody (a fresh client)."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
        return await client.request(method, path, **kwargs)


async def get(server: LiveServer, path: str, **kwargs: Any) -> httpx.Response:
    """A GET with no session."""
    return await call(server, "GET", path, **kwargs)


def set_cookie(response: httpx.Response) -> str | None:
    """The ``Set-Cookie`` header for ``sessionid``, if the response has one."""
    for value in response.headers.get_list("set-cookie"):
        if value.startswith("sessionid="):
            return value
    return None


async def room_of_two(server: LiveServer, people: PersonFactory) -> tuple[Person, Socket]:
    """alice's conversation (no bots) that bob has joined; returns alice (no socket yet)
    and bob's socket, which watches what everyone gets."""
    alice = people(server)
    assert (await alice.create(nickname="alice", bots=[])).status_code == 201
    assert alice.conversation_id is not None
    bob = people(server)
    assert (await bob.join(alice.conversation_id, nickname="bob")).status_code == 200
    return alice, await bob.connect()


@asynccontextmanager
async def not_reading(server: LiveServer, person: Person) -> AsyncIterator[ClientConnection]:
    """A socket of ``person`` that reads nothing: a tiny receive buffer and a client queue
    of one frame, so the server's writes back up (past the kernel's buffers: send it big
    frames; no compression to shrink them). Dropped without a closing handshake at the end."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", server.port))
    lazy = await connect(
        f"{server.ws_url}/ws/chat/{person.conversation_id}/",
        sock=raw,
        additional_headers={"Cookie": f"sessionid={person.session}"},
        max_queue=1,
        compression=None,
    )
    try:
        yield lazy
    finally:
        lazy.transport.abort()


async def answered(person: Person, text: str) -> list[dict[str, Any]]:
    """The person's history once it holds ``text`` (a bot's answer arrives on its own)."""
    async with asyncio.timeout(10):
        while True:
            history: list[dict[str, Any]] = (await person.history()).json()["results"]
            if any(message.get("text") == text for message in history):
                return history
            await asyncio.sleep(0.02)
