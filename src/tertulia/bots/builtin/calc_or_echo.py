"""The calc-or-echo manager: arithmetic goes to the calculator, the rest to the echo bot."""

from __future__ import annotations

import re

from tertulia.bots.base import ChatMessage, ConversationInfo
from tertulia.bots.builtin.managing import ManagerBot
from tertulia.domain.model import MessageType

ARITHMETIC = re.compile(r"[0-9+\-*/ ().]+")
"""Texts sent to the calculator (the original's ``^[0-9+\\-*/ ().]+$``)."""


class CalcOrEchoManagerBot(ManagerBot):
    """A manager that routes each human message to one of two bots (PROTOCOL 7.5).

    - A human text made only of digits, ``+ - * / ( ) .`` and spaces is redirected to the
      calculator; any other human message (other texts, files) to the echo bot.
    - When the calculator answers ``"?"``, that answer is never approved: the human message
      it quotes is redirected to the echo bot instead (a ``"?"`` quoting nothing is dropped).
    - Any other bot message people cannot see yet (``approved`` false) is approved.
    - System messages, its own messages and already approved bot messages are ignored.
    - A bot the conversation lacks is never a target: arithmetic goes to the echo bot when
      there is no calculator; without an echo bot, other messages (and the calculator's
      ``"?"``) are left unanswered.

    Built as ``CalcOrEchoManagerBot(conversation_info, calculator_bot_name, echo_bot_name)``
    (positionally or by keyword); the bots are named by their participant names.
    """

    runs_on_loop = True  # decides at once and never blocks: no worker thread per message

    def __init__(
        self, conversation_info: ConversationInfo, calculator_bot_name: str, echo_bot_name: str
    ) -> None:
        super().__init__(conversation_info)
        self.calculator_bot_name = calculator_bot_name
        self.echo_bot_name = echo_bot_name

    def receive_message(self, message: ChatMessage) -> None:
        if message.type == MessageType.SYSTEM or self.is_own(message):
            return
        if message.sent_by_human:
            target = self._target(message)
            if target is not None:
                self.redirect(message.id, [target])
        elif self.is_unapproved_bot_message(message):
            if self._is_calculator_failure(message):
                if message.quoted_message_id and self.has_bot(self.echo_bot_name):
                    self.redirect(message.quoted_message_id, [self.echo_bot_name])
            else:
                self.approve(message.id)

    def _target(self, message: ChatMessage) -> str | None:
        """The bot for a person's message, among those of the conversation (None: none)."""
        arithmetic = message.type == MessageType.TEXT and bool(
            ARITHMETIC.fullmatch(message.text or "")
        )
        preferred = (
            (self.calculator_bot_name, self.echo_bot_name) if arithmetic else (self.echo_bot_name,)
        )
        return next((name for name in preferred if self.has_bot(name)), None)

    def _is_calculator_failure(self, message: ChatMessage) -> bool:
        return (
            self.participant_name(message.sender_id) == self.calculator_bot_name
            and (message.text or "").strip() == "?"
        )
