"""A TCP proxy between the server and a service (PostgreSQL, Redis, a bot), to cut the
network in tests: :meth:`Proxy.drop` aborts every connection, ``refusing`` turns new ones
away, :meth:`Proxy.hold` keeps every byte back (a partition: connections stay open, and
nothing answers)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

ProxyFactory = Callable[[int], Awaitable["Proxy"]]


class Proxy:
    """A TCP proxy to ``port`` on loopback; :meth:`drop` cuts every connection at once and
    ``refusing`` makes it close new ones straight away (the network is down)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.refusing = False
        self.accepted = 0
        self.refused: list[float] = []  # (monotonic times of the connections turned away)
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def listen_port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def drop(self) -> None:
        """Abort every open connection, both ways, without a closing handshake."""
        for client, upstream in list(self._links):
            client.transport.abort()
            upstream.transport.abort()
        self._links.clear()

    def hold(self) -> None:
        """Keep back every byte, both ways, on every connection, new ones too, until
        :meth:`release`: a partition, or a frozen host."""
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            self.refused.append(time.monotonic())
            writer.transport.abort()
            return
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            writer.transport.abort()
            return
        link = (writer, up_writer)
        self._links.add(link)
        for source, target in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, target))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()
