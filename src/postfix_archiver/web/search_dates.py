"""The search page's date range: the from/to dates of its form and its quick ranges (today,
the last 7 and 30 days, this year), compiled to the query language's ``after:``/``before:``.

The dates are days in the reader's time zone; the terms added to the query are the UTC
instants where those days begin, so ``from=2026-11-30`` in Seoul searches
``after:2026-11-29T15:00:00Z``. The query box keeps what the user typed: the range is its own
state in the URL (``from``, ``to``), shown and cleared on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

_DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
# the first and last days whose start, in any zone, is a datetime (no day before year 1 or
# after year 9999 once shifted by an offset of up to a day)
_FIRST_DAY = date(1, 1, 2)
_LAST_DAY = date(9999, 12, 30)


class DateRangeError(ValueError):
    """A from/to value that is not a day, or a range that ends before it begins."""


@dataclass(frozen=True, slots=True)
class DateRange:
    """Days ``first`` to ``last``, both included, either open (None)."""

    first: date | None = None
    last: date | None = None

    @property
    def empty(self) -> bool:
        return self.first is None and self.last is None

    def terms(self, zone: tzinfo) -> str:
        """The range as ``after:``/``before:`` terms for days in ``zone`` ("" if open)."""
        parts = []
        if self.first is not None:
            parts.append(f"after:{_start_of(self.first, zone)}")
        if self.last is not None and self.last <= _LAST_DAY:
            parts.append(f"before:{_start_of(self.last + timedelta(days=1), zone)}")
        return " ".join(parts)

    def params(self) -> dict[str, str]:
        return {
            "from": self.first.isoformat() if self.first else "",
            "to": self.last.isoformat() if self.last else "",
        }


def _start_of(day: date, zone: tzinfo) -> str:
    """The UTC instant ``day`` begins in ``zone``, as the query language writes it."""
    start = datetime.combine(day, time(), zone).astimezone(UTC)
    return f"{start.year:04d}-{start.month:02d}-{start.day:02d}T{start:%H:%M:%S}Z"


def parse_day(value: str, name: str) -> date | None:
    """``YYYY-MM-DD`` (ASCII digits) as a date, None if blank; DateRangeError if bad."""
    value = value.strip()
    if not value:
        return None
    shown = value[:40]
    if _DAY_RE.fullmatch(value) is None:
        raise DateRangeError(f"{name}: needs a day like 2024-01-31, got {shown!r}")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise DateRangeError(f"{name}: no such day: {shown!r}") from None
    if not _FIRST_DAY <= day <= _LAST_DAY:
        raise DateRangeError(f"{name}: needs a day from 0001-01-02 to 9999-12-30, got {shown!r}")
    return day


def parse_range(first: str, last: str) -> DateRange:
    """The form's ``from`` and ``to``; DateRangeError if either is bad or to < from."""
    start, end = parse_day(first, "from"), parse_day(last, "to")
    if start is not None and end is not None and end < start:
        raise DateRangeError(f"the range ends ({end}) before it begins ({start}): swap them")
    return DateRange(start, end)


def quick_ranges(today: date) -> list[tuple[str, DateRange]]:
    """The quick ranges offered as links, for ``today`` (the reader's day)."""
    return [
        ("today", DateRange(today, today)),
        ("last 7 days", DateRange(today - timedelta(days=6), today)),
        ("last 30 days", DateRange(today - timedelta(days=29), today)),
        ("this year", DateRange(date(today.year, 1, 1), date(today.year, 12, 31))),
    ]
