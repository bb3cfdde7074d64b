"""Bots: the internal bot API, spec loading, the runner, and the built-in and external bots."""

from tertulia.bots.base import Bot, BotFailed, ChatMessage, ConversationInfo

__all__ = ["Bot", "BotFailed", "ChatMessage", "ConversationInfo"]
