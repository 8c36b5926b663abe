"""The statistics page: counted by arrival unless asked for the Date header, every day or
month with its bar (empty ones too), bars apart, dates from hostile headers kept aside."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from postfix_archiver.envelope import Envelope
from postfix_archiver.web.chart import Bar, chart, svg

from .web_helpers import Web

TODAY = date(2026, 11, 30)


def _mail(n: int, date_header: str) -> bytes:
    return (
        f"From: spam{n}@example.net\r\nTo: bob@example.com\r\nSubject: offer {n}\r\n"
        f"Date: {date_header}\r\nMessage-ID: <s{n}@example.net>\r\n\r\nbuy\r\n"
    ).encode()


def _titles(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<rect class="(bar[^"]*)"[^>]*><title>([^<]*)</title>', html)


RECT = re.compile(r'<rect class="bar[^"]*" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"')


def _rects(html: str) -> list[tuple[float, float]]:
    return [(float(x), float(w)) for x, w in RECT.findall(html)]


def test_arrival_is_the_default_and_the_page_says_so(web: Web) -> None:
    now = datetime.now(UTC)
    headers = ["Sat, 01 Jan 2099 00:00:00 +0000", "Sun, 02 Feb 0102 02:02:02 +0000",
               "Mon, 3 Mar 1965 00:00:00 +0000"]  # fmt: skip
    for n, header in enumerate(headers):
        envelope = Envelope("spam@example.net", ("bob@example.com",), received=now)
        web.archive.ingest(_mail(n, header), envelope)
    client = web.login("audra")
    page = client.get("/stats")
    assert page.status_code == 200
    assert "by arrival</h2>" in page.text
    assert '<strong aria-current="true">arrival</strong>' in page.text
    assert '<a href="/stats?by=date">Date header</a>' in page.text
    bars = _titles(page.text)
    # the cast arrived on 2025-01-07, the spam today: a month a bar, every month in between
    assert bars[0] == ("bar", "2025-01: 4 messages, " + bars[0][1].split(", ")[1])
    assert bars[-1][1].startswith(f"{now:%Y-%m}: 3 messages")
    assert not [b for b in bars if "odd" in b[0]]
    assert len(bars) == (now.year - 2025) * 12 + now.month  # empty months drawn too
    assert ("bar empty", "2025-02: 0 messages, 0 B") in bars
    by_date = client.get("/stats", params={"by": "date"})
    assert "by Date header</h2>" in by_date.text
    odd = [t for c, t in _titles(by_date.text) if c == "bar odd"]
    assert odd[0].startswith("before 1970 (0102-02-02 to 1965-03-03): 2 messages")
    assert odd[1].startswith("in the future (2099-01-01): 1 message,")
    assert "3 messages claim a date before 1970 or in the future" in by_date.text
    assert "Date headers run from 0102-02-02 to 2099-01-01" in by_date.text


@pytest.mark.parametrize("by", ["", "Date", "received", "x" * 5000, "٢", "arrival\x00"])
def test_an_unknown_count_is_400(web: Web, by: str) -> None:
    response = web.login("audra").get("/stats", params={"by": by})
    assert response.status_code == 400
    assert "by: Input should be 'arrival' or 'date'" in response.text.replace("&#39;", "'")


def test_days_then_months_then_years_every_one_drawn() -> None:
    days = chart([("2026-11-01", 2, 10), ("2026-11-03", 1, 5)], TODAY)
    assert days.unit == "day"
    assert [(b.label, b.count) for b in days.bars] == [
        ("2026-11-01", 2), ("2026-11-02", 0), ("2026-11-03", 1)
    ]  # fmt: skip
    months = chart([("2025-01-31", 1, 1), ("2025-05-01", 2, 1), ("2025-05-30", 1, 1)], TODAY)
    assert months.unit == "month"
    assert [(b.label, b.count) for b in months.bars] == [
        ("2025-01", 1), ("2025-02", 0), ("2025-03", 0), ("2025-04", 0), ("2025-05", 3)
    ]  # fmt: skip
    years = chart([("1970-01-01", 1, 1), ("2026-11-30", 1, 1)], TODAY)
    assert years.unit == "year"
    assert len(years.bars) == 57
    assert years.bars[1] == Bar("1971")
    assert chart([], TODAY).bars == []


def test_hostile_dates_are_kept_aside_and_marked() -> None:
    drawn = chart([("0001-01-02", 1, 1), ("0102-02-02", 2, 1), ("1969-12-31", 1, 1),
                   ("2026-11-29", 5, 1), ("2026-12-01", 1, 1), ("2026-12-02", 3, 1),
                   ("9999-12-30", 4, 1), ("bogus", 1, 1)], TODAY)  # fmt: skip
    assert drawn.unit == "day"
    labels = [(b.label, b.count, b.odd) for b in drawn.bars]
    assert labels == [("before 1970", 5, True), ("2026-11-29", 5, False),
                      ("2026-11-30", 0, False), ("2026-12-01", 1, False),
                      ("in the future", 7, True)]  # fmt: skip
    assert drawn.bars[0].span == ("0001-01-02", "bogus")
    assert drawn.bars[-1].span == ("2026-12-02", "9999-12-30")
    only_odd = chart([("0102-02-02", 1, 1)], TODAY)
    assert [b.label for b in only_odd.bars] == ["before 1970"]
    assert "before 1970 (0102-02-02): 1 message," in svg(only_odd)


def test_bars_stand_apart_and_the_axis_is_labelled_once() -> None:
    for n_days in (1, 2, 91, 400, 40_000):
        start = TODAY - timedelta(days=n_days - 1)
        per_day = [((start + timedelta(days=i)).isoformat(), 1 + i % 3, 1) for i in range(n_days)]
        drawn = svg(chart(per_day, TODAY))
        rects = _rects(drawn)
        assert rects, n_days
        for (x1, w1), (x2, _) in itertools.pairwise(rects):
            assert x2 - (x1 + w1) >= 0.99, (n_days, x1, w1, x2)  # at least a pixel of gap
        axis = re.findall(r'<text class="tick" x="[\d.]+" y="232"[^>]*>([^<]*)</text>', drawn)
        assert len(axis) == (1 if len(rects) == 1 else 2), (n_days, axis)
        assert len(set(axis)) == len(axis)


def test_plural_and_singular() -> None:
    drawn = svg(chart([("2026-11-29", 1, 10), ("2026-11-30", 2, 10)], TODAY))
    assert "2026-11-29: 1 message, 10 B" in drawn
    assert "2026-11-30: 2 messages, 10 B" in drawn
    assert "1 messages" not in drawn
