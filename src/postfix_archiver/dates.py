"""Dates from mail headers, made safe to store, sort and show.

A ``Date:`` header is written by the sender, so it can spell anything: year 0 or 99999, an
offset of +9999, 30 February, 25:61:61. Python's ``datetime`` holds years 1 to 9999 only, and
a value near either end overflows as soon as a reader shifts it into another time zone. So a
header date is read here into a UTC instant by plain arithmetic (no ``datetime`` on the way,
nothing to overflow), checked field by field, and clamped into ``[EARLIEST, LATEST]``: a day
inside either end of ``datetime``'s range, so every reader can convert it to any zone. A
header that names no real instant (30 February, hour 25, offset minutes over 59) is
unreadable: the caller uses the arrival time instead. The header's own text stays in the
message for display.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from email.utils import parsedate_tz

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# a day in from datetime's own limits: astimezone() to any real zone (±24 h) still works
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, 23, 59, 59, tzinfo=UTC)
EARLIEST_TS = int((EARLIEST - _EPOCH).total_seconds())
LATEST_TS = int((LATEST - _EPOCH).total_seconds())

# "31 Dec 9999" or "Dec 31 9999": the year as written, which parsedate_tz reads as a
# two-digit year whenever its value is under 100 ("0001" becomes 2001)
_DAY_MONTH_YEAR = re.compile(r"\b\d{1,2}[\s-]+[A-Za-z]{3}[A-Za-z]*\.?,?[\s-]+(\d+)\b")
_MONTH_DAY_YEAR = re.compile(r"\b[A-Za-z]{3}[A-Za-z]*\.?[\s-]+\d{1,2},?[\s-]+(\d+)\b")
# a numeric zone as written: +hhmm; parsedate_tz folds minutes over 59 into hours
_NUMERIC_ZONE = re.compile(r"(?<![\d:])([+-])(\d{4})\b")


_COMMENT = re.compile(r"\([^()]*\)")


class UnreadableDate(ValueError):
    """The header names no real instant; the message says why."""


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date, for any year (no overflow)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _written_year(value: str, parsed_year: int) -> int:
    """The year as the header wrote it: RFC 5322 4.3 adds 1900 to a three-digit year and
    reads four or more digits as they stand; two digits are parsedate_tz's business."""
    match = _DAY_MONTH_YEAR.search(value) or _MONTH_DAY_YEAR.search(value)
    if match is None:
        return parsed_year
    digits = match.group(1)
    if len(digits) == 3:
        return int(digits) + 1900
    if len(digits) >= 4:
        # past six digits the year is clamped anyway; int() of thousands of digits raises
        return int(digits) if len(digits) <= 6 else 10**6
    return parsed_year


def _header_instant(value: str) -> tuple[int, int]:
    """The UTC instant a Date header names, as seconds since the epoch (not clamped), and
    the header's zone offset in seconds.

    Raises ``UnreadableDate`` when the text is no date or names no real instant."""
    if not value.isascii():
        # a zone name in a comment is often in the sender's language: "(中国标准时间)"
        value = _COMMENT.sub(" ", value)
        if not value.isascii():  # non-ASCII digits or letters are no RFC 5322 date
            raise UnreadableDate("not an RFC 5322 date")
    try:
        fields = parsedate_tz(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        fields = None
    if fields is None:
        raise UnreadableDate("not a date")
    year, month, day, hour, minute, second = fields[:6]
    year = _written_year(value, year)
    if not 1 <= month <= 12:
        raise UnreadableDate(f"month {month}")
    if not 1 <= day <= days_in_month(year, month):
        raise UnreadableDate(f"day {day} of month {month}")
    if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 60):
        raise UnreadableDate(f"time {hour:02d}:{minute:02d}:{second:02d}")
    zone = _NUMERIC_ZONE.findall(value)
    if zone:
        hh, mm = int(zone[-1][1][:2]), int(zone[-1][1][2:])
        if hh > 23 or mm > 59:
            raise UnreadableDate(f"zone {zone[-1][0]}{zone[-1][1]}")
    offset = fields[9] or 0
    if abs(offset) >= 86400:
        raise UnreadableDate(f"zone offset of {offset} seconds")
    days = days_from_civil(year, month, day)
    return days * 86400 + hour * 3600 + minute * 60 + second - offset, offset


