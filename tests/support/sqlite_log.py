"""Reading SQLite's write-ahead log from the tests."""

from __future__ import annotations

from pathlib import Path


def log_restarts(wal: Path) -> int:
    """How many times the write-ahead log has started again from its beginning: the
    checkpoint sequence number in its header (bytes 12-15, big-endian), which SQLite counts
    up at each restart; 0 before the log has a header."""
    try:
        with wal.open("rb") as log:
            header = log.read(16)
    except FileNotFoundError:
        return 0
    return int.from_bytes(header[12:16], "big") if len(header) == 16 else 0
