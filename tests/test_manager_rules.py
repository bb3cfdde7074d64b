"""The manager's pure rules: command parsing (PROTOCOL 7.2) and routing decisions (7.1)."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from support.junk import SEED, json_value
from tertulia.domain.commands import ManagerCommand, parse_command, unknown_keys
from tertulia.domain.ids import new_id
from tertulia.domain.model import Approval, Message, MessageType, Participant, ParticipantType
from tertulia.domain.routing import (
    BOTS,
    EVERYONE,
    HUMANS,
    MANAGER,
    bot_recipients,
    message_audience,
    participant_tag,
    socket_tags,
)
from tertulia.errors import CommandError


async def test_an_absent_or_empty_command_does_nothing() -> None:
    """No command, ``""`` and ``"{}"`` all parse to the empty command."""
    empty: list[str | dict[str, Any] | None] = [None, "", "{}", {}]
    for raw in empty:
        assert parse_command(raw).is_empty


async def test_a_full_command_parses_from_a_string_or_an_object() -> None:
    """Every key is read, from a JSON string or an object alike."""
    principal = new_id()
    data = {
        "action": "redirect",
        "bots": ["ECHO", principal],
        "overrides": {"text": "7*6", "sent_by_human": True, "extra": [1]},
        "self_approve": True,
        "self_redirect": False,
        "on_behalf_of": principal.upper(),
    }
    expected = ManagerCommand(
        action="redirect",
        bots=("ECHO", principal),
        overrides={"text": "7*6", "sent_by_human": True, "extra": [1]},
        self_approve=True,
        on_behalf_of=principal,
    )
    assert parse_command(json.dumps(data)) == expected
    assert parse_command(data) == expected
    assert unknown_keys({**data, "color": "red"}) == {"color"}


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        "[1, 2]",
        '"approve"',
        {"action": "delete"},
        {"action": 1},
        {"bots": "ECHO"},
        {"bots": [1]},
        {"bots": [""]},
        {"overrides": []},
        {"overrides": {"type": "Z"}},
        {"overrides": {"time": "yesterday"}},
        {"overrides": {"id": None}},
        {"overrides": {"id": "not-a-uuid"}},
        {"overrides": {"sender_id": None}},
        {"overrides": {"sender_id": ""}},
        {"overrides": {"type": "S"}},
        {"overrides": {"sent_by_human": 1}},
        {"overrides": {"options": ["a", 2]}},
        {"overrides": {"file_size": True}},
        {"self_approve": "true"},
        {"self_redirect": 1},
        {"on_behalf_of": "someone"},
        {"action": "redirect"},
        {"action": "redirect", "bots": None},
        {"action": "redirect", "bot": ["ECHO"]},
        {"self_redirect": True},
        {"on_behalf_of": 5},
    ],
)
async def test_a_malformed_command_is_refused(raw: Any) -> None:
    """Malformed JSON, a non-object, an unknown action or a part of the wrong type."""
    with pytest.raises(CommandError) as caught:
        parse_command(raw)
    assert caught.value.code == "bad_command"
    assert "command" in caught.value.body()


async def test_a_redirect_naming_no_bot_says_which_keys_it_did_not_know() -> None:
    """A redirect whose bots are misspelt is told so, not just that it names no bot."""
    with pytest.raises(CommandError) as caught:
        parse_command({"action": "redirect", "bot": ["ECHO"]})
    assert caught.value.errors == {
        "command": ["redirect needs bots: a list of bot names or ids (unknown keys: bot)"]
    }


async def test_an_empty_list_of_bots_is_taken_as_blab_took_it() -> None:
    """A list a manager computed may hold no bot this time: its message is still stored
    (and shown, self_approved), redirected to nobody, as BLAB did; only ``bots`` missing
    (a typo such as ``bot``) is refused."""
    command = parse_command({"self_redirect": True, "self_approve": True, "bots": []})
    assert command.self_redirect
    assert command.self_approve
    assert list(command.bots) == []
    assert list(parse_command({"action": "redirect", "bots": []}).bots) == []


async def test_overrides_keep_wire_types_but_allow_new_keys() -> None:
    """Valid values for the representation's keys and any extra key are accepted."""
    overrides = {
        "time": "2026-11-25T14:55:39.166537Z",
        "type": "i",
        "text": None,
        "options": ["a"],
        "file_size": 3,
        "additional_metadata": {"k": "v"},
        "anything": {"nested": True},
    }
    assert parse_command({"overrides": overrides}).overrides == overrides


