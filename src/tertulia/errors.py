"""Tertulia's errors: one root, a stable ``code`` on each, data rather than prose.

The tree::

    TertuliaError                     code            HTTP
    ├── ConfigurationError            bad_config      (start-up only)
    ├── ValidationFailed              invalid         400  field errors: {"field": ["text", ...]}
    │   └── CommandError              bad_command     400  a manager command that cannot be applied
    ├── PermissionDenied              not_participant 403  (WebSocket close 4403)
    ├── NotFound                      not_found       404  (WebSocket close 4404)
    │   └── ConversationGone          not_found       404  deleted while served (WS close 4404)
    ├── Conflict                      conflict        409  a concurrent change won (storage)
    ├── PayloadTooLarge               too_large       413
    │   └── FilesBudgetExceeded       too_large       413  a conversation's files at budget
    ├── UnsupportedMediaType          media_type      415
    ├── Throttled                     throttled       429  (WebSocket: an error frame)
    ├── InsufficientStorage           no_space        507  the media disk is at its floor
    └── Unavailable                   unavailable     503  the server is stopping; try again
        └── ServiceUnavailable        unavailable     503  a service it needs cannot be reached
            ├── DatabaseUnavailable                        the database (WebSocket: an error
            │                                              frame, or close 1013 while opening)
            └── BrokerUnavailable                          the Redis broker

The web layer maps them to replies in one place (``tertulia.web.errors``); the WebSocket
endpoint turns them into ``{"error": {"code", "detail", "local_id", ...}}`` frames, whose
``detail`` is always the text and whose further keys are :meth:`TertuliaError.data`.
Anything else that escapes is a bug: it is logged with the conversation and participant
ids and answered with a generic error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


def describe(error: BaseException) -> str:
    """An error in one line, for a log or a ``reason`` (``ConnectionError: Error 111
    connecting to ...``; the type alone when it says nothing more)."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class TertuliaError(Exception):
    """Root of every error Tertulia raises on purpose.

    Attributes:
        code: a stable machine-readable code.
        status: the HTTP status it maps to.
        detail: a short human-readable text.
    """

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail

    def body(self) -> Any:
        """The JSON body of the HTTP reply (DRF shapes, plus ``code``)."""
        return {"detail": self.detail, "code": self.code}

    def headers(self) -> dict[str, str] | None:
        """Headers of the HTTP reply beyond the usual (``Retry-After``, say)."""
        return None

    def data(self) -> dict[str, Any]:
        """What a machine reads beside ``code`` and the text ``detail`` (the keys a
        WebSocket ``error`` frame adds: ``errors``, ``retry_after``); none by default."""
        return {}


class ConfigurationError(TertuliaError):
    """The configuration cannot work; raised at start-up only."""

    code = "bad_config"


class ValidationFailed(TertuliaError):
    """Input that breaks a rule.

    Args:
        errors: field name -> list of texts (DRF's shape), or ``None`` with ``detail`` /
            ``bare`` for the other DRF shapes.
        bare: a list of texts to send as a bare JSON list (DRF's plain ValidationError).
    """

    code = "invalid"
    status = 400

    def __init__(
        self,
        errors: Mapping[str, Sequence[str]] | None = None,
        *,
        detail: str | None = None,
        bare: Sequence[str] | None = None,
    ) -> None:
        self.errors = {k: list(v) for k, v in (errors or {}).items()}
        self.bare = list(bare) if bare is not None else None
        text = detail or "; ".join(
            [f"{k}: {' '.join(v)}" for k, v in self.errors.items()] + list(self.bare or [])
        )
        super().__init__(text or "Invalid input.")
        self._detail_only = detail is not None and not self.errors and self.bare is None

    def body(self) -> Any:
        if self.bare is not None:
            return self.bare
        if self._detail_only:
            return {"detail": self.detail, "code": self.code}
        return {**self.errors, "code": self.code}

    def data(self) -> dict[str, Any]:
        return {"errors": self.errors} if self.errors else {}


