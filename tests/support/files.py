"""What an upload leaves on disk."""

from __future__ import annotations

from pathlib import Path

from tertulia.files.store import OWNER_MARK


def stored_files(root: Path) -> list[Path]:
    """Every file under a media root, kept or spooled; not the root's owner's mark, which
    a server's start makes (tertulia/ownership.py)."""
    if not root.exists():
        return []
    return [p for p in root.rglob("*") if p.is_file() and p.name != OWNER_MARK]
