"""The shared behaviour of the example answering bots (PROTOCOL 6.4)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from tertulia.bots.base import Bot, ChatMessage, ConversationInfo
from tertulia.domain.ids import new_local_id


class AnsweringBot(Bot):
    """Answers every message a human sent with one text reply quoting it.

    Messages whose ``sent_by_human`` is false (system messages, bots' messages, its own) are
    ignored. The reply is ``{"type": "T", "text": answer(message), "quoted_message_id":
    message.id, "local_id": <fresh 32 hex>}``, sent after waiting ``delay`` seconds when
    ``delay`` is positive (the original's bots pause to look like they are typing).

    ``receive_message`` is a coroutine: these bots never block (``answer`` is quick and
    bounded), so they run on the event loop, with no worker-thread hop per message. A bot
    that blocks (on I/O, or a long computation) should be a plain method instead, which the
    runner calls in a worker thread.

    Subclasses implement :meth:`answer`.
    """

    def __init__(self, conversation_info: ConversationInfo, delay: float = 0.0) -> None:
        super().__init__(conversation_info)
        self.delay = delay

    @classmethod
    def accepts_delivery(cls, kind: str, payload: dict[str, Any], participant_id: str) -> bool:
        """Only people's messages: nothing else would be answered, so nothing else is queued."""
        return kind == "message" and payload.get("sent_by_human") is True

    async def receive_message(self, message: ChatMessage) -> None:
        if not message.sent_by_human:
            return
        if self.delay > 0:
            await self.pause(self.delay)
        sent = self.send(
            type="T",
            text=self.answer(message),
            quoted_message_id=message.id,
            local_id=new_local_id(),
        )
        if inspect.isawaitable(sent):  # on the server: wait until the answer is stored
            await sent

    def answer(self, message: ChatMessage) -> str:
        """The reply's text for a human's ``message``."""
        raise NotImplementedError

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds`` (without holding up anybody else)."""
        await asyncio.sleep(seconds)
