"""Manager commands (PROTOCOL 7.2): parsing and checking, without touching anything.

A command is a JSON object, sent as a string holding JSON (the bot library's way) or as an
object. Every part is checked before anything is applied, so an invalid command changes
nothing (the original applied parts of it and then crashed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from tertulia.domain.ids import canonical_id
from tertulia.domain.inputs import (
    MAX_COMMAND,
    MAX_LOCAL_ID,
    MAX_OPTION_TEXT,
    MAX_OPTIONS,
    MAX_TEXT,
)
from tertulia.domain.model import MessageType
from tertulia.errors import CommandError

Action = Literal["approve", "redirect"]
_MESSAGE_TYPES = frozenset(t.value for t in MessageType)
_ID_OVERRIDES = frozenset({"id", "sender_id", "quoted_message_id"})
_KNOWN_KEYS = frozenset(
    {"action", "bots", "overrides", "self_approve", "self_redirect", "on_behalf_of"}
)


@dataclass(frozen=True, slots=True)
class ManagerCommand:
    """A parsed command. The empty command (``ManagerCommand()``) does nothing."""

    action: Action | None = None
    bots: tuple[str, ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict)
    self_approve: bool = False
    self_redirect: bool = False
    on_behalf_of: str | None = None

    @property
    def is_empty(self) -> bool:
        return self == ManagerCommand()


def parse_command(raw: str | dict[str, Any] | None) -> ManagerCommand:
    """Parse a command string or object.

    Raises:
        CommandError: malformed JSON, not an object, a part of the wrong type, or a
            redirect or self_redirect without ``bots``.
    """
    if raw is None or raw == "":
        return ManagerCommand()
    if isinstance(raw, str):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise CommandError("command is not valid JSON") from None
    else:
        data = raw
    if not isinstance(data, dict):
        raise CommandError("command must be a JSON object")
    if not isinstance(raw, str):
        # A string is held to MAX_COMMAND characters (domain/inputs.py); an object is
        # stored and delivered alike, so it is held to the same size as JSON.
        try:
            size = len(orjson.dumps(data).decode())
        except orjson.JSONEncodeError:
            raise CommandError("command holds a value JSON cannot carry") from None
        if size > MAX_COMMAND:
            raise CommandError(f"command must have at most {MAX_COMMAND} characters as JSON")

    action = data.get("action")
    if action is not None and action not in ("approve", "redirect"):
        raise CommandError(f"unknown action: {action!r}")

    bots = data.get("bots", [])
    if bots is None:
        bots = []
    if not isinstance(bots, list) or not all(isinstance(b, str) and b for b in bots):
        raise CommandError("bots must be an array of bot names or participant ids")
    # A bot named twice gets one copy: each copy is answered, and each answer shown.
    bots = list(dict.fromkeys(bots))

    overrides = data.get("overrides", {})
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise CommandError("overrides must be an object")
    overrides = checked_overrides(overrides)

    flags = {}
    for key in ("self_approve", "self_redirect"):
        value = data.get(key, False)
        if value is None:
            value = False
        if not isinstance(value, bool):
            raise CommandError(f"{key} must be true or false")
        flags[key] = value

    for wanted, key in (
        (action == "redirect", "redirect"),
        (flags["self_redirect"], "self_redirect"),
    ):
        if wanted and data.get("bots") is None:
            # BLAB did nothing, silently: a manager's typo ("bot") left a person unanswered.
            # An empty list is taken as BLAB took it (a list a manager computed, with no bot
            # in it this time: its self_approved message is still shown).
            unknown = sorted(unknown_keys(data))
            hint = f" (unknown keys: {', '.join(unknown)})" if unknown else ""
            raise CommandError(f"{key} needs bots: a list of bot names or ids{hint}")

    on_behalf_of = data.get("on_behalf_of")
    if on_behalf_of is not None:
        on_behalf_of = canonical_id(on_behalf_of)
        if on_behalf_of is None:
            raise CommandError("on_behalf_of must be a participant id")

    return ManagerCommand(
        action=action,
        bots=tuple(bots),
        overrides=dict(overrides),
        self_approve=flags["self_approve"],
        self_redirect=flags["self_redirect"],
        on_behalf_of=on_behalf_of,
    )


def checked_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """Refuse overrides that would make a copy unreadable to bots, or unanswerable.

    Keys of the message representation must keep their wire types (the bot library and
    internal bots build their message from ``id``, ``time``, ``type`` and ``sent_by_human``
    and fail on anything else), and hold what a message may hold: a bot that repeats a
    copy's text or options (ECHO does) would otherwise send an answer that is refused, and
    the person would get none. ``id``, ``sender_id`` and ``quoted_message_id`` are ids
    (written canonically here; that they name a message and a participant of the
    conversation is the chat's check; a quote may be null), a ``local_id`` is what a
    client's may be, and ``type`` is not ``S``. Other keys are added to the copy as they
    are.

    Returns:
        the overrides, ids written canonically.

    Raises:
        CommandError: an override the copy cannot carry.
    """
    for key, value in overrides.items():
        rule = _OVERRIDE_RULES.get(key)
        if rule is not None and not rule(value):
            raise CommandError(f"overrides: {key} has the wrong type or value")
    # Ids in the form the server writes them, as the bot will quote or name them.
    return {
        k: canonical_id(v) if k in _ID_OVERRIDES and v is not None else v
        for k, v in overrides.items()
    }


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and canonical_id(value) is not None


def _is_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _id_or_none(value: Any) -> bool:
    return value is None or _is_id(value)


def _local_id(value: Any) -> bool:
    return _string_or_none(value) and (value is None or len(value) <= MAX_LOCAL_ID)


def _string_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and "\x00" not in value)


def _text(value: Any) -> bool:
    return _string_or_none(value) and (value is None or len(value.strip()) <= MAX_TEXT)


def _options(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) <= MAX_OPTIONS
        and all(
            isinstance(o, str) and "\x00" not in o and len(o.strip()) <= MAX_OPTION_TEXT
            for o in value
        )
    )


_OVERRIDE_RULES: dict[str, Callable[[Any], bool]] = {
    # The copy's id is what the bot quotes in its answer, which is refused unless it names
    # a message of the conversation (checked by the chat), and a sender is a participant.
    "id": _is_id,
    "time": _is_time,
    # A system message has an event and metadata a copy cannot have (PROTOCOL 5.1).
    "type": lambda v: isinstance(v, str) and v in _MESSAGE_TYPES and v != MessageType.SYSTEM,
    "sent_by_human": lambda v: isinstance(v, bool),
    "text": _text,
    "local_id": _local_id,
    "sender_id": _is_id,
    "quoted_message_id": _id_or_none,
    "event": _string_or_none,
    "file_url": _string_or_none,
    "file_name": _string_or_none,
    "file_size": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
    "options": _options,
    "additional_metadata": lambda v: v is None or isinstance(v, dict),
}


def unknown_keys(raw: dict[str, Any]) -> set[str]:
    """Keys of a command object that no rule reads (worth a log line, not an error)."""
    return set(raw) - _KNOWN_KEYS
