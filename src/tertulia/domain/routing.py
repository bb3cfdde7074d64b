"""Who receives what (PROTOCOL 7.1), as audience tags matched against each socket's tags.

A published event carries a set of tags; a socket receives it when its own tags meet that
set. Tags: ``humans`` (every human socket), ``bots`` (every bot socket, the manager's
included), ``manager`` (the manager's sockets), ``p:<participant id>`` (one participant),
``s:<digest>`` (a bot's sockets open on one session: :func:`session_tag`).
The same rules choose the internal bots a message is delivered to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from tertulia.domain.model import Message, Participant

HUMANS = "humans"
BOTS = "bots"
MANAGER = "manager"
EVERYONE = frozenset({HUMANS, BOTS})


def participant_tag(participant_id: str) -> str:
    return f"p:{participant_id}"


def session_tag(key: str) -> str:
    """The tag of the bot sockets open on the session ``key``: a digest, since the key is
    a bearer secret and tags travel through the broker (Redis)."""
    return "s:" + hashlib.sha256(key.encode()).hexdigest()[:32]


def socket_tags(participant: Participant) -> frozenset[str]:
    """The tags of a socket opened by ``participant``."""
    tags = {participant_tag(participant.id), HUMANS if participant.is_human else BOTS}
    if participant.is_manager:
        tags.add(MANAGER)
    return frozenset(tags)


def message_audience(message: Message, *, has_manager: bool) -> frozenset[str]:
    """The sockets a stored or newly approved message goes to.

    System messages go to everyone. Without a manager a visible message goes to everyone,
    its sender included. With a manager, a visible message goes to people and the manager,
    an unapproved one to the manager only; other bots see only what is redirected to them.
    """
    if message.is_system:
        return EVERYONE
    if not has_manager:
        return EVERYONE if message.visible else frozenset()
    return frozenset({HUMANS, MANAGER}) if message.visible else frozenset({MANAGER})


def bot_recipients(
    message: Message, bots: Sequence[Participant], *, has_manager: bool
) -> list[Participant]:
    """The bot participants whose classes get ``message`` (same rules as the sockets).

    Fixes BLAB's #23: an unapproved message never reaches a bot other than the manager.
    """
    if message.is_system:
        return list(bots)
    if not has_manager:
        return list(bots) if message.visible else []
    return [b for b in bots if b.is_manager]
