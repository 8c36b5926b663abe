"""Retention periods (``90d``, ``26w``, ``6m``, ``10y``, ``forever``) and the dates they give.

A period counts from a message's arrival. Months and years are calendar months and years
(an arrival on 31 January kept for one month is kept until 28 or 29 February), so that
"7y" means what a records schedule means by it. A date past the calendar's end is forever in
all but name; it is clamped to ``dates.LATEST`` rather than overflowing any reader.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from .dates import LATEST, days_in_month

FOREVER = "forever"
# fullmatch with ASCII digits: "$" would let "10y\n" through and \d Arabic-Indic digits.
_PERIOD = re.compile(r"([1-9][0-9]{0,3})([dwmy])", re.ASCII)
_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}


def check(value: object) -> str:
    """``value`` if it is a period; ValueError (saying what is allowed) if not."""
    if isinstance(value, str) and (value == FOREVER or _PERIOD.fullmatch(value)):
        return value
    raise ValueError(
        f'must be a period such as "90d", "26w", "6m", "10y" or "forever", not {value!r}'
    )


def length_days(period: str) -> float:
    """A period's approximate length in days, for comparing (``forever`` is the longest)."""
    m = _PERIOD.fullmatch(period)
    return float("inf") if m is None else int(m.group(1)) * _DAYS[m.group(2)]


def longest(periods: list[str]) -> str | None:
    return max(periods, key=length_days) if periods else None


def until(period: str, start: datetime) -> datetime | None:
    """The end of ``period`` counted from ``start`` (aware); None: kept forever."""
    m = _PERIOD.fullmatch(check(period)) if period != FOREVER else None
    if m is None:
        return None
    count, unit = int(m.group(1)), m.group(2)
    if unit in "dw":
        try:
            return min(start + timedelta(days=count * _DAYS[unit]), LATEST)
        except OverflowError:
            return LATEST
    months = start.month - 1 + count * (12 if unit == "y" else 1)
    year, month = start.year + months // 12, months % 12 + 1
    if year > LATEST.year:
        return LATEST
    return min(
        start.replace(year=year, month=month, day=min(start.day, days_in_month(year, month))),
        LATEST,
    )
