"""The log setup: console lines in colour only on a terminal."""

from __future__ import annotations

import io
import logging

import pytest
import structlog
from websockets.exceptions import InvalidStatus

from support.bots import watch_logs
from support.environment import PersonFactory, SettingsFactory
from support.server import live_server
from tertulia.errors import DatabaseUnavailable
from tertulia.logs import Sampled, configure_logging


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _one_line(monkeypatch: pytest.MonkeyPatch, stream: io.StringIO) -> str:
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("console", "INFO")
    structlog.get_logger("tertulia.test").info("hello", conversation_id="c1")
    logging.getLogger("uvicorn.error").info("Started server process")
    return stream.getvalue()


def test_console_logs_to_a_file_or_pipe_have_no_colour_codes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Standard error that is a file or a pipe gets plain text, no ANSI escapes."""
    written = _one_line(monkeypatch, io.StringIO())
    assert "hello" in written
    assert "conversation_id=c1" in written
    assert "Started server process" in written
    assert "\x1b[" not in written


def test_console_logs_to_a_terminal_are_in_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    """Standard error that is a terminal gets coloured lines."""
    written = _one_line(monkeypatch, Terminal())
    assert "hello" in written
    assert "\x1b[" in written


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_the_database_out_of_reach_is_one_warning_without_traceback(
    monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """Logged with ``log.exception`` by a periodic task (the runner's poll, a sweep): before,
    a traceback every few seconds while the outage lasted; now a warning naming the
    driver's error. Any other exception keeps its traceback."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging(fmt, "INFO")
    log = structlog.get_logger("tertulia.test")
    try:
        raise DatabaseUnavailable("ConnectionRefusedError: [Errno 111] refused")
    except DatabaseUnavailable:
        log.exception("polling the outbox failed", owner="p1")
    outage = stream.getvalue()
    assert "Traceback" not in outage
    assert "polling the outbox failed" in outage
    assert "warning" in outage
    assert "Errno 111" in outage
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        log.exception("polling the outbox failed", owner="p1")
    assert "Traceback" in stream.getvalue()[len(outage) :]


def test_sampled_warnings_say_how_many_were_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """An outage refuses every request; its warnings come at most once every ``every``
    seconds per kind, the first at once, each later one counting those left out."""
    now = [1000.0]
    monkeypatch.setattr("tertulia.logs.time.monotonic", lambda: now[0])
    written: list[tuple[str, dict[str, object]]] = []

    class Log:
        def warning(self, event: str, **fields: object) -> None:
            written.append((event, fields))

    sampled = Sampled(every=10.0)
    for _ in range(5):
        sampled.warning(Log(), "database unreachable; answered 503", path="/a")
        now[0] += 1.0
    sampled.warning(Log(), "database unreachable; message refused", path="/b")
    now[0] += 5.0  # (10 s after the first line)
    sampled.warning(Log(), "database unreachable; answered 503", path="/c")
    sampled.warning(Log(), "database unreachable; answered 503", path="/d")
    assert written == [
        ("database unreachable; answered 503", {"path": "/a"}),
        ("database unreachable; message refused", {"path": "/b"}),
        ("database unreachable; answered 503", {"path": "/c", "left_out": 4}),
    ]


@pytest.mark.parametrize("fmt", ["console", "json"])
async def test_session_keys_stay_out_of_debug_logs(
    monkeypatch: pytest.MonkeyPatch,
    make_settings: SettingsFactory,
    people: PersonFactory,
    fmt: str,
) -> None:
    """At ``log_level = "DEBUG"`` websockets writes each handshake's headers on uvicorn's
    logger: a person's ``Cookie`` and a bot's ``Authorization`` are written redacted (they
    were written whole: security QA); the other headers as they came."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging(fmt, "DEBUG")
    async with live_server(make_settings()) as server:
        alice = people(server)
        await alice.create(nickname="alice")
        key = alice.session or ""
        socket = await alice.connect(headers={"Authorization": f"Bearer token-{key}"})
        await socket.state()
    written = stream.getvalue()
    assert key
    assert key not in written
    assert "Cookie: [redacted]" in written
    assert "Authorization: [redacted]" in written
    assert "Upgrade: websocket" in written  # (the debug lines are still there)


async def test_a_sockets_end_and_a_refused_handshake_are_logged_with_their_ids(
    make_settings: SettingsFactory, people: PersonFactory
) -> None:
    """(QA: the docs promised uvicorn's ``connection closed`` for each socket, which its
    sans-I/O protocol never writes, and no line at all said a handshake was refused for
    want of a session.) A socket's end is one info line with the conversation, the
    participant, how it closed and how long it was open; a refused handshake, one with
    the conversation."""
    async with live_server(make_settings()) as server:
        alice, stranger = people(server), people(server)
        await alice.create(nickname="alice")
        with watch_logs() as logs:
            socket = await alice.connect()
            await socket.state()
            await socket.connection.close(code=1000)
            closed = await logs.wait_for(lambda e: e["event"] == "socket closed")
            with pytest.raises(InvalidStatus):
                await stranger.connect(alice.conversation_id)
            refused = await logs.wait_for(lambda e: e["event"].startswith("socket refused"))
    assert closed["conversation_id"] == alice.conversation_id
    assert closed["participant_id"] == alice.participant_id
    assert closed["code"] == 1000
    assert closed["log_level"] == "info"
    assert closed["seconds"] >= 0
    assert refused["event"] == "socket refused: no participant of this session"
    assert refused["conversation_id"] == alice.conversation_id
    assert refused["log_level"] == "info"


@pytest.mark.parametrize("fmt", ["console", "json"])
async def test_a_text_frame_that_is_not_utf8_is_one_info_line(
    monkeypatch: pytest.MonkeyPatch,
    make_settings: SettingsFactory,
    people: PersonFactory,
    fmt: str,
) -> None:
    """(Chaos QA: uvicorn logs each such frame as an error with a traceback: 307 in three
    minutes from 20 sockets.) The socket is closed with 1007, as before, and the log gets
    one info line, no traceback."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging(fmt, "INFO")
    async with live_server(make_settings()) as server:
        alice = people(server)
        await alice.create(nickname="alice")
        socket = await alice.connect()
        await socket.state()
        await socket.connection.send(b"\xff\xfe not UTF-8", text=True)
        assert await socket.closed_with() == 1007
    written = stream.getvalue()
    assert "Traceback" not in written
    assert "Invalid UTF-8" not in written
    [line] = [line for line in written.splitlines() if "not UTF-8 (1007)" in line]
    assert "info" in line
