"""Times shown in a reader's time zone, and the one check of a time zone name."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from postfix_archiver.dates import (
    EARLIEST,
    LATEST,
    display,
    display_day,
    time_zone,
    zone_names,
)

NOON = datetime(2025, 7, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("UTC", "2025-07-01 12:00 UTC"),
        ("Asia/Seoul", "2025-07-01 21:00 KST"),
        ("America/New_York", "2025-07-01 08:00 EDT"),
        ("Europe/Berlin", "2025-07-01 14:00 CEST"),
        ("Asia/Dubai", "2025-07-01 16:00 +04"),  # no abbreviation: the offset
        ("Pacific/Kiritimati", "2025-07-02 02:00 +14"),
    ],
)
def test_a_time_in_a_zone_with_its_abbreviation(zone: str, shown: str) -> None:
    tz = time_zone(zone)
    assert tz is not None
    assert display(NOON, tz=tz) == shown


def test_winter_and_summer_abbreviations_differ() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert display(datetime(2025, 1, 7, 10, tzinfo=UTC), tz=berlin) == "2025-01-07 11:00 CET"
    assert display(NOON, tz=berlin, seconds=True) == "2025-07-01 14:00:00 CEST"
    assert display(NOON, tz=berlin, zone=False) == "2025-07-01 14:00"


def test_the_day_is_the_readers() -> None:
    late = datetime(2025, 1, 7, 20, tzinfo=UTC)
    assert display_day(late) == "2025-01-07"
    assert display_day(late, ZoneInfo("Asia/Seoul")) == "2025-01-08"


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Etc/GMT+12", "America/St_Johns"])
def test_the_ends_of_the_calendar_do_not_overflow_in_any_zone(zone: str) -> None:
    tz = ZoneInfo(zone)
    for value in (EARLIEST, LATEST, datetime.min, datetime.max.replace(tzinfo=UTC)):
        assert display(value, tz=tz)[:4] in ("0001", "9999")
        assert display_day(value, tz)[:4] in ("0001", "9999")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "KST",
        "asia/seoul",
        "../../../etc/passwd",
        "/etc/localtime",
        "Europe/Berlin\x00",
        "x" * 100_000,
        "Asia/Seoul/..",
        "\udcff",
        "Ａsia/Seoul",
    ],
)
def test_a_name_that_is_no_zone_is_none(name: str) -> None:
    assert time_zone(name) is None


def test_every_listed_name_opens() -> None:
    names = zone_names()
    assert "Asia/Seoul" in names
    assert list(names) == sorted(names)
    assert all(time_zone(n) is not None for n in names)
    assert time_zone("UTC") is UTC
