"""The log setup: console lines in colour only on a terminal."""

from __future__ import annotations

import io
import logging

import pytest
import structlog

from tertulia.logs import configure_logging


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
