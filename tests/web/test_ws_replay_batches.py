"""``?after=N`` streams its replay a batch at a time (a socket never holds a long
conversation whole), and still misses nothing, repeats nothing, keeps ``seq`` order, and
names no one before a state frame listed them (PROTOCOL 4.2, 4.4)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from starlette.websockets import WebSocket
from websockets.exceptions import ConnectionClosed

from support.blab import Person
from support.server import LiveServer, live_server
from tertulia.chats import Chat
from tertulia.domain.model import Participant
from tertulia.settings import Settings
from tertulia.web import ws

PersonFactory = Callable[[LiveServer], Person]
SettingsFactory = Callable[..., Settings]
BATCH = 5


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws, "REPLAY_BATCH", BATCH)


async def _conversation(server: LiveServer, people: PersonFactory, messages: int) -> Person:
    alice = people(server)
    assert (await alice.create(nickname="alice", bots=[])).status_code == 201
    for i in range(messages):
        response = await alice.post(type="T", text=f"offline {i}", local_id=f"p{i}")
        assert response.status_code == 201, response.text
    return alice


async def test_a_replay_is_read_a_batch_at_a_time_as_it_is_sent(
    make_settings: SettingsFactory, people: PersonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch of a replay is read only once every frame read before it was handed to
    the socket: at most one batch is ever built ahead of what was sent."""
    async with live_server(make_settings()) as server:
        alice = await _conversation(server, people, 23)
        read = sent = 0
        ahead: list[int] = []  # frames built and not sent when each batch is read
        replay, send_text = Chat.replay, WebSocket.send_text

        async def counted_replay(self: Chat, *args: Any, **kwargs: Any) -> Any:
            nonlocal read
            ahead.append(read - sent)
            found = await replay(self, *args, **kwargs)
            read += len(found[0])
            return found

        async def counted_send(self: WebSocket, data: str) -> None:
            nonlocal sent
            await send_text(self, data)
            sent += data.startswith('{"message"')

        monkeypatch.setattr(Chat, "replay", counted_replay)
        monkeypatch.setattr(WebSocket, "send_text", counted_send)
        socket = await alice.connect(after=0)
        await socket.sync()
        assert read >= 25  # conversation-created, participant-joined, the 23 texts
        assert len(ahead) == read // BATCH + 1
        assert ahead == [0] * len(ahead)


async def test_a_long_replay_arrives_whole_with_live_messages_once_after_it(
    make_settings: SettingsFactory, people: PersonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay of several batches comes complete and in seq order; someone joining and
    speaking while it streams is listed in a state frame before a batch names them; a
    message stored after its last batch was read comes once, after it."""
    async with live_server(make_settings()) as server:
        alice = await _conversation(server, people, 23)
        replay = Chat.replay
        calls = 0
        carol: Participant | None = None

        async def racing_replay(self: Chat, *args: Any, **kwargs: Any) -> Any:
            nonlocal calls, carol
            calls += 1
            if calls == 3:  # two batches sent: carol joins and speaks
                carol = await self.join("carol")
                await self.submit(carol, {"type": "T", "text": "during", "local_id": "during"})
            found = await replay(self, *args, **kwargs)
            if found[1] is None:  # the last batch is read: from now on all is live
                assert carol is not None
                await self.submit(carol, {"type": "T", "text": "after", "local_id": "after"})
            return found

        monkeypatch.setattr(Chat, "replay", racing_replay)
        socket = await alice.connect(after=0)
        await socket.message(local_id="after")
        await socket.sync()
        assert calls > 4
        seqs = [m["seq"] for m in socket.messages() if "seq" in m]
        assert seqs == list(range(1, len(seqs) + 1))
        texts = [m.get("text") for m in socket.messages()]
        assert texts[:-1].count("during") == texts[:-1].count("after") == 1
        assert texts.index("during") < texts.index("after")
        known: set[str] = set()
        for frame in socket.frames:
            if "state" in frame:
                known |= {p["id"] for p in frame["state"]["participants"]}
            elif "message" in frame:
                message = frame["message"]
                named = {message.get("sender_id")}
                named.add((message.get("additional_metadata") or {}).get("participant_id"))
                assert named - {None} <= known, message


async def test_a_replay_that_cannot_be_read_closes_the_socket_with_1011(
    make_settings: SettingsFactory, people: PersonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure reading a later batch (the database, say) closes the socket with 1011
    rather than going on live with a gap; the client reconnects and resumes."""
    async with live_server(make_settings()) as server:
        alice = await _conversation(server, people, 12)
        replay = Chat.replay
        calls = 0

        async def failing_replay(self: Chat, *args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise OSError("disk I/O error")
            return await replay(self, *args, **kwargs)

        monkeypatch.setattr(Chat, "replay", failing_replay)
        socket = await alice.connect(after=0)
        with contextlib.suppress(ConnectionClosed):  # read on until the server closes it
            while True:
                await socket.recv()
        assert socket.connection.close_code == 1011
        assert [m["seq"] for m in socket.messages()] == list(range(1, BATCH + 1))

        monkeypatch.setattr(Chat, "replay", replay)
        socket = await alice.connect(after=BATCH)
        await socket.sync()
        seqs = [m["seq"] for m in socket.messages() if "seq" in m]
        assert seqs == list(range(BATCH + 1, BATCH + 1 + len(seqs)))
        assert "offline 11" in {m.get("text") for m in socket.messages()}
