"""Times on the wire: formatting and the history filters' parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tertulia.domain.times import as_utc, format_time, parse_query_time, utcnow
from tertulia.errors import ValidationFailed


def test_times_print_with_z_and_six_or_no_digits() -> None:
    """Microseconds give six digits, none give no fraction; always UTC with Z."""
    assert (
        format_time(datetime(2026, 11, 25, 14, 55, 39, 166537, UTC))
        == "2026-11-25T14:55:39.166537Z"
    )
    assert format_time(datetime(2026, 11, 25, 14, 55, 39, 0, UTC)) == "2026-11-25T14:55:39Z"
    assert format_time(datetime(2026, 11, 25, 14, 55, 39, 5, UTC)) == "2026-11-25T14:55:39.000005Z"
    plus_two = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 11, 25, 16, 0, 0, tzinfo=plus_two)) == "2026-11-25T14:00:00Z"


def test_naive_times_are_utc() -> None:
    """A naive datetime is read as UTC."""
    assert as_utc(datetime(2026, 1, 1, 12)) == datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-25T14:55:39.166Z", datetime(2026, 11, 25, 14, 55, 39, 166000, UTC)),
        ("2026-11-25T14:55:39z", datetime(2026, 11, 25, 14, 55, 39, tzinfo=UTC)),
        ("2026-11-25T16:55:39+02:00", datetime(2026, 11, 25, 14, 55, 39, tzinfo=UTC)),
        ("2026-11-25T14:55:39", datetime(2026, 11, 25, 14, 55, 39, tzinfo=UTC)),
        ("2030-01-01", datetime(2030, 1, 1, tzinfo=UTC)),
    ],
)
def test_query_times_parse(raw: str, expected: datetime) -> None:
    """until/since take ISO 8601 with Z or an offset, naive times as UTC, or a bare date."""
    assert parse_query_time(raw) == expected


def test_now_is_now() -> None:
    """The word 'now' is the current time."""
    before = utcnow()
    assert before <= parse_query_time("now") <= utcnow()


@pytest.mark.parametrize(
    "raw",
    [
        "yesterday",
        "2026-13-01",
        "2026-02-30T00:00:00Z",
        "",
        "12",
        "9999-12-31T23:00:00-14:00",  # after the last moment a datetime holds, in UTC
        "0001-01-01T00:00:00+14:00",  # before the first
    ],
)
def test_bad_query_times_are_400(raw: str) -> None:
    """Anything else, an impossible date, or one that is out of range once in UTC, is
    refused with BLAB's message."""
    with pytest.raises(ValidationFailed) as caught:
        parse_query_time(raw)
    assert caught.value.body() == {"detail": f"Invalid date-time string: {raw}", "code": "invalid"}
