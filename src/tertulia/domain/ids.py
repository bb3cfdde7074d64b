"""Identifiers: canonical UUID text, local ids, session keys."""

from __future__ import annotations

import secrets
import uuid


def new_id() -> str:
    """A fresh id in canonical form (36 characters, lowercase, dashes)."""
    return str(uuid.uuid4())


def new_local_id() -> str:
    """A fresh ``local_id`` as BLAB's clients make them: 32 lowercase hex characters."""
    return uuid.uuid4().hex


def new_session_key() -> str:
    """A session key: 192 random bits, 32 cookie-safe characters."""
    return secrets.token_urlsafe(24)


def canonical_id(value: object) -> str | None:
    """``value`` as a canonical UUID string, or ``None`` when it is not a UUID."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None
