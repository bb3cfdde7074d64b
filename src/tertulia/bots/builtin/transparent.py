"""The transparent manager: every bot hears every person, and every answer is shown."""

from __future__ import annotations

from tertulia.bots.base import ChatMessage
from tertulia.bots.builtin.managing import ManagerBot
from tertulia.domain.model import MessageType, ParticipantType


class TransparentManagerBot(ManagerBot):
    """A manager that changes nothing: as if there were no manager (PROTOCOL 7.5, fixed).

    - A human's message (any type but system) is redirected to every other bot of the
      conversation, by participant id; nothing is sent when there is no other bot.
    - Another bot's message that people cannot see yet (``approved`` false) is approved.
    - System messages, its own messages and already approved bot messages (the second
      delivery after an approval) are ignored.

    Built as ``TransparentManagerBot(conversation_info)``.
    """

    runs_on_loop = True  # decides at once and never blocks: no worker thread per message

    def receive_message(self, message: ChatMessage) -> None:
        if message.type == MessageType.SYSTEM or self.is_own(message):
            return
        if message.sent_by_human:
            bots = self._other_bots()
            if bots:
                self.redirect(message.id, bots)
        elif self.is_unapproved_bot_message(message):
            self.approve(message.id)

    def _other_bots(self) -> list[str]:
        own = self.conversation_info.bot_participant_id
        return [
            participant["id"]
            for participant in self.conversation_info.participants
            if participant.get("type") == ParticipantType.BOT and participant.get("id") != own
        ]