async def test_id_overrides_are_written_as_the_server_writes_ids() -> None:
    """An id or sender_id given in another spelling of a UUID is the canonical id."""
    given = uuid.uuid4()
    overrides = {"id": given.hex.upper(), "sender_id": f"{{{given}}}"}
    assert parse_command({"overrides": overrides}).overrides == {
        "id": str(given),
        "sender_id": str(given),
    }


def person(name: str) -> Participant:
    return Participant(new_id(), "c", name, ParticipantType.HUMAN)


def bot(name: str, *, manager: bool = False) -> Participant:
    return Participant(new_id(), "c", name, ParticipantType.BOT, is_manager=manager, bot_name=name)


def message(approval: Approval, kind: MessageType = MessageType.TEXT) -> Message:
    return Message(new_id(), "c", kind, datetime.now(UTC), approval)


SYSTEM = message(Approval.AUTOMATIC, MessageType.SYSTEM)
VISIBLE = message(Approval.AUTOMATIC)
APPROVED = message(Approval.BY_MANAGER)
HIDDEN = message(Approval.NOT_APPROVED)


@pytest.mark.parametrize(
    ("item", "has_manager", "audience"),
    [
        (SYSTEM, True, EVERYONE),
        (SYSTEM, False, EVERYONE),
        (VISIBLE, False, EVERYONE),
        (HIDDEN, False, frozenset()),
        (VISIBLE, True, frozenset({HUMANS, MANAGER})),
        (APPROVED, True, frozenset({HUMANS, MANAGER})),
        (HIDDEN, True, frozenset({MANAGER})),
    ],
)
async def test_socket_audiences_follow_the_routing_table(
    item: Message, has_manager: bool, audience: frozenset[str]
) -> None:
    """Each row of PROTOCOL 7.1's table, for sockets."""
    assert message_audience(item, has_manager=has_manager) == audience


async def test_internal_bots_follow_the_routing_table() -> None:
    """Each row of PROTOCOL 7.1's table for internal bots (BLAB #23 fixed)."""
    echo, calculator, manager = bot("ECHO"), bot("Calculator"), bot("Manager", manager=True)
    with_manager = [echo, calculator, manager]
    assert bot_recipients(SYSTEM, with_manager, has_manager=True) == with_manager
    for item in (VISIBLE, APPROVED, HIDDEN):
        assert bot_recipients(item, with_manager, has_manager=True) == [manager]
    assert bot_recipients(VISIBLE, [echo, calculator], has_manager=False) == [echo, calculator]
    assert bot_recipients(HIDDEN, [echo, calculator], has_manager=False) == []


async def test_socket_tags_tell_people_bots_and_the_manager_apart() -> None:
    """A person's socket is a human's; a bot's a bot's; the manager's also the manager's."""
    alice, echo, manager = person("alice"), bot("ECHO"), bot("Manager", manager=True)
    assert socket_tags(alice) == {HUMANS, participant_tag(alice.id)}
    assert socket_tags(echo) == {BOTS, participant_tag(echo.id)}
    assert socket_tags(manager) == {BOTS, MANAGER, participant_tag(manager.id)}


def test_random_commands_parse_or_raise_command_error_only() -> None:
    """Whatever a manager sends (seeded random JSON, as an object or as a string holding
    one), parsing gives a command or a CommandError, never another exception."""
    keys = ("action", "bots", "overrides", "self_approve", "self_redirect", "on_behalf_of")
    rnd = random.Random(SEED)
    outcomes: Counter[str] = Counter()
    for _ in range(2000):
        raw: Any = json_value(rnd, keys)
        if rnd.random() < 0.7:
            raw = {key: json_value(rnd, (*keys, "text", "type")) for key in rnd.sample(keys, 2)}
            raw.setdefault("action", rnd.choice(["approve", "redirect", None, "x"]))
        if rnd.random() < 0.3:
            raw = json.dumps(raw)  # (json: integers beyond 64 bits too)
        elif raw is not None and not isinstance(raw, dict | str):
            raw = json.dumps(raw)
        try:
            parse_command(raw)
        except CommandError:
            outcomes["refused"] += 1
        else:
            outcomes["parsed"] += 1
    assert outcomes["parsed"] >= 50, outcomes
    assert outcomes["refused"] >= 50, outcomes
