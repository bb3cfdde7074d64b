"""A client whose request body drips in: a piece at a time, at a set pace, until the server
answers (tests of a body's pace: web/bodies.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def drip(
    port: int, head: bytes, pieces: Iterable[bytes], *, every: float, limit: float = 10
) -> bytes | None:
    """Send ``head`` (a request's head and perhaps the start of its body), then each of
    ``pieces`` ``every`` seconds apart, until they run out or the server answers and closes;
    returns what it answered, read to its end (``TimeoutError`` after ``limit`` seconds).

    None when the connection was reset before the answer could be read: a server that
    closes a connection with a piece unread (one that came as it answered) resets it, and
    the client's kernel then drops what it had received (the server's answer among it).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        answer = asyncio.ensure_future(reader.read())  # (to the end: the server closes)
        async with asyncio.timeout(limit):
            for piece in pieces:
                if answer.done():
                    break
                try:
                    writer.write(piece)
                    await writer.drain()
                except ConnectionError:
                    break  # (closed: its answer is read below)
                await asyncio.wait([answer], timeout=every)  # (the client's pace)
            try:
                return await answer
            except ConnectionResetError:
                return None
    finally:
        writer.close()