class IncompleteBody(ValidationFailed):
    """A request's body that never arrived whole (the client went away or stopped sending):
    the connection is closed after the answer, so that nothing more is read from it."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail)

    def headers(self) -> dict[str, str] | None:
        return {"Connection": "close"}


class CommandError(ValidationFailed):
    """A manager command that cannot be applied; nothing of it was done."""

    code = "bad_command"

    def __init__(self, detail: str) -> None:
        super().__init__({"command": [detail]})


class PermissionDenied(TertuliaError):
    """The session may not do this (usually: not a participant of the conversation)."""

    code = "not_participant"
    status = 403

    def __init__(self, detail: str = "You do not have permission to perform this action.") -> None:
        super().__init__(detail)


class NotFound(TertuliaError):
    """No such thing."""

    code = "not_found"
    status = 404

    def __init__(self, detail: str = "Not found.") -> None:
        super().__init__(detail)


class ConversationGone(NotFound):
    """The conversation was deleted (``tertulia delete``) while this process served it.

    Its sockets are closed with 4404, and the process forgets what it kept of it."""

    def __init__(self, detail: str = "This conversation no longer exists.") -> None:
        super().__init__(detail)


class Conflict(TertuliaError):
    """A database constraint refused a change (usually: a concurrent request won).

    Raised by the storage layer for broken uniqueness or foreign-key constraints, and for a
    transaction PostgreSQL ended to let another one through (a deadlock, a serialization
    failure); the transaction that met it has been rolled back.

    Attributes:
        reason: the driver's words (the constraint, the key), for the log; not for clients.
    """

    code = "conflict"
    status = 409

    def __init__(
        self, detail: str = "The change conflicts with another one.", *, reason: str = ""
    ) -> None:
        super().__init__(detail)
        self.reason = reason


class TurnLost(Conflict):
    """PostgreSQL ended the transaction to let another one through (a deadlock, a
    serialization failure): nothing of it was stored, and the same change may be tried
    again (:func:`tertulia.storage.database.again_if_turn_lost`)."""


class PayloadTooLarge(TertuliaError):
    """A body or file over its limit."""

    code = "too_large"
    status = 413


class FilesBudgetExceeded(PayloadTooLarge):
    """An uploaded file that would take its conversation's stored files past their budget
    (``limits.MAX_CONVERSATION_FILES_SIZE``).

    Args:
        budget: the budget in bytes, also in the body (``budget``) and in ``data``.
    """

    def __init__(self, budget: int) -> None:
        super().__init__(
            f"This conversation's files may take at most {budget} bytes in all, and this "
            "file would pass that."
        )
        self.budget = budget

    def body(self) -> Any:
        return {**super().body(), "budget": self.budget}

    def data(self) -> dict[str, Any]:
        return {"budget": self.budget}


class UnsupportedMediaType(TertuliaError):
    """A body of a content type the endpoint does not take."""

    code = "media_type"
    status = 415


class Throttled(TertuliaError):
    """Too many requests or messages; try again later.

    Args:
        retry_after: whole seconds until one more would be taken, when known: the body's
            ``retry_after`` and the HTTP ``Retry-After`` header.
    """

    code = "throttled"
    status = 429

    def __init__(self, detail: str = "Request was throttled.", retry_after: int | None = None):
        super().__init__(detail)
        self.retry_after = retry_after

    def body(self) -> Any:
        found = super().body()
        if self.retry_after is not None:
            found["retry_after"] = self.retry_after
        return found

    def headers(self) -> dict[str, str] | None:
        return None if self.retry_after is None else {"Retry-After": str(self.retry_after)}

    def data(self) -> dict[str, Any]:
        return {} if self.retry_after is None else {"retry_after": self.retry_after}


class InsufficientStorage(TertuliaError):
    """An uploaded file refused because storing it would leave the media file system with
    less free space than ``media_min_free`` (the floor kept for the database and the
    logs). 507 rather than 503: the server is up and serves everything but new files, and
    the same upload will be refused again until an operator frees space (a 503 would tell
    load balancers and retrying clients the server is down, and to try again soon).

    Args:
        free: bytes the file system had free, for the log (not for clients).
        floor: ``media_min_free``, for the log.
    """

    code = "no_space"
    status = 507
    TEXT = "The server has no room for more files now."

    def __init__(self, *, free: int, floor: int) -> None:
        super().__init__(self.TEXT)
        self.free = free
        self.floor = floor


class Unavailable(TertuliaError):
    """The request could not be served now, through no fault of its own (the server is
    stopping for a restart); the same request will be taken later.

    Args:
        retry_after: whole seconds after which to try again (``Retry-After``).
    """

    code = "unavailable"
    status = 503

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    def body(self) -> Any:
        return {**super().body(), "retry_after": self.retry_after}

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)}

    def data(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after}


class ServiceUnavailable(Unavailable):
    """A service the server needs (its database, its Redis broker) could not be reached;
    raised by the layer that talks to it in place of the driver's error. An outage, not a
    bug: logged as one warning with ``reason``, no traceback (:mod:`tertulia.logs`).

    Args:
        reason: the driver's error in one line, for the log (not for clients).
    """

    RETRY_AFTER = 5
    TEXT = "A service the server needs cannot be reached; try again shortly."
    service = "service"  # what the log lines call it

    def __init__(self, reason: str) -> None:
        super().__init__(self.TEXT, retry_after=self.RETRY_AFTER)
        self.reason = reason


class DatabaseUnavailable(ServiceUnavailable):
    """The database could not be reached (refused, cut off, shutting down, or, for SQLite,
    still locked by another process after ``busy_timeout``). What the use case had begun is
    rolled back (or, when the connection broke during its commit, may or may not have been
    committed: a message sent again with its ``local_id`` is stored once)."""

    TEXT = "The database cannot be reached; try again shortly."
    service = "database"


class BrokerUnavailable(ServiceUnavailable):
    """The Redis broker could not be reached (who is online, a socket's joining or leaving)."""

    TEXT = "The message broker cannot be reached; try again shortly."
    service = "broker"


class SchemaNotCurrent(TertuliaError):
    """A database the command only reads or edits is not at this code's schema revision."""

    code = "schema_not_current"


class SchemaNewer(SchemaNotCurrent):
    """A newer version of Tertulia migrated the database: this code cannot read it, nor
    migrate it. Starting again would not help (``tertulia`` commands end with status 2, as
    for a configuration error, so that systemd does not restart it every 2 s)."""
