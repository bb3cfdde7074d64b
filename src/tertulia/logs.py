"""Structured logs (structlog): JSON lines or console, ids bound by the code that logs."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from typing import Any

import structlog

from tertulia.errors import ServiceUnavailable, describe

QUIET_LIBRARIES = ("httpx", "httpcore", "openai")
"""Loggers of the HTTP libraries bots use, kept to warnings whatever ``log_level`` says:
their info and debug lines carry each request's full URL (``HTTP Request: POST
https://user:password@host/hook?token=...``) and, at debug, its headers, while a bot's URL
may hold secrets that Tertulia's own lines show only redacted (``tertulia.bots.external.urls``).
Their warnings name no URL (checked for the versions pinned)."""


class QuietStopCancellations(logging.Filter):
    """Leaves out uvicorn's ``Exception in ASGI application`` when the exception is a
    ``CancelledError``: only uvicorn's own stop cancels a request's task, that request has
    been answered and logged already (:mod:`tertulia.web.stopping`), and the traceback says
    nothing more. Every other exception uvicorn reports keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        return not (
            exc_info is not None
            and isinstance(exc_info[1], asyncio.CancelledError)
            and str(record.msg).startswith("Exception in ASGI application")
        )


class ClientMistakes(logging.Filter):
    """Writes what uvicorn logs as an error with a traceback for a client's own mistake, a
    text frame that is not UTF-8 (the socket is closed with 1007, as it should be), as one
    info line without the traceback: one line per bad frame at error level, with a
    traceback each, let a client fill the log and wake whoever watches its errors."""

    MISTAKES = ("Invalid UTF-8 sequence received from client.",)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in self.MISTAKES:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = record.exc_text = None
            record.msg = "socket closed: a text frame that is not UTF-8 (1007)"
        return True


class OneLineFailures(logging.Filter):
    """Writes a library's failure that it retries by itself (asyncpg's pool reconnecting
    while the database is down, with its own backoff) as one line, the exception's type and
    text after the message, without the traceback: an outage is not a bug, and a
    traceback per attempt buries the rest of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        failure = record.exc_info[1] if record.exc_info else None
        if failure is not None:
            record.msg = f"{record.getMessage()}: {describe(failure)}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


class Outages(logging.Filter):
    """Writes a failure that is a service out of reach (the database, the Redis broker:
    :class:`tertulia.errors.ServiceUnavailable`), wherever it is logged (a request, the
    bot runner's poll, a sweep), as one warning with the driver's error and no traceback:
    an outage is not a bug, and the periodic tasks would write a traceback every few
    seconds while it lasts."""

    def filter(self, record: logging.LogRecord) -> bool:
        failure = record.exc_info[1] if record.exc_info else None
        if isinstance(failure, ServiceUnavailable):
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            if isinstance(record.msg, dict):  # (structlog's event, rendered later)
                record.msg.pop("exc_info", None)
                record.msg["level"] = "warning"
                record.msg["error"] = failure.reason
            else:
                record.msg = f"{record.getMessage()}: {failure.reason}"
                record.args = None
        return True


class SecretHeaders(logging.Filter):
    """Redacts the values of ``Cookie``, ``Set-Cookie``, ``Authorization`` and
    ``Proxy-Authorization`` in the debug lines of a library that writes an HTTP exchange's
    headers one a line (``< cookie: sessionid=...``): websockets does for each handshake,
    on the logger uvicorn hands it (``uvicorn.error``), at ``log_level = "DEBUG"``. The
    session key in them is a bearer secret; the line stays, its value ``[redacted]``."""

    HEADER = re.compile(r"^([<>] (?:proxy-)?(?:authorization|cookie|set-cookie):).*", re.I | re.S)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG and isinstance(record.msg, str):
            redacted, found = self.HEADER.subn(r"\1 [redacted]", record.getMessage())
            if found:
                record.msg, record.args = redacted, None
        return True


class Sampled:
    """Warnings of one kind written at most once every ``every`` seconds, each after the
    first saying how many of its kind were left out since the one before (``left_out``).

    For what an outage makes of every request: while the database is down each request
    and each frame is refused, and one line for each (a thousand clients retrying) would
    bury the rest of the log. The first of a kind is written at once, with its ids.

    Args:
        every: seconds between two lines of one kind (one event text).
    """

    def __init__(self, every: float) -> None:
        self.every = every
        self._kinds: dict[str, tuple[float, int]] = {}  # event -> (last written, left out)

    def warning(self, log: Any, event: str, **fields: Any) -> None:
        """``log.warning(event, **fields)``, unless a line of this event was written less
        than ``every`` seconds ago (then it is counted, for the next line to say)."""
        now = time.monotonic()
        written, left_out = self._kinds.get(event, (-self.every, 0))
        if now - written < self.every:
            self._kinds[event] = (written, left_out + 1)
            return
        self._kinds[event] = (now, 0)
        if left_out:
            fields["left_out"] = left_out
        log.warning(event, **fields)


OUTAGE_WARNING_EVERY = 10.0
"""Seconds between two lines of one kind about requests, frames and sockets refused by an
outage (the database or the broker unreachable): the server's :class:`Sampled`."""


ONE_LINE_FAILURES = ("asyncpg.pool",)
"""Loggers whose failures are written by :class:`OneLineFailures`."""


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    """Route structlog and the standard library's logging through one renderer, on
    standard error. The console format is in colour only when standard error is a terminal
    (a file, a pipe or journald gets plain text)."""
    stream = sys.stderr
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=_is_terminal(stream))
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info
            if fmt == "json"
            else structlog.processors.StackInfoRenderer(),
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(Outages())
    handler.addFilter(SecretHeaders())  # (on the handler: every logger's records pass it)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    quiet = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietStopCancellations) for f in quiet.filters):
        quiet.addFilter(QuietStopCancellations())
    if not any(isinstance(f, ClientMistakes) for f in quiet.filters):
        quiet.addFilter(ClientMistakes())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ONE_LINE_FAILURES:
        retrying = logging.getLogger(name)
        if not any(isinstance(f, OneLineFailures) for f in retrying.filters):
            retrying.addFilter(OneLineFailures())


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # (closed)
        return False
