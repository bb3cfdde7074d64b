"""Times on the wire: UTC, ISO 8601, ``Z``, no fraction or exactly six digits (PROTOCOL 1.2)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time

import orjson

from tertulia.errors import ValidationFailed


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """Print ``moment`` the way DRF does: ``2026-11-25T14:55:39.166537Z`` or ``...:39Z``."""
    if moment.tzinfo is not UTC:
        moment = as_utc(moment)
    # orjson prints RFC 3339 in C, the fraction only when there is one, and "Z" for UTC:
    # half the time of isoformat() or of a %-format of seven numbers (this runs for every
    # message sent, and for every message a history page holds).
    return orjson.dumps(moment, option=orjson.OPT_UTC_Z)[1:-1].decode()


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_query_time(value: str) -> datetime:
    """Parse ``until`` / ``since``: ISO 8601 (``Z`` or an offset; naive is UTC), a bare
    date, or ``now``.

    Raises:
        ValidationFailed: ``{"detail": "Invalid date-time string: <value>"}``.
    """
    if value == "now":
        return utcnow()
    try:
        if _DATE_ONLY.match(value):
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        # (OverflowError: a time near year 1 or 9999 whose offset takes it out of range)
        return as_utc(datetime.fromisoformat(value.replace("z", "Z")))
    except (ValueError, OverflowError):
        raise ValidationFailed(detail=f"Invalid date-time string: {value}") from None
