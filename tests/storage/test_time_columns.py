"""UTC time columns on SQLite: the stored text, and what reads back."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects.sqlite import pysqlite

from tertulia.storage.tables import UTCDateTime

DIALECT = pysqlite.dialect()
TO_TEXT = UTCDateTime().bind_processor(DIALECT)
FROM_TEXT = UTCDateTime().result_processor(DIALECT, None)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 2, 6, 0, 5, 123456, UTC),
        datetime(2026, 12, 2, 3, 0, 5, 123456, timezone(timedelta(hours=-3))),
        datetime(2026, 12, 2, 6, 0, 5, 123456),  # naive: taken as UTC
    ],
)
def test_times_are_stored_as_sqlalchemy_writes_them(moment: datetime) -> None:
    """Always ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, as SQLAlchemy's own DateTime does."""
    assert TO_TEXT is not None
    assert TO_TEXT(moment) == "2026-12-02 06:00:05.123456"
    whole = moment.replace(microsecond=0)
    assert TO_TEXT(whole) == "2026-12-02 06:00:05.000000"  # the text sorts as time does
    assert TO_TEXT(moment.replace(microsecond=5)) == "2026-12-02 06:00:05.000005"


def test_stored_times_read_back_as_aware_utc() -> None:
    assert FROM_TEXT is not None
    read = FROM_TEXT("2026-12-02 06:00:05.123456")
    assert read == datetime(2026, 12, 2, 6, 0, 5, 123456, UTC)
    assert read.tzinfo is UTC
    assert TO_TEXT is not None
    assert TO_TEXT(None) is None
    assert FROM_TEXT(None) is None


def test_nulls_bind_as_nulls() -> None:
    """The NULL adapter (registered by the SQLite module) stores and reads NULL."""
    import tertulia.storage.sqlite  # noqa: F401  (registers it)

    with sqlite3.connect(":memory:") as raw:
        raw.execute("CREATE TABLE t (a, b)")
        raw.execute("INSERT INTO t VALUES (?, ?)", (None, 1))
        assert raw.execute("SELECT a IS NULL, typeof(a), b FROM t").fetchone() == (1, "null", 1)
