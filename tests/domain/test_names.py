"""Names people see (a conversation's, a participant's, a nickname) hold no control
characters and show something: a line break or an escape would break every list they are
shown in, a bidirectional override makes a name read as another ("\u202eecila" shows as
"alice" reversed), and a name of zero-width characters looks like no name at all."""

from __future__ import annotations

import pytest

from tertulia.domain.conversations import (
    CONTROL_CHARACTERS,
    NOTHING_VISIBLE,
    clean_conversation_name,
    clean_nickname,
    clean_participant_name,
)
from tertulia.errors import ValidationFailed

WITH_CONTROLS = [
    "a\nb",
    "a\tb",
    "a\x1b[31mb",
    "a\x7fb",
    "a\u2028b",  # line separator
    "a\u2029b",  # paragraph separator
    "a\ufff9b\ufffbc",  # interlinear annotation
    "\u202eecila",
    "a\u2066b\u2069",
]
SHOWING_NOTHING = ["\u200b", "\u200b\u200d\u2060", " \u3164 ", "\ufeff", "\u0301", "\u2800"]
FINE = ["Ana", "José", "عائشة", "山田 太郎", "👩\u200d💻 dev", "x\u0301", "a\u200fb"]


@pytest.mark.parametrize("name", WITH_CONTROLS)
def test_names_with_control_characters_are_refused(name: str) -> None:
    with pytest.raises(ValidationFailed) as conversation:
        clean_conversation_name(name)
    assert conversation.value.body()["name"] == [CONTROL_CHARACTERS]
    with pytest.raises(ValidationFailed) as participant:
        clean_participant_name(name)
    assert participant.value.body()["name"] == [CONTROL_CHARACTERS]
    with pytest.raises(ValidationFailed) as nickname:
        clean_nickname(name)
    assert nickname.value.body() == ["nickname must not contain control characters"]


@pytest.mark.parametrize("name", SHOWING_NOTHING)
def test_names_showing_nothing_count_as_no_name(name: str) -> None:
    """As a blank one: a nickname falls back (to the session's, then ANON_), a conversation
    is unnamed, and renaming oneself to it is refused."""
    assert clean_nickname(name) is None
    assert clean_conversation_name(name) == ""
    with pytest.raises(ValidationFailed) as participant:
        clean_participant_name(name)
    assert participant.value.body()["name"] == [NOTHING_VISIBLE]


def test_a_long_run_of_invisible_characters_is_no_name_either() -> None:
    """Whatever its length, the same way for a conversation, a nickname and a rename."""
    assert clean_conversation_name("\u200b" * 60) == ""
    assert clean_nickname("\u200b" * 60) is None
    with pytest.raises(ValidationFailed) as participant:
        clean_participant_name("\u200b" * 60)
    assert participant.value.body()["name"] == [NOTHING_VISIBLE]


@pytest.mark.parametrize("name", FINE)
def test_names_in_any_script_with_joiners_and_marks_are_kept(name: str) -> None:
    """Zero-width joiners (emoji sequences), combining accents and direction marks are part
    of real names; only a name made of nothing else is blank."""
    assert clean_nickname(name) == name
    assert clean_conversation_name(f" {name} ") == name
    assert clean_participant_name(name) == name


def test_outer_spaces_are_trimmed_before_the_rules() -> None:
    """A line break at either end is trimmed like a space, as before; inside, it is refused."""
    assert clean_nickname("\n Ana \n") == "Ana"
    assert clean_participant_name("\tAna\r\n") == "Ana"
