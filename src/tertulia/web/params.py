"""Whole numbers from query strings, checked the same way everywhere."""

from __future__ import annotations

MAX_DIGITS = 18
"""Longer numbers are refused: they exceed any count here, and Python refuses to convert
strings of over 4,300 digits at all (``int`` raises ``ValueError``)."""


def whole_number(raw: str) -> int | None:
    """``raw`` as a number from 0, or None unless it is 1 to 18 ASCII digits.

    ``str.isdigit`` alone also takes ``"²"`` or ``"٣"``, which ``int`` refuses or reads
    differently.
    """
    if not raw or len(raw) > MAX_DIGITS or not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)
