"""Manager command strings (PROTOCOL 7.2)."""

from __future__ import annotations

import json

from tertulia.bots.builtin.commands import (
    approve_command,
    redirect_command,
    self_approve_command,
)


def test_approve_command() -> None:
    """The approve command is exactly the original's string."""
    assert approve_command() == '{"action": "approve"}'


def test_redirect_command_without_overrides() -> None:
    """A redirect names its bots and carries an empty overrides object by default."""
    command = redirect_command(["Calculator", "ECHO"])
    assert json.loads(command) == {
        "action": "redirect",
        "bots": ["Calculator", "ECHO"],
        "overrides": {},
    }


def test_redirect_command_with_overrides() -> None:
    """Overrides are carried as given."""
    command = redirect_command(["ECHO"], {"text": "7*6", "sent_by_human": True})
    assert json.loads(command)["overrides"] == {"text": "7*6", "sent_by_human": True}


def test_self_approve_command() -> None:
    """The self-approve command is a JSON object with self_approve true."""
    assert json.loads(self_approve_command()) == {"self_approve": True}
