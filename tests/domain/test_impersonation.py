"""A person may not take a bot's name (found by QA: a person named "ECHO", "\u200eECHO" or
"ECH\u200dO" read as the bot, told apart only by a small badge). Names are compared as they
read; people may share names."""

from __future__ import annotations

import pytest

from tertulia.domain.conversations import bot_name_read_in, name_as_read, refuse_bots_name
from tertulia.errors import ValidationFailed

BOTS = {"ECHO", "Calculator", "Big Manager"}

DISGUISED = [
    "ECHO",
    "echo",
    "Echo",
    "\u200eECHO",  # a left-to-right mark before it
    "ECH\u200dO",  # a zero-width joiner inside
    "\u200bECHO\u2060",  # zero-width space, word joiner
    "E\u034fCHO",  # the combining grapheme joiner (invisible)
    "ECHO\ufe0f",  # a variation selector
    "ÉCHO",  # an accent, precomposed
    "ECHO\u0301",  # and combining
    "\uff25\uff23\uff28\uff2f",  # full-width letters
    "ECHO\u3164",  # a Hangul filler (shows nothing)
    "big  manager",  # a run of spaces shows as one
    "BIG\u00a0MANAGER",  # a no-break space
    "calculator",
]


@pytest.mark.parametrize("name", DISGUISED)
def test_a_bots_name_in_disguise_reads_as_the_bot(name: str) -> None:
    """Case, format characters, combining marks, compatibility forms and spacing are no
    disguise: the name reads as the bot's."""
    assert bot_name_read_in(name, BOTS) in BOTS


@pytest.mark.parametrize("name", ["ECHOES", "Ana", "Calc", "E C H O", "ECH0", "Manager"])
def test_other_names_are_not_a_bots(name: str) -> None:
    """A name that reads differently (another word, a digit for a letter, part of a bot's
    name) is no bot's."""
    assert bot_name_read_in(name, BOTS) is None


def test_the_refusal_names_the_bot_in_each_shape() -> None:
    """A nickname (create, join) is refused with a bare list as BLAB's nickname errors, a
    new name (rename) with a ``name`` field error; both name the bot."""
    with pytest.raises(ValidationFailed) as as_nickname:
        refuse_bots_name("\u200eecho", BOTS, nickname=True)
    assert as_nickname.value.body() == ["nickname 'ECHO' is a bot's name; choose another"]
    with pytest.raises(ValidationFailed) as as_name:
        refuse_bots_name("ECH\u200dO", BOTS, nickname=False)
    assert as_name.value.body() == {
        "name": ["'ECHO' is a bot's name; choose another."],
        "code": "invalid",
    }
    refuse_bots_name("Ana", BOTS, nickname=True)  # (two people may both be Ana)


def test_names_read_the_same_whatever_their_form() -> None:
    """The reading is stable: composed or decomposed, any case, the same text."""
    assert name_as_read("Jos\u00e9") == name_as_read("JOSE\u0301") == "jose"
    assert name_as_read("  Ana  Maria ") == "ana maria"
