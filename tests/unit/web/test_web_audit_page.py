"""The audit log page for auditors: date, user, action and text filters, the CSV of what they
select (safe to open in a spreadsheet), and verifying the hash chain from the page."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from postfix_archiver.web.audit_pages import csv_cell

from .web_helpers import Web, sql


def _ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', html)]


def _rows(web: Web, **params: str) -> list[dict[str, str]]:
    response = web.login("audra").get("/audit.csv", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="audit-log-\d{8}-\d{6}\.csv"',
        response.headers["content-disposition"],
    )
    return list(csv.DictReader(io.StringIO(response.text)))


def test_filters_by_user_action_text_and_days(web: Web) -> None:
    web.accounts.record("bob", "192.0.2.7", "search", {"query": "invoice from:alice"})
    web.accounts.record("carol", "192.0.2.8", "view", {"message": 3})
    client = web.login("audra")
    page = client.get("/audit", params={"q": "invoice"})
    assert page.status_code == 200
    (found,) = _ids(page.text)
    assert web.accounts.audit(limit=1, offset=0, text="invoice")[1][0].id == found
    assert 'name="q" value="invoice"' in page.text  # the form keeps what was asked
    assert "1 entry, newest first" in page.text
    assert _ids(client.get("/audit", params={"user": "carol", "action": "view"}).text) == [
        found + 1
    ]
    assert _ids(client.get("/audit", params={"q": "192.0.2.8"}).text) == [found + 1]
    today = datetime.now(UTC).date()
    everything = client.get("/audit", params={"from": str(today), "to": str(today)})
    assert len(_ids(everything.text)) == web.accounts.audit()[0]
    yesterday = str(today - timedelta(days=1))
    assert _ids(client.get("/audit", params={"to": yesterday}).text) == []
    assert "0 entries" in client.get("/audit", params={"from": str(today + timedelta(1))}).text
    assert _ids(client.get("/audit", params={"from": "9999-12-31", "to": "9999-12-31"}).text) == []


def test_paging_keeps_the_filters(web: Web) -> None:
    for n in range(130):
        web.accounts.record("bob", "192.0.2.7", "search", {"query": f"needle {n}"})
    page = web.login("audra").get("/audit", params={"q": "needle", "user": "bob"})
    assert "page 1 of 2" in page.text
    assert 'href="/audit?user=bob&amp;q=needle&amp;page=2" rel="next"' in page.text
    second = web.login("audra").get("/audit?user=bob&q=needle&page=2")
    assert len(_ids(second.text)) == 30


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-02-30"}, "bad from date '2026-02-30': use YYYY-MM-DD"),
        ({"to": "٢٠٢٦-٠١-٠١"}, "bad to date"),
        ({"from": "99999-01-01"}, "bad from date"),
        ({"from": "-2026-01-01"}, "bad from date"),
        ({"from": "0000-01-01"}, "bad from date"),
        ({"from": "2026-01-31", "to": "2026-01-01"}, "the dates are the wrong way round"),
        ({"q": "x" * 201}, "bad request"),
        ({"page": "99999999999999999999"}, "bad request"),
    ],
)
def test_bad_filters_are_400_with_the_reason(
    web: Web, params: dict[str, str], message: str
) -> None:
    client = web.login("audra")
    for path in ("/audit", "/audit.csv", "/audit/verify"):
        response = client.get(path, params=params)
        if path != "/audit" and "page" in params:
            continue  # only the page pages
        assert response.status_code == 400, (path, params)
        assert message in response.text.replace("&#39;", "'")


def test_hostile_text_is_a_literal_search(web: Web) -> None:
    web.accounts.record("bob", "192.0.2.7", "search", {"query": "100% ' OR 1=1 -- é\x00"})
    client = web.login("audra")
    for text in ("%", "_", "' OR 1=1 --", "é", "\\", "\x00", "\ufeff", "x" * 200):
        response = client.get("/audit", params={"q": text})
        assert response.status_code == 200, text
    for raw in ("%ED%A0%80", "%FF%FE", "%C0%AF"):  # not UTF-8: a surrogate, bad bytes
        assert client.get(f"/audit?q={raw}").status_code in (200, 400), raw
    assert len(_ids(client.get("/audit", params={"q": "1=1"}).text)) == 1
    assert _ids(client.get("/audit", params={"q": "%%"}).text) == []


def test_csv_has_every_filtered_entry_and_defuses_formulas(web: Web) -> None:
    web.accounts.record("=HYPERLINK(\"http://evil\")", "192.0.2.7", "search",
                        {"query": "+cmd|' /C calc'!A0"})  # fmt: skip
    web.accounts.record("@sum", "-1", "view", {})
    for n in range(1100):  # more than one CSV_CHUNK
        web.accounts.record("bulk", "192.0.2.9", "search", {"query": f"q{n}"})
    rows = _rows(web)
    assert list(rows[0]) == ["id", "time", "user", "client", "action", "detail", "hash"]
    assert len(rows) == web.accounts.audit()[0]  # the export's own entry included
    assert rows[0]["action"] == "audit.export"
    ids = [int(r["id"]) for r in rows]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == len(ids)
    hostile = {r["user"]: r for r in rows if r["user"].startswith("'")}
    assert set(hostile) == {'\'=HYPERLINK("http://evil")', "'@sum"}
    assert hostile["'@sum"]["client"] == "'-1"
    assert '"query": "+cmd' in hostile['\'=HYPERLINK("http://evil")']["detail"]
    assert len(_rows(web, user="bulk", q="q99")) == 11  # q99, q990..q999
    assert [r["user"] for r in _rows(web, user="@sum")] == ["'@sum"]


def test_csv_cell() -> None:
    assert [csv_cell(v) for v in ("=1+1", "+1", "-1", "@x", "\tx", "\rx", "a=b", "", "é")] == [
        "'=1+1", "'+1", "'-1", "'@x", "'\tx", "'\rx", "a=b", "", "é"
    ]  # fmt: skip


def test_verify_the_chain_from_the_page(web: Web) -> None:
    client = web.login("audra")
    ok = client.get("/audit/verify", params={"user": "bob"})
    assert ok.status_code == 200
    check = web.accounts.verify_audit()
    assert f"Chain verified: {check.entries} entr" in ok.text
    assert f'<code class="hash">{check.head}</code>' in ok.text
    assert 'name="user" value="bob"' in ok.text  # the filters stay
    # someone with the file drops the triggers and edits an entry
    path = web.accounts_path
    sql(path, "DROP TRIGGER audit_no_update")
    sql(path, "UPDATE audit SET user = 'nobody' WHERE id = 1")
    broken = client.get("/audit/verify")
    assert broken.status_code == 200
    assert "Chain BROKEN: " in broken.text
    assert web.accounts.verify_audit().problem in broken.text.replace("&#39;", "'")


def test_the_audit_pages_are_for_auditors(web: Web) -> None:
    bob = web.login("bob")
    for path in ("/audit", "/audit.csv", "/audit/verify"):
        assert bob.get(path).status_code == 403, path
    assert web.client().get("/audit.csv").status_code == 303  # to the login form


def test_the_client_address_does_not_wrap(web: Web) -> None:
    css = web.client().get("/static/style.css").text
    assert "table.audit td.mono { white-space: nowrap; }" in css
    assert '<td class="mono">testclient</td>' in web.login("audra").get("/audit").text


def test_the_days_are_the_readers(web: Web) -> None:
    """From and To are whole days in the reader's time zone, as the times shown: an entry
    made at 23:30 UTC is on the next day in Seoul (UTC+9) and the same day in New York."""
    client = web.login("audra")
    entry = web.accounts.audit(limit=1, offset=0)[1][0]
    when = datetime.fromisoformat(entry.time).astimezone(UTC)
    for zone in ("Asia/Seoul", "America/New_York", "Pacific/Kiritimati", "Etc/GMT+12"):
        client.cookies.set("pa_tz", zone)
        local = when.astimezone(ZoneInfo(zone)).date()
        on_day = client.get("/audit", params={"from": str(local), "to": str(local)})
        assert entry.id in _ids(on_day.text), zone
        before = str(local - timedelta(days=1))
        assert entry.id not in _ids(client.get("/audit", params={"to": before}).text), zone
        assert entry.id not in _ids(
            client.get("/audit", params={"from": str(local + timedelta(days=1))}).text
        ), zone
        # the first and the last day there is, in a zone far from UTC: no overflow, no 500
        edge = client.get("/audit", params={"from": "0001-01-01", "to": "9999-12-31"})
        assert edge.status_code == 200, zone


def test_csv_cells_stay_whole_in_a_semicolon_locale(web: Web) -> None:
    # a login name is whatever a visitor typed: ";=1+1" bare in a CSV is, for a spreadsheet
    # splitting on ";", an empty cell and then a formula
    web.accounts.record(";=1+1", "192.0.2.7", "login.failed", {})
    web.accounts.record("＝1+1", "192.0.2.7", "login.failed", {})
    client = web.login("audra")
    text = client.get("/audit.csv").text
    assert '"\';=1+1"' in text  # quoted, and defused
    assert '"\'＝1+1"' in text
    assert all(line.startswith('"') for line in text.splitlines() if line)
    assert [csv_cell(v) for v in (";x", ",x", "＋1")] == ["';x", "',x", "'＋1"]
