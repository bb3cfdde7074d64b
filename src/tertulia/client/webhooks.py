"""Webhook bots' side of the contract: signatures, delivery ids, and posting over REST.

A :class:`tertulia.bots.external.WebhookBot` POSTs each delivery to the bot's URL as JSON::

    POST <url>
    Content-Type: application/json
    X-Tertulia-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the secret>
    X-Tertulia-Delivery: <id, the same on every retry of one delivery>

    {"delivery_id": "...", "conversation_id": "...", "bot_participant_id": "...",
     "session": "...", "participants": [{"id", "name", "type"}, ...],
     "message": {<the message as the WebSocket shows it (PROTOCOL 5.1)>}}

The bot checks the signature over the raw bytes (:func:`verify_signature`) before parsing,
and uses the delivery id to ignore a retry it has already handled. It answers at once with
``{"messages": [<input fields of PROTOCOL 5.3>, ...]}`` (or an empty body), or later with
:func:`post_message` and the delivery's ``session``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx

SIGNATURE_HEADER = "X-Tertulia-Signature"
DELIVERY_HEADER = "X-Tertulia-Delivery"
_PREFIX = "sha256="


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return _PREFIX + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (the ``X-Tertulia-Signature`` value) signs ``body`` with ``secret``.

    Compares in constant time; a missing or malformed header is simply not valid.
    """
    if not header or not header.startswith(_PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body), header)


async def post_message(
    http: httpx.AsyncClient,
    base_url: str,
    conversation_id: str,
    session: str,
    message: dict[str, Any],
) -> dict[str, Any]:
    """Send a message later, over REST, as the bot of a webhook delivery.

    Args:
        http: any client (no cookie jar is used: the session goes in the header).
        base_url: the server, e.g. ``http://localhost:8000``.
        conversation_id: the delivery's ``conversation_id``.
        session: the delivery's ``session`` (valid only for that bot in that conversation).
        message: input fields of PROTOCOL 5.3, e.g. ``{"type": "T", "text": "hi",
            "quoted_message_id": ..., "local_id": ...}``; a ``local_id`` makes retries safe.

    Returns:
        the stored message (PROTOCOL 5.1).

    Raises:
        httpx.HTTPStatusError: the server refused it (403: the session lapsed or belongs to
            another conversation; 400: invalid fields).
    """
    url = f"{base_url.rstrip('/')}/api/chat/conversations/{conversation_id}/messages/"
    response = await http.post(url, json=message, headers={"Cookie": f"sessionid={session}"})
    response.raise_for_status()
    stored: dict[str, Any] = response.json()
    return stored
