"""The search page's date range (form and quick links), its sort and page-size links, and a
page past the end."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from postfix_archiver.web.search_dates import (
    DateRange,
    DateRangeError,
    parse_range,
    quick_ranges,
)

from .test_web_pages import Tags
from .web_helpers import Web

# -- compiling a range to the query language -------------------------------------------------


def test_a_range_is_the_utc_instants_its_days_begin_in_the_zone() -> None:
    r = DateRange(date(2026, 11, 30), date(2026, 11, 30))
    assert r.terms(ZoneInfo("UTC")) == "after:2026-11-30T00:00:00Z before:2026-12-01T00:00:00Z"
    assert r.terms(ZoneInfo("Asia/Seoul")) == (
        "after:2026-11-29T15:00:00Z before:2026-11-30T15:00:00Z"
    )
    # a day of 23 hours: New York's clocks go forward on 2026-03-08
    spring = DateRange(date(2026, 3, 8), date(2026, 3, 8)).terms(ZoneInfo("America/New_York"))
    assert spring == "after:2026-03-08T05:00:00Z before:2026-03-09T04:00:00Z"


def test_open_ends_and_the_last_day() -> None:
    assert DateRange().terms(UTC) == ""
    assert DateRange(date(2025, 1, 1)).terms(UTC) == "after:2025-01-01T00:00:00Z"
    assert DateRange(None, date(2025, 1, 1)).terms(UTC) == "before:2025-01-02T00:00:00Z"
    assert DateRange(None, date(9999, 12, 30)).terms(ZoneInfo("Pacific/Kiritimati")) == (
        "before:9999-12-30T10:00:00Z"
    )
    assert DateRange(date(1, 1, 2)).terms(ZoneInfo("Pacific/Kiritimati"))  # no underflow


@pytest.mark.parametrize(
    ("first", "last", "reason"),
    [
        ("2025-13-01", "", "from: no such day"),
        ("2025-02-30", "", "from: no such day"),
        ("", "２０２５-01-01", "to: needs a day like"),
        ("2025-1-1", "", "from: needs a day like"),
        ("x" * 100, "", "from: needs a day like"),
        ("0001-01-01", "", "from: needs a day from 0001-01-02"),
        ("", "9999-12-31", "to: needs a day from"),
        ("+2025-01-01", "", "from: needs a day like"),
        ("2025-02-01", "2025-01-31", "ends (2025-01-31) before it begins (2025-02-01)"),
    ],
)
def test_bad_ranges(first: str, last: str, reason: str) -> None:
    with pytest.raises(DateRangeError, match=re.escape(reason)):
        parse_range(first, last)


def test_quick_ranges() -> None:
    ranges = dict(quick_ranges(date(2026, 3, 1)))
    assert ranges["today"] == DateRange(date(2026, 3, 1), date(2026, 3, 1))
    assert ranges["last 7 days"] == DateRange(date(2026, 2, 23), date(2026, 3, 1))
    assert ranges["last 30 days"] == DateRange(date(2026, 1, 31), date(2026, 3, 1))
    assert ranges["this year"] == DateRange(date(2026, 1, 1), date(2026, 12, 31))


# -- the page ---------------------------------------------------------------------------------


def links(page: str, nav_class: str) -> dict[str, tuple[dict[str, list[str]], bool]]:
    """The links of one ``<nav class=...>``: text -> (query parameters, aria-current)."""
    block = re.search(rf'(?s)<nav class="{nav_class}".*?</nav>', page)
    assert block, nav_class
    found = {}
    for href, rest, text in re.findall(r'<a href="([^"]*)"([^>]*)>([^<]*)</a>', block.group(0)):
        found[text] = (parse_qs(urlsplit(html.unescape(href)).query), "aria-current" in rest)
    return found


def ids_on(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<a href="/messages/([0-9]+)[?"]', page)]


def test_the_date_form_narrows_the_search_and_keeps_its_values(web: Web) -> None:
    client = web.login("audra")
    everything = ids_on(client.get("/search").text)
    assert len(everything) == 4
    response = client.get(
        "/search", params={"q": "report", "from": "2025-01-07", "to": "2025-01-07"}
    )
    assert response.status_code == 200
    assert ids_on(response.text) == [web.cast.report]
    assert 'name="from" value="2025-01-07"' in response.text
    assert 'value="report"' in response.text  # the query box keeps what was typed
    # the export is what is shown: the range goes with it
    export = re.search(r'href="/api/v1/export\?([^"]*)"', response.text)
    assert export
    q = parse_qs(html.unescape(export.group(1)))["q"][0]
    assert q == "report after:2025-01-07T00:00:00Z before:2025-01-08T00:00:00Z"
    assert web.audit("search")[-1].detail["query"] == q
    assert ids_on(client.get("/search", params={"to": "2025-01-06"}).text) == []


def test_quick_date_links_compile_to_the_form_values_and_mark_the_current(web: Web) -> None:
    client = web.login("audra")
    today = datetime.now(UTC).date().isoformat()
    quick = links(client.get("/search", params={"q": "x"}).text, "quick-dates")
    assert list(quick) == ["any time", "today", "last 7 days", "last 30 days", "this year"]
    params, current = quick["today"]
    assert (params["from"], params["to"], params["q"], current) == ([today], [today], ["x"], False)
    assert quick["any time"][1] is True
    page = client.get("/search", params={"q": "x", "from": today, "to": today}).text
    quick = links(page, "quick-dates")
    assert quick["today"][1] is True
    assert quick["any time"][1] is False
    assert "from" not in quick["any time"][0]


def test_sort_and_page_size_are_links_that_keep_the_rest(web: Web) -> None:
    client = web.login("audra")
    page = client.get("/search", params={"q": "", "order": "size", "from": "2025-01-01"}).text
    assert "<select" not in page  # a change applies at once: no form to submit
    orders = links(page, "orders")
    assert orders["smallest first"][1] is True
    assert sum(current for _, current in orders.values()) == 1
    params, _ = orders["subject A-Z"]
    assert params["order"] == ["subject"]
    assert params["from"] == ["2025-01-01"]
    per = links(page, "per-page")
    assert list(per) == ["25", "50", "100", "200"]
    assert per["50"][1] is True
    # the form keeps the order and size a new query is searched with
    tags = Tags(page)
    assert tags.find("input", type="hidden", name="order", value="size")
    assert tags.find("input", type="hidden", name="per", value="50")


def test_changing_the_page_size_keeps_the_first_result_in_view(web: Web) -> None:
    client = web.login("audra")
    per = links(client.get("/search", params={"per": 25, "page": 5}).text, "per-page")
    assert per["100"][0]["page"] == ["2"]  # result 101 is on page 2 of 100
    assert per["25"][0]["page"] == ["5"]


def test_a_page_past_the_end_says_so_and_links_the_last(web: Web) -> None:
    client = web.login("audra")
    response = client.get("/search", params={"q": "", "per": 25, "page": 3})
    assert response.status_code == 200
    text = html.unescape(response.text)
    assert "Page 3 is past the end: 4 messages fill 1 page." in text
    last = re.search(r'<a href="(/search\?[^"]*)">Go to the last page</a>', response.text)
    assert last
    assert parse_qs(urlsplit(html.unescape(last.group(1))).query)["page"] == ["1"]
    assert '<table class="results">' not in response.text
    assert 'rel="prev"' not in response.text


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2025-13-01"},
        {"from": "٢٠٢٥-٠١-٠١"},
        {"to": "99999-01-01"},
        {"from": "2025-01-01\r\nX: y"},
        {"from": "2025-02-01", "to": "2025-01-01"},
        {"to": "-2025-01-01"},
    ],
)
def test_a_bad_range_is_a_400_with_its_reason(web: Web, params: dict[str, str]) -> None:
    response = web.login("bob").get("/search", params=params)
    assert response.status_code == 400
    assert "Bad date range:" in response.text
    assert 'aria-invalid="true"' in response.text


def test_eight_bit_bytes_in_a_date_are_a_400(web: Web) -> None:
    response = web.login("bob").get("/search?from=%FF%FE-01-01&to=%C3%A9")
    assert response.status_code == 400
    assert "Bad date range: from: needs a day like" in response.text


def test_the_query_is_checked_alone_before_the_range_joins_it(web: Web) -> None:
    response = web.login("bob").get("/search", params={"q": "a OR", "from": "2025-01-01"})
    assert response.status_code == 400
    assert "OR must be followed by a term" in html.unescape(response.text)
