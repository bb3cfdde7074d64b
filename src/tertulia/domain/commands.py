"""Manager commands (PROTOCOL 7.2): parsing and checking, without touching anything.

A command is a JSON object, sent as a string holding JSON (the bot library's way) or as an
object. Every part is checked before anything is applied, so an invalid command changes
nothing (the original applied parts of it and then crashed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from tertulia.domain.ids import canonical_id
from tertulia.errors import CommandError

Action = Literal["approve", "redirect"]
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
        CommandError: malformed JSON, not an object, or a part of the wrong type.
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

    action = data.get("action")
    if action is not None and action not in ("approve", "redirect"):
        raise CommandError(f"unknown action: {action!r}")

    bots = data.get("bots", [])
    if bots is None:
        bots = []
    if not isinstance(bots, list) or not all(isinstance(b, str) and b for b in bots):
        raise CommandError("bots must be an array of bot names or participant ids")

    overrides = data.get("overrides", {})
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise CommandError("overrides must be an object")

    flags = {}
    for key in ("self_approve", "self_redirect"):
        value = data.get(key, False)
        if value is None:
            value = False
        if not isinstance(value, bool):
            raise CommandError(f"{key} must be true or false")
        flags[key] = value

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


def unknown_keys(raw: dict[str, Any]) -> set[str]:
    """Keys of a command object that no rule reads (worth a log line, not an error)."""
    return set(raw) - _KNOWN_KEYS
