"""Which database owns the files in ``media_root``.

A copy of a database (``tertulia copy``, a backup by ``sqlite3 .backup`` or ``pg_dump``
restored elsewhere) keeps every conversation's id, and the files stay where they are: a
copy given the same ``media_root`` as its original names the same directories. Deleting a
conversation there (``tertulia delete``, retention) removed the original's files, those
uploaded after the copy included.

So ``media_root`` holds a mark naming where the database whose files it holds is (a
SQLite file by its real path; PostgreSQL by host, port, database and schema, without user
or password), made by the first to look at an unmarked one: a server starting, ``tertulia
migrate``, a deletion, the source of a ``tertulia copy``. Only the database at that place
deletes files there; another sharing it is told so (a warning at start, a line from
``tertulia delete``). A backup restored in place is the owner again; a database moved
elsewhere takes the files over once the mark is removed (docs/operations.md, "Copies and
files"). The same database reached by another name (``localhost`` for ``127.0.0.1``, a
symbolic link's other path for PostgreSQL's host) is taken for another: it keeps files
rather than delete them, and says so.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

from tertulia.files import file_store
from tertulia.files.store import FileStore
from tertulia.storage.sqlite import sqlite_path


def database_location(url: str, schema: str | None = None) -> str:
    """Where the database at ``url`` is, as the owner's mark names it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite:{os.path.realpath(sqlite_path(url))}"
    host = (parsed.host or "localhost").lower()
    where = f"postgresql://{host}:{parsed.port or 5432}/{parsed.database or ''}"
    return where + (f"?schema={schema}" if schema else "")


async def other_owner(url: str, schema: str | None, store: FileStore) -> str | None:
    """Where the database whose files ``store`` holds is, when that is not the database at
    ``url`` (which then shares them: it must not delete them), else None. A store not
    marked yet is marked as this database's."""
    here = database_location(url, schema)
    owner = await store.claim(here)
    return None if owner == here else owner


async def claim_files(url: str, schema: str | None, media_root: Path) -> str | None:
    """:func:`other_owner` for ``media_root``."""
    return await other_owner(url, schema, file_store(media_root))


__all__ = ["claim_files", "database_location", "other_owner"]
