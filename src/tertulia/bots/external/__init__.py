"""Bots that live outside the server: BLAB WebSocket bots (more kinds to come)."""

from tertulia.bots.external.websocket import WebSocketExternalBot

__all__ = ["WebSocketExternalBot"]
