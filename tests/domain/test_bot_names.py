"""The bots requested when a conversation is created (BLAB's bare-list errors)."""

from __future__ import annotations

import pytest

from tertulia.domain.conversations import clean_bot_names
from tertulia.errors import ValidationFailed

INSTALLED = {"ECHO", "Calculator", "Manager"}


def _refusal(value: object) -> object:
    with pytest.raises(ValidationFailed) as refused:
        clean_bot_names(value, installed=INSTALLED, manager="Manager")
    return refused.value.body()


def test_known_bots_pass_in_order() -> None:
    assert clean_bot_names(["Calculator", "ECHO"], installed=INSTALLED, manager="Manager") == [
        "Calculator",
        "ECHO",
    ]
    assert clean_bot_names(None, installed=INSTALLED, manager=None) == []


def test_unknown_bots_and_the_manager_are_refused() -> None:
    assert _refusal(["ECHO", "Nobody"]) == ["Bot(s) not found: ['Nobody']"]
    assert _refusal(["Manager"]) == ["Bot(s) not found: ['Manager']"]
    assert _refusal("ECHO") == ["Invalid bot array:'ECHO'"]
    assert _refusal(["ECHO", 5]) == ["Invalid bot array:['ECHO', 5]"]


def test_duplicates_are_named_once_each_however_long_the_list() -> None:
    """The body cap allows about 9,000 names: each duplicate is reported once, sorted (the
    names are counted in one pass, not once per name)."""
    assert _refusal(["ECHO", "Calculator", "ECHO"]) == ["Duplicate bot(s): ['ECHO']"]
    many = ["ECHO", "Calculator"] * 4650
    assert _refusal(many) == ["Duplicate bot(s): ['Calculator', 'ECHO']"]


def test_no_more_bots_than_the_conversation_holds() -> None:
    """(REST QA F1: ten bots and a limit of three made a conversation of eleven; only joins
    were counted.) ``most``: the bots a conversation may start with, once its person and
    the manager are counted."""
    three = ["ECHO", "Calculator", "Other"]
    installed = INSTALLED | {"Other"}
    assert clean_bot_names(three, installed=installed, manager="Manager", most=3) == three
    with pytest.raises(ValidationFailed) as refused:
        clean_bot_names(three, installed=installed, manager="Manager", most=2)
    assert refused.value.body() == [
        "Too many bots: 3; a conversation starts with at most 2 (max_participants)"
    ]
    assert clean_bot_names([], installed=installed, manager=None, most=0) == []
