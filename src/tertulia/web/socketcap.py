"""The cap on one participant's open sockets (``ws_max_sockets_per_participant``).

Several sockets per participant are allowed (PROTOCOL 4.1: two tabs, a bot that connects
twice), each getting every frame addressed to it; without a cap one person could hold
hundreds, each costing a file descriptor and its buffers, and each of their messages
would be fanned out to every one. Over the cap a socket is accepted and closed at once with
:data:`CLOSE_TOO_MANY` before anything else happens (no presence, no frames).

The count is this process's: with a Redis broker and several processes, a participant may
hold up to the cap on each.
"""

from __future__ import annotations

from collections import Counter

CLOSE_TOO_MANY = 4429  # "too many", as HTTP 429
CLOSE_TOO_MANY_REASON = "too many sockets for this participant"


class SocketCounts:
    """Open sockets per participant, in this process."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._open: Counter[str] = Counter()

    def open(self, participant_id: str) -> int:
        """How many sockets of ``participant_id`` are open (counted) now."""
        return self._open[participant_id]

    def take(self, participant_id: str) -> bool:
        """Count one more socket of ``participant_id``; False (nothing counted) when it
        already has the cap's number open."""
        if self._open[participant_id] >= self._cap:
            return False
        self._open[participant_id] += 1
        return True

    def release(self, participant_id: str) -> None:
        """A socket :meth:`take` counted has closed."""
        left = self._open[participant_id] - 1
        if left > 0:
            self._open[participant_id] = left
        else:
            del self._open[participant_id]
