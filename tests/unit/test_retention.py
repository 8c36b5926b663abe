"""Retention periods: the dates they give, at the calendar's edges, and where they are kept."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.conftest import make_config

from postfix_archiver import retention
from postfix_archiver.archive import Archive
from postfix_archiver.dates import LATEST
from postfix_archiver.envelope import Envelope
from postfix_archiver.errors import ConfigError

T0 = datetime(2024, 1, 31, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        ("1d", datetime(2024, 2, 1, 9, 30, tzinfo=UTC)),
        ("2w", datetime(2024, 2, 14, 9, 30, tzinfo=UTC)),
        # calendar months: 31 January plus one month is the last day of February (a leap year)
        ("1m", datetime(2024, 2, 29, 9, 30, tzinfo=UTC)),
        ("13m", datetime(2025, 2, 28, 9, 30, tzinfo=UTC)),
        ("7y", datetime(2031, 1, 31, 9, 30, tzinfo=UTC)),
        ("forever", None),
    ],
)
def test_a_period_counts_calendar_units_from_the_arrival(
    period: str, expected: datetime | None
) -> None:
    assert retention.until(period, T0) == expected


def test_a_29_february_arrival_kept_a_year_ends_on_28_february() -> None:
    leap = datetime(2024, 2, 29, tzinfo=UTC)
    assert retention.until("1y", leap) == datetime(2025, 2, 28, tzinfo=UTC)


@pytest.mark.parametrize("period", ["9999y", "9999m", "9999w", "9999d"])
def test_a_date_past_the_calendar_is_clamped_not_overflowed(period: str) -> None:
    late = datetime(9999, 12, 1, tzinfo=UTC)
    assert retention.until(period, late) == LATEST


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
    st.integers(1, 9999),
    st.sampled_from("dwmy"),
)
def test_every_period_from_every_day_gives_a_date_no_earlier(
    start: datetime, count: int, unit: str
) -> None:
    end = retention.until(f"{count}{unit}", start)
    assert end is not None
    assert start <= end <= LATEST


@pytest.mark.parametrize(
    "bad", ["10 years", "0d", "10000y", "-1y", "١٠y", "1٠y", "1\u0663y", "10y\n", "10Y", "", 10]
)
def test_what_is_not_a_period_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="must be a period"):
        retention.check(bad)


def test_longest_prefers_forever_then_the_longest_period() -> None:
    assert retention.longest(["90d", "1y", "26w"]) == "1y"
    assert retention.longest(["10y", "forever"]) == "forever"
    assert retention.longest([]) is None


def test_the_default_retention_is_checked_with_the_line_at_fault(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config.toml:3: archive.retention: must be a period"):
        make_config(tmp_path, 'retention = "10 years"\n')


def envelope(received: datetime, queue_id: str) -> Envelope:
    return Envelope("a@example.com", ("b@example.com",), queue_id=queue_id, received=received)


RAW = b"From: a@example.com\r\nSubject: kept\r\n\r\nbody\r\n"


def stored_until(archive: Archive, ident: int) -> datetime | None:
    return archive.get(ident).retain_until


def test_the_default_retention_dates_each_message(tmp_path: Path) -> None:
    with Archive(make_config(tmp_path, 'retention = "90d"\n')) as archive:
        ident = archive.ingest(RAW, envelope(T0, "Q1")).id
        assert stored_until(archive, ident) == T0 + timedelta(days=90)


def test_forever_is_the_default_and_is_stored_as_no_date(tmp_path: Path) -> None:
    with Archive(make_config(tmp_path)) as archive:
        ident = archive.ingest(RAW, envelope(T0, "Q1")).id
        assert stored_until(archive, ident) is None


def test_a_later_arrival_extends_the_retention_never_shortens_it(tmp_path: Path) -> None:
    with Archive(make_config(tmp_path, 'retention = "90d"\n')) as archive:
        first = archive.ingest(RAW, envelope(T0, "Q1")).id
        later = T0 + timedelta(days=30)
        again = archive.ingest(RAW, envelope(later, "Q2")).id
        assert first == again
        assert stored_until(archive, first) == later + timedelta(days=90)
        # an arrival dated earlier (an old mbox imported now) does not shorten it
        archive.ingest(RAW, envelope(T0 - timedelta(days=365), "Q3"))
        assert stored_until(archive, first) == later + timedelta(days=90)


def test_held_names_only_messages_under_an_active_hold(tmp_path: Path) -> None:
    with Archive(make_config(tmp_path)) as archive:
        a, b, c = (
            archive.ingest(RAW + str(n).encode(), envelope(T0, f"Q{n}")).id for n in range(3)
        )
        assert archive.catalog.held([a, b, c]) == set()
    # the hold commands land separately; their rows are what the catalog reads
    db = sqlite3.connect(tmp_path / "catalog.sqlite")
    with db:
        db.execute(
            "INSERT INTO holds (id, name, query, reason, created_by, created_at) "
            "VALUES (1, 'case', 'x', 'r', 'root', 0), (2, 'old', 'y', 'r', 'root', 0)"
        )
        db.execute("UPDATE holds SET released_at = 1, released_by = 'root' WHERE id = 2")
        db.executemany("INSERT INTO message_holds (hold, message) VALUES (?, ?)", [(1, a), (2, b)])
    db.close()
    with Archive(make_config(tmp_path)) as archive:
        assert archive.catalog.held([a, b, c]) == {a}
        assert archive.catalog.held(list(range(1, 2000))) == {a}
