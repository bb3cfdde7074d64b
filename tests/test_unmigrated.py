"""The commands that read or edit a database they do not migrate (``export``, ``delete``,
``copy``'s source) refuse one that is not at this code's schema in one line that says what
to do: a wrong ``database_schema``, say. Before, export and delete answered with the
driver's error on the first table they lacked (``UndefinedTableError: relation
"conversations" does not exist``), or, for ``delete ID``, a misleading "no conversation"."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tertulia.cli import delete, export
from tertulia.settings import Settings
from tertulia.storage.sqlite import sqlite_path

SOME_ID = "0190c5a0-0000-7000-8000-000000000000"


@pytest.mark.parametrize("command", ["export", "delete ID", "delete --idle-before"])
def test_a_database_never_migrated_is_refused_in_one_line(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str], command: str
) -> None:
    settings = make_settings()  # a fresh database (file or schema) no server has migrated
    if settings.database_url.startswith("sqlite"):
        sqlite3.connect(sqlite_path(settings.database_url)).close()  # there, but empty
    run: dict[str, Callable[[], Any]] = {
        "export": lambda: export(settings, [], None),
        "delete ID": lambda: delete(settings, [SOME_ID]),
        "delete --idle-before": lambda: delete(settings, [], datetime.now(UTC)),
    }
    assert run[command]() == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tertulia: the database at "), err
    assert "is at schema revision none (never migrated)" in err
    assert err.endswith("run `tertulia migrate` on it first")
    if settings.database_schema:
        assert f"(schema {settings.database_schema})" in err
