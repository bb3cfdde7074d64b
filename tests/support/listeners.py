"""A broker subscriber for tests: the frames it heard, and how often it was told it missed
some."""

from __future__ import annotations

from tertulia.realtime.broker import Event


class Listener:
    """A subscriber: the events it heard, and how often it was told it missed some."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.missed = 0

    def deliver(self, event: Event) -> None:
        self.frames.append(event.frame)

    def lost(self) -> None:
        self.missed += 1


def event(frame: str) -> list[Event]:
    """One event for people, with no seq."""
    return [Event(frozenset({"humans"}), frame)]
