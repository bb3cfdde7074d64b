"""Tertulia's Python SDK for external bots.

A WebSocket-triggered bot (BLAB's kind, PROTOCOL 6.3) in a few lines::

    from tertulia.client import BotApp

    bot = BotApp("http://localhost:8000")

    @bot.on_connect
    async def greet(conversation):
        await conversation.send("Hello! I repeat what you say.")

    @bot.on_message
    async def echo(conversation, message):
        await conversation.send(message.text, quote=message)

    bot.run(port=25220)

Webhook bots use :func:`verify_signature` and :func:`post_message` (see
:mod:`tertulia.client.webhooks`).
"""

from tertulia.bots.base import ChatMessage
from tertulia.client.app import BotApp, websocket_base
from tertulia.client.conversation import Conversation
from tertulia.client.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    post_message,
    sign,
    verify_signature,
)

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "BotApp",
    "ChatMessage",
    "Conversation",
    "post_message",
    "sign",
    "verify_signature",
    "websocket_base",
]
