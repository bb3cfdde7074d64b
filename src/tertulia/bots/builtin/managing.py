"""What the example managers share: recognising messages and sending commands (PROTOCOL 7)."""

from __future__ import annotations

from tertulia.bots.base import Bot, ChatMessage
from tertulia.bots.builtin.commands import (
    approve_command,
    redirect_command,
    self_approve_command,
)
from tertulia.domain.ids import new_local_id
from tertulia.domain.model import MessageType, ParticipantType


class ManagerBot(Bot):
    """Base of the example managers: helpers to classify messages and send commands."""

    def is_own(self, message: ChatMessage) -> bool:
        """Whether this manager sent ``message``."""
        return message.sender_id == self.conversation_info.bot_participant_id

    def is_unapproved_bot_message(self, message: ChatMessage) -> bool:
        """Whether ``message`` is another bot's message that people cannot see yet."""
        return (
            message.type != MessageType.SYSTEM
            and not message.sent_by_human
            and message.approved is False
            and not self.is_own(message)
        )

    def participant_name(self, participant_id: str | None) -> str | None:
        """The name of the conversation's participant ``participant_id``, if there is one."""
        for participant in self.conversation_info.participants:
            if participant.get("id") == participant_id:
                return participant.get("name")
        return None

    def has_bot(self, name: str) -> bool:
        """Whether a bot named ``name`` takes part in this conversation (a redirect to one
        that does not is refused, and the person would get no answer at all)."""
        return any(
            participant.get("type") == ParticipantType.BOT and participant.get("name") == name
            for participant in self.conversation_info.participants
        )

    def approve(self, message_id: str) -> None:
        """Approve message ``message_id``, so people see it."""
        self.send(
            type="T",
            text="",
            quoted_message_id=message_id,
            command=approve_command(),
            local_id=new_local_id(),
        )

    def redirect(self, message_id: str, bots: list[str]) -> None:
        """Deliver message ``message_id`` to ``bots`` (names or participant ids)."""
        self.send(
            type="T",
            text="",
            quoted_message_id=message_id,
            command=redirect_command(bots),
            local_id=new_local_id(),
        )

    def say(
        self, text: str, *, quoted_message_id: str | None = None, options: list[str] | None = None
    ) -> None:
        """Send ``text`` (with ``options``) as the manager, approved so people see it."""
        self.send(
            type="T",
            text=text,
            quoted_message_id=quoted_message_id,
            options=list(options or []),
            command=self_approve_command(),
            local_id=new_local_id(),
        )
