"""The calculator bot (BLAB's ``Calculator``), with a bounded evaluator."""

from __future__ import annotations

from tertulia.bots.base import ChatMessage
from tertulia.bots.builtin.answering import AnsweringBot
from tertulia.bots.builtin.arithmetic import evaluate
from tertulia.domain.model import MessageType


class CalculatorBot(AnsweringBot):
    """Answers each human text message with the value of its arithmetic expression.

    The answer is the result (``"1+2"`` → ``"3"``, ``"1/4"`` → ``"0.25"``), or ``"?"`` for a
    non-text message or any text :func:`~tertulia.bots.builtin.arithmetic.evaluate` refuses
    (not arithmetic, an arithmetic error, too large). Built as
    ``CalculatorBot(conversation_info, delay=0.0)``; see :class:`AnsweringBot` for what it
    ignores, how it quotes, and ``delay``.
    """

    def answer(self, message: ChatMessage) -> str:
        if message.type != MessageType.TEXT:
            return "?"
        result = evaluate(message.text or "")
        return "?" if result is None else result
