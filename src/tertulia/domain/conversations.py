"""Rules for creating and joining conversations: nicknames, names, requested bots.

A person may not take a bot's name (:func:`refuse_bots_name`): the web client tells a bot
from a person only by a small badge, so "ECHO" written by a person read as the bot's. Names
are compared as they read (:func:`name_as_read`), so that invisible characters, accents,
ligatures, full-width letters and case are no disguise. Two people may share a name.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Collection, Iterable
from typing import Any

from tertulia.domain.inputs import NULL_CHARACTERS
from tertulia.errors import ValidationFailed

MAX_NAME = 50

CONTROL_CHARACTERS = "Control characters are not allowed."
"""A name (of a conversation, a participant, a nickname) with a control character: line
breaks (also Unicode's line and paragraph separators), tabs, escapes, the bidirectional
overrides that make a name read backwards, the interlinear annotation marks."""

_FORMAT_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufff9\ufffa\ufffb"
)
NOTHING_VISIBLE = "Enter a name that shows: this one is only invisible characters."

_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
"""Letters and symbols that show as nothing (the Hangul fillers, the blank Braille pattern)."""


def has_controls(name: str) -> bool:
    """True when ``name`` holds a character of :data:`CONTROL_CHARACTERS`."""
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in _FORMAT_CONTROLS for c in name)


def shows_nothing(name: str) -> bool:
    """True when no character of ``name`` is visible: spaces, zero-width and other format
    characters, combining marks with nothing to combine with, blank letters."""
    return all(
        c in _BLANK_LETTERS or unicodedata.category(c) in ("Cf", "Mn", "Me", "Zs", "Zl", "Zp")
        for c in name
    )


def clean_conversation_name(value: Any) -> str | None:
    """A conversation name: optional, trimmed, at most 50 characters, no control characters;
    one that shows nothing is ``""`` (unnamed).

    Raises:
        ValidationFailed: ``{"name": [...]}``.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed({"name": ["Not a valid string."]})
    if "\x00" in value:
        raise ValidationFailed({"name": [NULL_CHARACTERS]})
    name = value.strip()
    if has_controls(name):
        raise ValidationFailed({"name": [CONTROL_CHARACTERS]})
    if shows_nothing(name):
        return ""
    if len(name) > MAX_NAME:
        raise ValidationFailed(
            {"name": [f"Ensure this field has no more than {MAX_NAME} characters."]}
        )
    return name


def clean_nickname(value: Any) -> str | None:
    """A nickname: ``None`` when absent or blank, or when it shows nothing (fall back to the
    session's, then ANON_); no control characters.

    Raises:
        ValidationFailed: a bare list, as BLAB's ``["nickname must be a string"]``.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed(bare=["nickname must be a string"])
    if "\x00" in value:
        raise ValidationFailed(bare=["nickname must not contain null characters"])
    nickname = value.strip()
    if has_controls(nickname):
        raise ValidationFailed(bare=["nickname must not contain control characters"])
    if shows_nothing(nickname):
        return None
    if len(nickname) > MAX_NAME:
        raise ValidationFailed(bare=[f"nickname must have at most {MAX_NAME} characters"])
    return nickname


def clean_participant_name(value: Any) -> str:
    """A participant's new name (renaming oneself): 1 to 50 characters once trimmed, at
    least one of them visible, no control characters.

    Raises:
        ValidationFailed: ``{"name": [...]}``.
    """
    if value is not None and not isinstance(value, str):
        raise ValidationFailed({"name": ["Not a valid string."]})
    name = value or ""
    if "\x00" in name:
        raise ValidationFailed({"name": [NULL_CHARACTERS]})
    name = name.strip()
    if has_controls(name):
        raise ValidationFailed({"name": [CONTROL_CHARACTERS]})
    if name and shows_nothing(name):
        raise ValidationFailed({"name": [NOTHING_VISIBLE]})
    if not 1 <= len(name) <= MAX_NAME:
        raise ValidationFailed({"name": [f"Enter 1 to {MAX_NAME} characters."]})
    return name


def name_as_read(name: str) -> str:
    """``name`` reduced to what a reader takes it for, to compare names.

    Decomposed (NFKD: ligatures, full-width and other compatibility forms become plain
    letters, accented letters a letter and its marks), without format characters
    (category Cf: zero-width joiners and spaces, direction marks), combining marks (Mn,
    Me: accents, the invisible grapheme joiner, variation selectors) and blank letters,
    then composed again, case-folded, and its spaces trimmed and run together (a page shows
    a run of spaces as one).
    """
    decomposed = unicodedata.normalize("NFKD", name)
    kept = "".join(
        c
        for c in decomposed
        if c not in _BLANK_LETTERS and unicodedata.category(c) not in ("Cf", "Mn", "Me")
    )
    return " ".join(unicodedata.normalize("NFKC", kept.casefold()).split())


def bot_name_read_in(name: str, bot_names: Iterable[str]) -> str | None:
    """The bot's name (of ``bot_names``) that ``name`` reads as (:func:`name_as_read`), or
    None."""
    read = name_as_read(name)
    return next((bot for bot in bot_names if name_as_read(bot) == read), None)


def refuse_bots_name(name: str, bot_names: Iterable[str], *, nickname: bool) -> None:
    """Refuse a person's name that reads as a bot's (the installed bots', the manager's,
    the conversation's bots'); other people's names are no bar.

    Args:
        nickname: the name came as ``nickname`` (create, join: a bare list, as BLAB's
            nickname errors) rather than as ``name`` (rename: a field error).

    Raises:
        ValidationFailed: with the bot's name.
    """
    bot = bot_name_read_in(name, bot_names)
    if bot is None:
        return
    if nickname:
        raise ValidationFailed(bare=[f"nickname {bot!r} is a bot's name; choose another"])
    raise ValidationFailed({"name": [f"{bot!r} is a bot's name; choose another."]})


def anonymous_name(participant_id: str) -> str:
    return f"ANON_{participant_id}"


def clean_bot_names(
    value: Any, *, installed: Collection[str], manager: str | None, most: int | None = None
) -> list[str]:
    """The bots requested at creation: known, not the manager, no duplicates, at most
    ``most`` (what ``max_participants`` leaves once the person and the manager are counted).

    Raises:
        ValidationFailed: bare lists, as BLAB's ``["Invalid bot array:..."]``.
    """
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(b, str) for b in value):
        raise ValidationFailed(bare=[f"Invalid bot array:{value!r}"])
    unknown = [b for b in value if b not in installed or b == manager]
    if unknown:
        raise ValidationFailed(bare=[f"Bot(s) not found: {unknown!r}"])
    # Counted in one pass: list.count per name was quadratic, and a 64 KiB body of
    # "ECHO"s held the event loop for most of a second.
    duplicates = sorted(name for name, times in Counter(value).items() if times > 1)
    if duplicates:
        raise ValidationFailed(bare=[f"Duplicate bot(s): {duplicates!r}"])
    if most is not None and len(value) > most:
        raise ValidationFailed(
            bare=[
                f"Too many bots: {len(value)}; a conversation starts with at most {most} "
                "(max_participants)"
            ]
        )
    return list(value)
