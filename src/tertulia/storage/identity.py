"""This database's own id (the table ``database_identity``, made by its migration)."""

from __future__ import annotations

from sqlalchemy import select

from tertulia.storage.database import Connection
from tertulia.storage.tables import database_identity

_READ = select(database_identity.c.id).limit(1)


async def database_id(conn: Connection) -> str:
    """The id made when this database was migrated to revision 0010; a copy has its own."""
    found = (await conn.execute(_READ)).scalar()
    if found is None:  # (only if someone emptied the table: the migration fills it)
        raise LookupError("this database has no id: the table database_identity is empty")
    return str(found)


__all__ = ["database_id"]
