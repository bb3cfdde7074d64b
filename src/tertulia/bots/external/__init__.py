"""Bots that live outside the server, or talk to services outside it.

- :class:`WebSocketExternalBot`: BLAB's external bots, started by a trigger POST, then
  talking over the WebSocket (PROTOCOL 6.3).
- :class:`WebhookBot`: every delivery POSTed, signed, to an HTTP endpoint; answers inline
  or later over REST.
- :class:`OpenAIChatBot`: answers people with an OpenAI-compatible chat-completions API.
"""

from tertulia.bots.external.openai_chat import OpenAIChatBot
from tertulia.bots.external.webhook import WebhookBot
from tertulia.bots.external.websocket import WebSocketExternalBot

__all__ = ["OpenAIChatBot", "WebSocketExternalBot", "WebhookBot"]
