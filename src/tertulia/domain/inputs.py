"""Validation of a message sent by a client (PROTOCOL 5.3), for REST and WebSocket alike.

Plain code rather than a model class: this runs for every message, and each rule maps to
one DRF-shaped error text that clients of the original may have seen.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import idna

from tertulia.domain.ids import canonical_id
from tertulia.domain.model import FILE_TYPES, MessageType
from tertulia.errors import ValidationFailed

MAX_TEXT = 4000
MAX_LOCAL_ID = 32
MAX_OPTIONS = 100
MAX_OPTION_TEXT = 1000
MAX_COMMAND = 1000
MAX_URL = 1000
CLIENT_TYPES = frozenset(t.value for t in MessageType if t is not MessageType.SYSTEM)
NULL_CHARACTERS = "Null characters are not allowed."
"""DRF's text for a NUL in a string field (PostgreSQL cannot store one in text)."""


@dataclass(slots=True)
class NewMessage:
    """A validated message from a client, before the conversation's rules are applied
    (not frozen, for speed: see :class:`tertulia.domain.model.Message`)."""

    type: MessageType
    text: str = ""
    local_id: str | None = None
    quoted_message_id: str | None = None
    options: tuple[str, ...] = ()
    external_file_url: str | None = None
    command: str | dict[str, Any] | None = None


def _string(errors: dict[str, list[str]], key: str, value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors[key] = ["Not a valid string."]
        return None
    if "\x00" in value:
        errors[key] = [NULL_CHARACTERS]
        return None
    text = value.strip()
    if len(text) > limit:
        errors[key] = [f"Ensure this field has no more than {limit} characters."]
        return None
    return text


_NEVER_IN_URLS = frozenset('<>"{}|\\^`')
"""Characters a URL may only hold percent-encoded (RFC 3986), beside spaces and controls."""


def _valid_url(url: str, schemes: frozenset[str]) -> bool:
    """An absolute URL of one of ``schemes`` with a valid host and, if any, a port in
    1-65535, as the original's validator (Django's) took them: nothing in it a URL may only
    hold percent-encoded (no space, control, format or bidirectional character anywhere),
    and a host that is an IP address, ``localhost``, or a domain name with a top-level
    domain (international names as IDNA 2008 allows them)."""
    for char in url:
        if char in _NEVER_IN_URLS or unicodedata.category(char)[0] in "CZ":
            return False
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port out of range
    except ValueError:  # an unclosed IPv6 bracket, say
        return False
    return parts.scheme.lower() in schemes and port != 0 and _valid_host(parts.hostname)


def _valid_host(host: str | None) -> bool:
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    try:
        name = idna.encode(host.removesuffix("."), uts46=True, std3_rules=True).decode()
    except (idna.IDNAError, UnicodeError):  # an empty or over-long label, a hyphen at an end
        return False
    labels = name.split(".")
    if len(labels) == 1:
        return name == "localhost"
    return not labels[-1].isdigit()  # all digits: an IP address gone wrong, not a domain


def parse_new_message(
    data: Mapping[str, Any], *, url_schemes: frozenset[str] = frozenset({"http", "https"})
) -> NewMessage:
    """Validate ``data`` (the input fields of PROTOCOL 5.3); unknown keys are ignored.

    Raises:
        ValidationFailed: with DRF-shaped field errors.
    """
    errors: dict[str, list[str]] = {}

    raw_type = data.get("type")
    kind: MessageType | None = None
    if raw_type is None:
        errors["type"] = ["This field is required."]
    elif raw_type == "S":
        errors["type"] = ["You cannot create system messages."]
    elif not isinstance(raw_type, str) or raw_type not in CLIENT_TYPES:
        errors["type"] = [f'"{raw_type}" is not a valid choice.']
    else:
        kind = MessageType(raw_type)

    text = _string(errors, "text", data.get("text"), MAX_TEXT) or ""
    local_id = _string(errors, "local_id", data.get("local_id"), MAX_LOCAL_ID) or None

    quoted: str | None = None
    raw_quoted = data.get("quoted_message_id")
    if raw_quoted not in (None, ""):
        quoted = canonical_id(raw_quoted)
        if quoted is None:
            errors["quoted_message_id"] = ["Must be a valid UUID."]

    options: tuple[str, ...] = ()
    raw_options = data.get("options")
    if raw_options is not None:
        if not isinstance(raw_options, list):
            errors["options"] = [
                f'Expected a list of items but got type "{type(raw_options).__name__}".'
            ]
        elif len(raw_options) > MAX_OPTIONS:
            errors["options"] = [f"Ensure this field has no more than {MAX_OPTIONS} elements."]
        elif not all(isinstance(o, str) for o in raw_options):
            errors["options"] = ["Options must be strings."]
        elif any(len(o) > MAX_OPTION_TEXT for o in raw_options):
            errors["options"] = [
                f"Ensure each option has no more than {MAX_OPTION_TEXT} characters."
            ]
        elif any("\x00" in o for o in raw_options):
            errors["options"] = [NULL_CHARACTERS]
        else:
            options = tuple(raw_options)

    url = _string(errors, "external_file_url", data.get("external_file_url"), MAX_URL) or None
    if url is not None and not _valid_url(url, url_schemes):
        errors["external_file_url"] = ["Enter a valid URL."]
        url = None
    if kind not in FILE_TYPES:
        url = None  # only kept for file types, as in BLAB

    command = data.get("command")
    if command is not None:
        if isinstance(command, str):
            if len(command) > MAX_COMMAND:
                errors["command"] = [
                    f"Ensure this field has no more than {MAX_COMMAND} characters."
                ]
            elif "\x00" in command:
                errors["command"] = [NULL_CHARACTERS]
        elif not isinstance(command, dict):
            errors["command"] = ["A command is a JSON object, or a string holding one."]

    if errors or kind is None:
        raise ValidationFailed(errors)
    return NewMessage(
        type=kind,
        text=text,
        local_id=local_id,
        quoted_message_id=quoted,
        options=options,
        external_file_url=url,
        command=command,
    )
