"""A TCP proxy between the browser and a server that can make its connections go silent.

:meth:`SilencingProxy.silence` is what a NAT forgetting a flow, or a laptop waking from
sleep, does to the connections open at that moment: their bytes stop arriving and nothing
closes them (no FIN, no reset), so neither end is told. Connections made after it go
through as usual, unless the network is :meth:`~SilencingProxy.cut` (then they go silent
too, until it is restored). :meth:`~SilencingProxy.hold` makes the server slow instead: its
bytes are kept back until released.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

CHUNK = 64 * 1024


@dataclass
class _Link:
    """One browser connection and its connection to the server."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    upstream_dead: bool = False
    downstream_dead: bool = False
    held: list[bytes] | None = None  # what comes from the server, kept back (a slow one)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class SilencingProxy:
    """Forwards ``127.0.0.1:<port>`` to the server's port, byte for byte."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.links: list[_Link] = []
        self.network_dead = False  # new connections are silent too (see :meth:`cut`)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def silence(self, *, upstream: bool = True) -> int:
        """Drop, from now on, what the open connections carry towards the browser, and
        towards the server too unless ``upstream`` is false (then what the browser sends
        still arrives, but no answer comes back). Returns how many connections it hit."""
        for link in self.links:
            link.downstream_dead = True
            link.upstream_dead = link.upstream_dead or upstream
        return len(self.links)

    def cut(self) -> None:
        """The network is gone: the open connections go silent, and so does every new one
        (its handshake never ends, nor fails) until :meth:`restore`."""
        self.silence()
        self.network_dead = True

    def restore(self) -> None:
        """New connections go through again (the silenced ones stay so)."""
        self.network_dead = False

    def hold(self) -> None:
        """The server becomes slow: what it sends on the open connections is kept back
        until :meth:`release`."""
        for link in self.links:
            if link.held is None:
                link.held = []

    def release(self) -> None:
        for link in self.links:
            held, link.held = link.held, None
            for data in held or []:
                link.client.write(data)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        link = _Link(client=writer, server=up_writer)
        link.upstream_dead = link.downstream_dead = self.network_dead
        self.links.append(link)
        link.tasks = [
            asyncio.create_task(self._pump(link, reader, up_writer, upstream=True)),
            asyncio.create_task(self._pump(link, up_reader, writer, upstream=False)),
        ]

    async def _pump(
        self,
        link: _Link,
        source: asyncio.StreamReader,
        target: asyncio.StreamWriter,
        *,
        upstream: bool,
    ) -> None:
        def dead() -> bool:
            return link.upstream_dead if upstream else link.downstream_dead

        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await source.read(CHUNK):
                if dead():
                    continue  # lost on the way, and nobody is told
                if not upstream and link.held is not None:
                    link.held.append(data)
                    continue
                target.write(data)
                await target.drain()
            if not dead():  # an end passes on a live connection only
                target.close()

    async def _close(self) -> None:
        for link in self.links:
            for task in link.tasks:
                task.cancel()
            for writer in (link.client, link.server):
                writer.transport.abort()
        tasks = [task for link in self.links for task in link.tasks]
        await asyncio.gather(*tasks, return_exceptions=True)


@asynccontextmanager
async def silencing_proxy(target_port: int) -> AsyncIterator[SilencingProxy]:
    """A :class:`SilencingProxy` listening on a free port until the block ends."""
    proxy = SilencingProxy(target_port)
    server = await asyncio.start_server(proxy._serve, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
        await proxy._close()
        await server.wait_closed()
