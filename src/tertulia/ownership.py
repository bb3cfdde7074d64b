"""Which database owns the files in ``media_root``.

``tertulia copy`` keeps every conversation's id, and the files stay where they are: a copy
(a backup, a staging server) given the same ``media_root`` names the same directories as
its original. Deleting a conversation there (``tertulia delete``, retention) removed the
original's files, those uploaded after the copy included. So each database has an id of
its own (``database_identity``, made by its migration and never copied), and ``media_root``
is marked with the id of the database whose files it holds: the first to look at an
unmarked one (a server starting, a deletion, the source of a copy). Only that database
deletes files there; another sharing it is told so (a warning at start, a line from
``tertulia delete``).
"""

from __future__ import annotations

from pathlib import Path

from tertulia.files import file_store
from tertulia.files.store import FileStore
from tertulia.storage.database import Database
from tertulia.storage.identity import database_id
from tertulia.storage.migrate import open_current


async def other_owner(db: Database, store: FileStore) -> str | None:
    """The id of the database whose files ``store`` holds when that is not ``db`` (``db``
    is a copy sharing them: it must not delete them), else None. A store not marked yet
    is marked as ``db``'s."""
    async with db.read() as conn:
        own_id = await database_id(conn)
    owner = await store.claim(own_id)
    return None if owner == own_id else owner


async def claim_files(url: str, schema: str | None, media_root: Path) -> str | None:
    """:func:`other_owner` for the database at ``url``: a copy's source claims its files
    before anything could run on the copy."""
    db = await open_current(url, schema)
    try:
        return await other_owner(db, file_store(media_root))
    finally:
        await db.close()


__all__ = ["claim_files", "other_owner"]