def header_timestamp(value: str) -> int:
    """The UTC instant a Date header names, as seconds since the epoch, not clamped."""
    return _header_instant(value)[0]


def clamp_timestamp(ts: int) -> int:
    return min(max(ts, EARLIEST_TS), LATEST_TS)


def from_timestamp(ts: int | float) -> datetime:
    """A stored timestamp as a UTC datetime; values beyond the range (an archive written
    before dates were clamped, a hand-edited catalog) come back clamped, never raise."""
    return _EPOCH + timedelta(seconds=clamp_timestamp(int(ts)))


def to_timestamp(value: datetime) -> int:
    """Seconds since the epoch, clamped into the range every reader accepts."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return clamp_timestamp(int((value - _EPOCH).total_seconds()))


def clamp(value: datetime) -> datetime:
    """``value`` itself when inside ``[EARLIEST, LATEST]``, else the nearest end (UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        if EARLIEST <= value <= LATEST:
            return value
    except OverflowError:  # pragma: no cover - comparing aware datetimes does not overflow
        pass
    return EARLIEST if value < EARLIEST else LATEST


def parse_header_date(value: str | None) -> tuple[datetime | None, str | None]:
    """A Date header as a UTC datetime every reader accepts, and a defect to record.

    ``(None, defect)``: unreadable, use the arrival time. ``(date, defect)``: readable but
    outside the years ``datetime`` can hold, clamped. ``(None, None)``: no header."""
    if not value or not value.strip():
        return None, None
    try:
        ts, offset = _header_instant(value)
    except UnreadableDate as exc:
        return None, f"unparseable Date header {value[:200]!r} ({exc}): arrival time used"
    clamped = clamp_timestamp(ts)
    if clamped != ts:
        defect = f"Date header {value[:200]!r} is outside the years 1-9999: stored as the nearest"
        return _EPOCH + timedelta(seconds=clamped), defect
    # in the sender's own zone, as the header wrote it (the margin makes this safe)
    return (_EPOCH + timedelta(seconds=ts)).astimezone(timezone(timedelta(seconds=offset))), None


def display(value: datetime, *, seconds: bool = False, zone: bool = True, tz: tzinfo = UTC) -> str:
    """``2024-05-06 07:08 UTC`` in ``tz`` (``2024-05-06 16:08 KST`` in Asia/Seoul), with a
    four-digit year (strftime's ``%Y`` writes year 102 as ``102`` on glibc)."""
    value = _in_zone(value, tz)
    text = f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d}"
    if seconds:
        text += f":{value.second:02d}"
    return f"{text} {zone_abbreviation(value)}" if zone else text


def display_day(value: datetime, tz: tzinfo = UTC) -> str:
    value = _in_zone(value, tz)
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _in_zone(value: datetime, tz: tzinfo) -> datetime:
    # clamped first, a day inside the years 1-9999: no zone's offset can push it outside
    return clamp(value).astimezone(tz)


def zone_abbreviation(value: datetime) -> str:
    """``KST``, ``CEST``, ``UTC``; the offset (``+04``) where the zone has no abbreviation."""
    return value.tzname() or value.strftime("%z")


@functools.cache
def zone_names() -> tuple[str, ...]:
    """Every IANA time zone name this system knows, sorted (read once)."""
    return tuple(sorted(zoneinfo.available_timezones()))


def time_zone(name: str) -> tzinfo | None:
    """The IANA time zone ``name`` (``Europe/Berlin``, ``UTC``); None if there is none.

    Only a name in ``zone_names`` is opened: ``ZoneInfo`` itself would try a path made of
    whatever it is given (``../``, NUL, a thousand characters) and raise on each in its own
    way. ``UTC`` needs no time zone database (a system without tzdata still starts)."""
    if name == "UTC":
        return UTC
    if len(name) > 64 or name not in zone_names():
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (ValueError, OSError, zoneinfo.ZoneInfoNotFoundError):  # a damaged tzdata file
        return None


def header_note(value: str | None) -> str | None:
    """The Date header's own text when the stored date is not what it says (unreadable, so
    the arrival time was used, or clamped): shown beside the stored date."""
    if value is None:
        return None
    _, defect = parse_header_date(value)
    return value if defect else None
