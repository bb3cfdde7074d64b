"""Manager command strings (PROTOCOL 7.2), as the ``command`` field of a manager's message."""

from __future__ import annotations

import json
from typing import Any


def approve_command() -> str:
    """``'{"action": "approve"}'``: approve the quoted message, so humans see it."""
    return json.dumps({"action": "approve"})


def redirect_command(bots: list[str], overrides: dict[str, Any] | None = None) -> str:
    """Deliver the quoted message to ``bots`` (names or participant ids).

    Args:
        bots: the target bots.
        overrides: fields replaced or added in the delivered copies (default none).

    Returns:
        ``'{"action": "redirect", "bots": [...], "overrides": {...}}'``.
    """
    return json.dumps({"action": "redirect", "bots": list(bots), "overrides": overrides or {}})


def self_approve_command() -> str:
    """``'{"self_approve": true}'``: store the manager's own message approved."""
    return json.dumps({"self_approve": True})
