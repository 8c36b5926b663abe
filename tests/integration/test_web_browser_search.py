"""The search page's date range, quick dates, sort and page-size links, a page past the end,
and times in the reader's zone, in a real browser (Debian's Chromium, headless, Playwright)
at desktop (1280x800) and phone (390x844) size.

The real ``postfix-archiver web`` serves the demo mail of ``web_corpus`` with ``[web]
timezone = "Asia/Seoul"``; an auditor logs in, uses the links (no script: each is a plain
link or form), and switches to UTC on the settings page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, sync_playwright
from test_web_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    add_user,
    cli_env,
    free_port,
    running_web,
)
from web_corpus import demo_messages

from postfix_archiver.archive import Archive
from postfix_archiver.config import parse_config
from postfix_archiver.dates import parse_header_date

pytestmark = [pytest.mark.integration]

SEOUL = ZoneInfo("Asia/Seoul")
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


def seoul_days() -> list[str]:
    """The day each demo message is dated, in Seoul."""
    days = []
    for raw, _ in demo_messages():
        header = re.search(rb"^Date: (.*)$", raw, re.M | re.I)
        assert header
        when, _ = parse_header_date(header.group(1).decode().strip())
        assert when is not None
        days.append(when.astimezone(SEOUL).date().isoformat())
    return days


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    home = tmp_path / "home"
    config_path = tmp_path / "archiver.toml"
    port = free_port()
    config_path.write_text(
        f'[archive]\nhome = "{home}"\n[web]\nlisten = "127.0.0.1:{port}"\ntimezone = "Asia/Seoul"\n'
    )
    config = parse_config(config_path.read_text(), str(config_path))
    with Archive(config) as archive:
        for raw, envelope in demo_messages():
            archive.ingest(raw, envelope)
    env = cli_env(config_path)
    add_user(env, "audra", "auditor")
    with running_web(env, tmp_path, port) as url:
        yield url


def main_fits(page: Page) -> None:
    """Nothing in the page's <main> reaches past the window's right edge. (The header above
    it, with its navigation, is laid out for phones by issue #17's item 1, elsewhere.)"""
    wide = page.evaluate(
        "[...document.querySelectorAll('main, main *')].filter(e => e.getBoundingClientRect()"
        ".right > window.innerWidth + 0.5).map(e => e.tagName + '.' + e.className).slice(0, 8)"
    )
    assert wide == [], f"{page.url}: past the right edge: {wide}"


def mine_fit(page: Page) -> None:
    """The elements this page added (the date form, the view links) stay in the window."""
    inner = page.evaluate("window.innerWidth")
    for selector in (".searchbar", ".searchbar .dates", ".views", ".count"):
        box = page.locator(selector).first.bounding_box()
        assert box is not None, selector
        assert box["x"] >= 0, (selector, box)
        assert box["x"] + box["width"] <= inner + 0.5, (selector, box)


def current(page: Page, nav: str) -> list[str]:
    return page.locator(f"nav.{nav} a[aria-current]").all_inner_texts()


@pytest.mark.parametrize("size", SIZES)
def test_dates_sort_page_size_and_zones(site: str, tmp_path: Path, size: str) -> None:
    width, height = SIZES[size]
    days = seoul_days()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(f"{site}/search")
            page.fill("input[name=name]", "audra")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{site}/search")

            # every time in the reader's zone, with its abbreviation
            cells = page.locator("td.date").all_inner_texts()
            assert len(cells) == len(days)
            assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d KST", c.strip()) for c in cells)
            assert current(page, "quick-dates") == ["any time"]
            assert current(page, "orders") == ["newest first"]
            assert current(page, "per-page") == ["50"]
            mine_fit(page)

            # sort at once: a link, the current one marked
            page.locator("nav.orders a", has_text="oldest first").click()
            page.wait_for_url("**order=date**")
            assert current(page, "orders") == ["oldest first"]
            first = page.locator("td.date").first.inner_text().strip()
            assert first.startswith(min(days))

            # page size at once, the order kept
            page.locator("nav.per-page a", has_text="25").click()
            page.wait_for_url("**per=25**")
            assert current(page, "per-page") == ["25"]
            assert current(page, "orders") == ["oldest first"]

            # a day range in the form: the reader's (Seoul's) days
            day = days[0]
            page.fill("input[name=from]", day)
            page.fill("input[name=to]", day)
            page.locator("form.searchbar button[type=submit]").click()
            page.wait_for_url(f"**from={day}**")
            shown = page.locator("td.date").all_inner_texts()
            assert len(shown) == days.count(day)
            assert all(c.strip().startswith(day) for c in shown)
            assert page.locator("input[name=from]").input_value() == day
            assert current(page, "orders") == ["oldest first"]
            mine_fit(page)

            # quick dates: "this year" is the reader's year; "any time" clears it
            page.locator("nav.quick-dates a", has_text="this year").click()
            year = datetime.now(SEOUL).year
            page.wait_for_url(f"**from={year}-01-01**")
            assert current(page, "quick-dates") == ["this year"]
            page.locator("nav.quick-dates a", has_text="last 7 days").click()
            week = (datetime.now(SEOUL) - timedelta(days=6)).date().isoformat()
            page.wait_for_url(f"**from={week}**")
            assert current(page, "quick-dates") == ["last 7 days"]
            page.locator("nav.quick-dates a", has_text="any time").click()
            page.wait_for_url(re.compile(r".*/search\?(?!.*from=).*"))
            assert current(page, "quick-dates") == ["any time"]
            assert page.locator("td.date").count() == len(days)

            # past the end: said so, with the way back
            page.goto(f"{site}/search?per=25&page=40")
            assert "Page 40 is past the end" in page.locator("p.count").inner_text()
            assert page.locator("table.results").count() == 0
            page.locator("a", has_text="Go to the last page").click()
            page.wait_for_url("**page=1**")
            assert page.locator("td.date").count() == len(days)
            page.screenshot(path=str(tmp_path / f"search-{size}.png"), full_page=True)

            # the reader's own zone, chosen on the settings page (redirect after POST)
            page.goto(f"{site}/settings")
            main_fits(page)
            page.select_option("select[name=timezone]", "UTC")
            page.locator("form.settings button[type=submit]").click()
            page.wait_for_url(f"{site}/settings?saved=1")
            assert "Saved." in page.content()
            page.goto(f"{site}/search?order=date")
            first_utc = page.locator("td.date").first.inner_text().strip()
            assert first_utc.endswith(" UTC")
            seoul = datetime.strptime(first[:16], "%Y-%m-%d %H:%M").replace(tzinfo=SEOUL)
            assert first_utc == f"{seoul.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
            page.goto(f"{site}/audit")
            assert page.locator("table.audit time").first.inner_text().endswith(" UTC")
        finally:
            browser.close()
