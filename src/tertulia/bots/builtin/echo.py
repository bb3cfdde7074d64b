"""The upper-case echo bot (BLAB's ``ECHO``)."""

from __future__ import annotations

from tertulia.bots.base import ChatMessage
from tertulia.bots.builtin.answering import AnsweringBot
from tertulia.domain.inputs import MAX_TEXT
from tertulia.domain.model import MessageType


class UpperCaseEchoBot(AnsweringBot):
    """Answers each human text message with its text upper-cased, and anything else with "?".

    Built as ``UpperCaseEchoBot(conversation_info, delay=0.0)``; see :class:`AnsweringBot`
    for what it ignores, how it quotes, and ``delay``.
    """

    def answer(self, message: ChatMessage) -> str:
        if message.type != MessageType.TEXT:
            return "?"
        # Upper case can be longer ("ß" is "SS"): cut to what the server takes, or the
        # answer to a text it took would be refused.
        return (message.text or "").upper().strip()[:MAX_TEXT]
