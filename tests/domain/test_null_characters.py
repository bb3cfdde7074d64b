"""NUL characters are refused in every text a client sends (DRF's CharField does the same:
"Null characters are not allowed."). PostgreSQL cannot store them in text, so without this
rule the same input was a 400 on one database and a 500 on the other."""

from __future__ import annotations

from typing import Any

import pytest

from tertulia.domain.conversations import (
    clean_conversation_name,
    clean_nickname,
    clean_participant_name,
)
from tertulia.domain.inputs import NULL_CHARACTERS, parse_new_message
from tertulia.errors import ValidationFailed

NUL = "a\x00b"


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"text": NUL}, "text"),
        ({"local_id": NUL}, "local_id"),
        ({"options": ["yes", NUL]}, "options"),
        ({"command": NUL}, "command"),
        ({"type": "i", "external_file_url": "https://example.org/\x00.png"}, "external_file_url"),
    ],
)
def test_a_message_field_with_a_nul_is_refused(fields: dict[str, Any], key: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_new_message({"type": "T", **fields})
    assert refused.value.body()[key] == [NULL_CHARACTERS]


def test_a_message_without_nul_passes() -> None:
    assert parse_new_message({"type": "T", "text": "a\u2028b", "options": ["x"]}).text == "a\u2028b"


def test_names_with_a_nul_are_refused() -> None:
    with pytest.raises(ValidationFailed) as conversation:
        clean_conversation_name(NUL)
    assert conversation.value.body()["name"] == [NULL_CHARACTERS]
    with pytest.raises(ValidationFailed) as participant:
        clean_participant_name(NUL)
    assert participant.value.body()["name"] == [NULL_CHARACTERS]
    with pytest.raises(ValidationFailed) as nickname:
        clean_nickname(NUL)
    assert nickname.value.body() == ["nickname must not contain null characters"]


def test_participant_names_keep_their_rules() -> None:
    assert clean_participant_name("  Ana  ") == "Ana"
    for bad in (None, "", "   ", "x" * 51):
        with pytest.raises(ValidationFailed) as refused:
            clean_participant_name(bad)
        assert refused.value.body()["name"] == ["Enter 1 to 50 characters."]
    with pytest.raises(ValidationFailed) as not_text:
        clean_participant_name(5)
    assert not_text.value.body()["name"] == ["Not a valid string."]
