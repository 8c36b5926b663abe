"""The statistics chart: messages per day, month or year, drawn here as SVG (no script).

Every day, month or year between the first and the last has its bar, an empty one too, and
bars stand apart. Dates a chart cannot place sensibly, the ones Date headers of spam and
broken clients claim (year 102, 2099), are not stretched over: days before 1970 share one
bar "before 1970" at the left, days after tomorrow one bar "in the future" at the right, both
marked as such.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

from markupsafe import Markup

from .render import human_size

EPOCH = date(1970, 1, 1)
DAYS_AT_MOST = 92  # a bar a day up to about three months, then a month, then a year
MONTHS_AT_MOST = 120
Unit = Literal["day", "month", "year"]


@dataclass(slots=True)
class Bar:
    label: str
    count: int = 0
    size: int = 0
    odd: bool = False  # the "before 1970" and "in the future" bars
    span: tuple[str, str] | None = None  # first and last day in an odd bar

    def add(self, day: str, count: int, size: int) -> None:
        self.count += count
        self.size += size
        if self.odd:
            first, last = self.span or (day, day)
            self.span = (min(first, day), max(last, day))


@dataclass(slots=True)
class Chart:
    unit: Unit
    bars: list[Bar] = field(default_factory=list)


def messages(n: int) -> str:
    return f"{n} message{'' if n == 1 else 's'}"


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def chart(per_day: Sequence[tuple[str, int, int]], today: date) -> Chart:
    """``per_day`` (YYYY-MM-DD, count, bytes; the catalog's) as bars up to ``today``."""
    before = Bar("before 1970", odd=True)
    after = Bar("in the future", odd=True)
    days: dict[date, tuple[int, int]] = {}
    horizon = today + timedelta(days=1)  # a clock a day ahead is not "the future" yet
    for text, count, size in per_day:
        day = _day(text)
        if day is None or day < EPOCH:
            before.add(text, count, size)
        elif day > horizon:
            after.add(text, count, size)
        else:
            n, s = days.get(day, (0, 0))
            days[day] = (n + count, s + size)
    result = Chart("day")
    if days:
        first, last = min(days), max(days)
        months = (last.year - first.year) * 12 + last.month - first.month + 1
        if (last - first).days < DAYS_AT_MOST:
            result.unit = "day"
        elif months <= MONTHS_AT_MOST:
            result.unit = "month"
        else:
            result.unit = "year"
        key = _LABELS[result.unit]
        bars: dict[str, Bar] = {}
        day = first
        while day <= last:  # every day, month or year in between: empty ones too
            bars.setdefault(key(day), Bar(key(day)))
            day = _next(day, result.unit)
        bars.setdefault(key(last), Bar(key(last)))
        for day, (count, size) in days.items():
            bars[key(day)].add(day.isoformat(), count, size)
        result.bars = list(bars.values())
    result.bars = [b for b in (before,) if b.count] + result.bars + [b for b in (after,) if b.count]
    return result


_LABELS: dict[Unit, Callable[[date], str]] = {
    "day": lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}",
    "month": lambda d: f"{d.year:04d}-{d.month:02d}",
    "year": lambda d: f"{d.year:04d}",
}


def _next(day: date, unit: Unit) -> date:
    if unit == "day":
        return day + timedelta(days=1)
    if unit == "month":
        return date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return date(day.year + 1, 1, 1)


def svg(drawn: Chart) -> Markup:
    """The chart as inline SVG: a bar per label, a gap between bars, ticks for the peak and
    zero, the first and last label under the axis (once when they are the same)."""
    width, height, left, bottom, top = 900, 240, 48, 28, 12
    esc = html.escape
    bars = drawn.bars
    if not bars:
        return Markup(  # noqa: S704 - no outside text in it
            f'<svg class="chart" viewBox="0 0 {width} 60" role="img" '
            'aria-label="no messages yet"><text x="10" y="35">No messages yet.</text></svg>'
        )
    peak = max(b.count for b in bars) or 1
    plot_w, plot_h = width - left - 8, height - bottom - top
    step = plot_w / len(bars)
    gap = max(1.0, step * 0.25)  # at least a pixel between bars, however many
    bar_w = max(step - gap, 0.5)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="messages per {drawn.unit}">',
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - 8}" '
        f'y2="{top + plot_h}"/>',
        f'<text class="tick" x="{left - 6}" y="{top + 10}" text-anchor="end">{peak}</text>',
        f'<text class="tick" x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    for i, bar in enumerate(bars):
        h = plot_h * bar.count / peak
        x = left + i * step + gap / 2
        label = bar.label
        if bar.span:
            label += (
                f" ({bar.span[0]} to {bar.span[1]})"
                if bar.span[0] != bar.span[1]
                else (f" ({bar.span[0]})")
            )
        css = "bar odd" if bar.odd else "bar"
        if not bar.count:  # an empty day or month keeps its place: a stub on the axis
            css, h = "bar empty", 1.0
        parts.append(
            f'<rect class="{css}" x="{x:.2f}" y="{top + plot_h - h:.2f}" width="{bar_w:.2f}" '
            f'height="{h:.2f}"><title>{esc(label)}: {messages(bar.count)}, '
            f"{esc(human_size(bar.size))}</title></rect>"
        )
    parts.append(f'<text class="tick" x="{left}" y="{height - 8}">{esc(bars[0].label)}</text>')
    if len(bars) > 1:
        parts.append(
            f'<text class="tick" x="{width - 8}" y="{height - 8}" text-anchor="end">'
            f"{esc(bars[-1].label)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label escaped above
