"""Message.numbered: the copy made for each stored message."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, datetime

from tertulia.domain.model import (
    Approval,
    FileInfo,
    Message,
    MessageType,
    SystemEvent,
)


def test_numbered_is_replace_with_a_seq_and_leaves_the_original_alone() -> None:
    """Every field is carried over (none left at its default), only ``seq`` changes."""
    original = Message(
        id="m",
        conversation_id="c",
        type=MessageType.IMAGE,
        time=datetime(2026, 12, 3, tzinfo=UTC),
        approval=Approval.BY_MANAGER,
        seq=None,
        sender_id="s",
        text="t",
        local_id="l",
        quoted_message_id="q",
        event=SystemEvent.PARTICIPANT_JOINED,
        additional_metadata={"k": "v"},
        options=("a", "b"),
        file=FileInfo(path="p", name="n", size=1, mime_type="image/png"),
        sent_by_human=True,
        command="approve",
        sent_by_manager=True,
        real_sender_id="r",
    )
    defaults = Message("x", "c", MessageType.TEXT, original.time, Approval.AUTOMATIC)
    assert all(
        getattr(original, f.name) != getattr(defaults, f.name)
        for f in fields(Message)
        if f.name not in ("conversation_id", "time", "seq")
    )

    copy = original.numbered(7)

    assert copy == replace(original, seq=7)
    assert copy is not original
    assert original.seq is None
