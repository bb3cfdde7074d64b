"""Upload size limits per message type (PROTOCOL 5.8): BLAB's ``CHAT_LIMITS`` keys.

``A`` → ``MAX_ATTACHMENT_SIZE``, ``i`` → ``MAX_IMAGE_SIZE``, ``v`` → ``MAX_VIDEO_SIZE``,
``a`` → ``MAX_AUDIO_SIZE``, ``V`` → ``MAX_VOICE_SIZE``. A missing key counts as 0, and 0
disables that type: a file of ``size > limit`` is refused.

Beside them, Tertulia's own ``MAX_CONVERSATION_FILES_SIZE``: the bytes a conversation's
uploaded files may take in all (:func:`check_files_budget`).
"""

from __future__ import annotations

from collections.abc import Mapping

from tertulia.errors import FilesBudgetExceeded

LIMIT_KEY_BY_TYPE: Mapping[str, str] = {
    "A": "MAX_ATTACHMENT_SIZE",
    "i": "MAX_IMAGE_SIZE",
    "v": "MAX_VIDEO_SIZE",
    "a": "MAX_AUDIO_SIZE",
    "V": "MAX_VOICE_SIZE",
}
FILE_TYPE_CODES = frozenset(LIMIT_KEY_BY_TYPE)


def limit_for(limits: Mapping[str, int], message_type: str) -> int:
    """The byte limit for files of ``message_type`` (0 for a type that takes no file)."""
    key = LIMIT_KEY_BY_TYPE.get(message_type)
    return int(limits.get(key, 0)) if key is not None else 0


def largest_limit(limits: Mapping[str, int]) -> int:
    """The largest limit of any file type: the hard cap while the type is not known yet."""
    return max((int(limits.get(key, 0)) for key in LIMIT_KEY_BY_TYPE.values()), default=0)


def check_files_budget(stored: int, size: int, budget: int) -> None:
    """Whether a file of ``size`` bytes fits its conversation's budget, ``stored`` bytes of
    files being kept there already (hidden messages' included: they are on disk too).

    Raises:
        FilesBudgetExceeded: ``stored + size`` would pass ``budget``.
    """
    if stored + size > budget:
        raise FilesBudgetExceeded(budget)
