"""Times in the reader's zone: ``[web] timezone`` by default, the reader's choice on
/settings (CSRF, redirect after POST, a cookie); the API keeps UTC."""

from __future__ import annotations

import html
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from tests.conftest import make_config

from postfix_archiver.config import Config

from .web_helpers import Web, csrf_of

# the report was written 2025-01-07 10:00 UTC: 05:00 in New York, 19:00 in Seoul


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path / "data", '[web]\ntimezone = "America/New_York"\n')


def choose(web: Web, client: Any, zone: str) -> Any:
    form = client.get("/settings")
    return client.post("/settings", data={"timezone": zone, "csrf": csrf_of(form.text)})


def test_pages_show_times_in_the_configured_zone_with_its_abbreviation(web: Web) -> None:
    client = web.login("audra")
    search = client.get("/search", params={"q": "report"}).text
    assert '2025-01-07 05:00 <span class="zone">EST</span>' in search
    assert 'title="America/New_York"' in search
    message = client.get(f"/messages/{web.cast.report}").text
    assert "2025-01-07 05:00:00 EST" in message
    audit = client.get("/audit").text
    assert re.search(r"<time [^>]*>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[SD]T</time>", audit)
    assert "Time (UTC)" not in audit


def test_a_reader_chooses_a_zone_on_the_settings_page(web: Web) -> None:
    client = web.login("bob")
    page = client.get("/settings")
    assert page.status_code == 200
    assert "the server's default (America/New_York)" in html.unescape(page.text)
    response = choose(web, client, "Asia/Seoul")
    assert response.status_code == 303  # redirect after POST: a reload sends nothing again
    assert response.headers["location"] == "/settings?saved=1"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith('pa_tz="Asia/Seoul";')
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    saved = client.get("/settings?saved=1").text
    assert "Saved." in saved
    assert '<option value="Asia/Seoul" selected>' in saved
    search = client.get("/search", params={"q": "report"}).text
    assert '2025-01-07 19:00 <span class="zone">KST</span>' in search
    # back to the default
    assert choose(web, client, "").status_code == 303
    assert "EST" in client.get("/search", params={"q": "report"}).text


def test_the_settings_form_needs_its_csrf_token(web: Web) -> None:
    client = web.login("bob")
    response = client.post("/settings", data={"timezone": "Asia/Seoul", "csrf": "forged"})
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    assert web.client().post("/settings", data={"timezone": "UTC"}).status_code == 303  # login


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus", "../../etc/passwd", "KST", "x" * 200, "Asia/Seoul\x00", "Ａsia"]
)
def test_a_zone_that_is_not_one_is_a_400_naming_it(web: Web, zone: str) -> None:
    client = web.login("bob")
    response = choose(web, client, zone)
    assert response.status_code == 400
    assert "unknown time zone" in html.unescape(response.text)
    assert "set-cookie" not in response.headers


def test_a_too_long_form_value_is_a_400(web: Web) -> None:
    client = web.login("bob")
    form = client.get("/settings")
    response = client.post("/settings", data={"timezone": "x" * 5000, "csrf": csrf_of(form.text)})
    assert response.status_code == 400


@pytest.mark.parametrize(
    "cookie", ["Mars/Olympus", "../../../etc/passwd", "%FF%FE", "x" * 3000, "Asia%2FSeoul"]
)
def test_a_hostile_zone_cookie_falls_back_to_the_default(web: Web, cookie: str) -> None:
    client = web.login("audra")
    client.cookies.set("pa_tz", cookie)
    for path in ("/search", "/settings", "/audit", f"/messages/{web.cast.report}", "/holds"):
        response = client.get(path)
        assert response.status_code == 200, path
    assert "EST" in client.get("/search").text


def test_the_api_keeps_utc(web: Web) -> None:
    client = web.login("audra")
    choose(web, client, "Asia/Seoul")
    results = client.get("/api/v1/messages", params={"q": "report"}).json()["results"]
    assert results[0]["date"].startswith("2025-01-07T10:00:00")
    assert results[0]["date"].endswith(("+00:00", "Z"))


def test_quick_dates_are_the_readers_days(web: Web) -> None:
    client = web.login("audra")
    choose(web, client, "Asia/Seoul")
    page = client.get("/search").text
    today = re.search(r'<a href="/search\?([^"]*)"[^>]*>today</a>', page)
    assert today
    params = parse_qs(urlsplit("?" + html.unescape(today.group(1))).query)
    assert params["from"] == [datetime.now(ZoneInfo("Asia/Seoul")).date().isoformat()]
    day = client.get("/search", params={"from": "2025-01-07", "to": "2025-01-07"}).text
    export = re.search(r'href="/api/v1/export\?([^"]*)"', day)
    assert export
    q = parse_qs(html.unescape(export.group(1)))["q"][0]
    assert q == "after:2025-01-06T15:00:00Z before:2025-01-07T15:00:00Z"
    assert "(dates 2025-01-07 to 2025-01-07, Asia/Seoul)" in day
