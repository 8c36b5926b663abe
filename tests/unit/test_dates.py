"""Header dates: anything a sender can write is stored as a date every reader accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from postfix_archiver.dates import (
    EARLIEST,
    LATEST,
    clamp,
    days_from_civil,
    from_timestamp,
    parse_header_date,
    to_timestamp,
)

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _usable(value: datetime) -> None:
    """What readers do with a stored date must not raise."""
    assert EARLIEST <= value <= LATEST
    value.isoformat()
    value.astimezone(timezone(timedelta(hours=14)))
    value.astimezone(timezone(timedelta(hours=-12)))
    from_timestamp(to_timestamp(value))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Tue, 3 Jun 2008 11:05:30 GMT", datetime(2008, 6, 3, 11, 5, 30, tzinfo=UTC)),
        ("Sat, 1 Jan 2024 09:05:07 +0100", datetime(2024, 1, 1, 8, 5, 7, tzinfo=UTC)),
        ("1 Jan 24 10:00 GMT", datetime(2024, 1, 1, 10, 0, tzinfo=UTC)),
        ("1 Jan 99 10:00 GMT", datetime(1999, 1, 1, 10, 0, tzinfo=UTC)),
        # RFC 5322 4.3: three digits add 1900, four are read as written
        ("1 Jan 104 10:00 +0000", datetime(2004, 1, 1, 10, 0, tzinfo=UTC)),
        ("Mon, 1 Feb 0099 10:00:00 +0000", datetime(99, 2, 1, 10, 0, tzinfo=UTC)),
        ("29 Feb 2024 00:00 +0100", datetime(2024, 2, 28, 23, 0, tzinfo=UTC)),
        ("Thu, 01 Jan 1970 00:00:10 +0000", datetime(1970, 1, 1, 0, 0, 10, tzinfo=UTC)),
        ("Mon, 1 Jan 2024 10:00:00 +0800 (中国标准时间)", datetime(2024, 1, 1, 2, tzinfo=UTC)),
    ],
)
def test_readable_dates(header: str, expected: datetime) -> None:
    assert parse_header_date(header) == (expected, None)


@pytest.mark.parametrize(
    ("header", "end"),
    [
        ("Fri, 31 Dec 9999 23:59:59 -1200", LATEST),
        ("1 Jan 99999 10:00 +0000", LATEST),
        ("Mon, 1 Jan 0001 10:00:00 +0000", EARLIEST),
        ("Mon, 1 Jan 0000 10:00:00 +0000", EARLIEST),
    ],
)
def test_dates_beyond_datetime_are_clamped_and_noted(header: str, end: datetime) -> None:
    date, defect = parse_header_date(header)
    assert date == end
    assert defect is not None
    assert "outside the years" in defect
    _usable(date)


@pytest.mark.parametrize(
    "header",
    [
        "30 Feb 2025 10:00:00 +0000",
        "29 Feb 2023 10:00:00 +0000",
        "garbage date",
        "Mon, 1 Jan 2024 25:61:61 +9999",
        "Mon, 1 Jan 2024 10:00:00 +9959",
        "Mon, 1 Jan 2024 10:00:00 +0160",
        "Mon, 1 Jan 2024 10:60:00 +0000",
        "31 Apr 2024 10:00 +0000",
        "\x00\x00",
        "1 Jan " + "9" * 5000 + " 10:00 +0000",
        "Mon, 1 Jan 2024 10:00:00 +0000".replace("2024", "２０２４"),
    ],
)
def test_unreadable_dates_leave_the_choice_to_the_caller(header: str) -> None:
    date, defect = parse_header_date(header)
    assert date is None
    assert defect is not None
    assert defect.startswith("unparseable Date header")


def test_no_header_is_no_defect() -> None:
    assert parse_header_date(None) == (None, None)
    assert parse_header_date("  ") == (None, None)


@given(st.text(max_size=80))
@settings(max_examples=400)
def test_any_text_is_safe(header: str) -> None:
    date, _ = parse_header_date(header)
    if date is not None:
        _usable(date)


@given(
    st.integers(0, 99999),
    st.integers(1, 12),
    st.integers(1, 31),
    st.integers(0, 30),
    st.integers(0, 99),
    st.integers(0, 99),
    st.sampled_from("+-"),
    st.integers(0, 99),
    st.integers(0, 99),
)
@example(2020, 12, 31, 23, 59, 60, "+", 0, 0)  # a leap second: this test's own bug, once
@settings(max_examples=400)
def test_any_spelled_date_is_safe(
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int,
    sign: str,
    oh: int,
    om: int,
) -> None:
    header = (
        f"{day} {MONTHS[month - 1]} {year:04d} {hour:02d}:{minute:02d}:{second:02d} "
        f"{sign}{oh:02d}{om:02d}"
    )
    date, defect = parse_header_date(header)
    if date is None:
        assert defect is not None
        return
    _usable(date)
    if 1900 <= year <= 9000:
        # inside the range: exactly what datetime computes
        zone = timezone((1 if sign == "+" else -1) * timedelta(hours=oh, minutes=om))
        # a leap second (:60) is the first second of the next minute, as RFC 5322 allows it
        # and Python counts it; datetime() itself refuses 60
        start = datetime(year, month, day, hour, minute, tzinfo=zone)
        assert date == start + timedelta(seconds=second)


@given(st.integers(-(10**15), 10**15))
def test_stored_timestamps_always_read_back(ts: int) -> None:
    _usable(from_timestamp(ts))


@given(st.dates())
def test_day_arithmetic_matches_datetime(day: object) -> None:
    assert isinstance(day, type(datetime(2000, 1, 1).date()))
    assert days_from_civil(day.year, day.month, day.day) == (day - datetime(1970, 1, 1).date()).days


def test_clamp_keeps_values_in_range_exactly() -> None:
    value = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=9)))
    assert clamp(value) is value
    assert clamp(datetime(9999, 12, 31, 23, 0, tzinfo=UTC)) == LATEST
    assert clamp(datetime(1, 1, 1, tzinfo=UTC)) == EARLIEST
