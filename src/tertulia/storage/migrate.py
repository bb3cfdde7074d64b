"""Bring a database's schema up to date with Alembic (``tertulia migrate``)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from alembic import command
from alembic.config import Config

from tertulia.errors import ConfigurationError

_MIGRATIONS = Path(__file__).with_name("migrations")
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def alembic_config(url: str, schema: str | None = None) -> Config:
    """An Alembic configuration for ``url``, with no ini file needed."""
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ConfigurationError(f"invalid database schema name {schema!r}")
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["schema"] = schema
    return config


def upgrade(url: str, schema: str | None = None, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` (blocking; runs its own event loop)."""
    command.upgrade(alembic_config(url, schema), revision)


async def upgrade_async(url: str, schema: str | None = None) -> None:
    """:func:`upgrade` from async code (Alembic's env runs its own loop, so in a thread)."""
    await asyncio.to_thread(upgrade, url, schema)
