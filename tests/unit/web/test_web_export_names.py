"""Export files named after their query, with a Content-Disposition no query can break;
and the message page's JSON link, which plain users may use."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st

from postfix_archiver.web.export_names import MAX_SLUG, export_disposition

from .web_helpers import Web

DAY = date(2026, 11, 30)
ASCII_NAME = re.compile(r'attachment; filename="(archive-[a-z0-9-]+-\d{4}-\d\d-\d\d\.(mbox|zip))"')


def names(header: str) -> tuple[str, str | None]:
    """The ASCII ``filename`` and the decoded ``filename*`` (None if absent)."""
    match = ASCII_NAME.match(header)
    assert match, header
    star = re.search(r"; filename\*=UTF-8''([A-Za-z0-9%._~-]+)$", header)
    rest = header[match.end() :]
    assert rest == "" or star is not None, header
    return match.group(1), unquote(star.group(1)) if star else None


def test_named_after_the_query() -> None:
    assert export_disposition("from:bob invoice", "mbox", DAY) == (
        'attachment; filename="archive-from-bob-invoice-2026-11-30.mbox"'
    )
    assert export_disposition("", "zip", DAY) == 'attachment; filename="archive-all-2026-11-30.zip"'
    assert names(export_disposition('subject:"Q3 Report" -draft', "mbox", DAY)) == (
        "archive-subject-q3-report-draft-2026-11-30.mbox",
        None,
    )


def test_non_ascii_goes_into_filename_star() -> None:
    ascii_name, unicode_name = names(export_disposition("from:jürgen Rechnung", "mbox", DAY))
    assert ascii_name == "archive-from-jurgen-rechnung-2026-11-30.mbox"
    assert unicode_name == "archive-from-jürgen-rechnung-2026-11-30.mbox"
    ascii_name, unicode_name = names(export_disposition("請求書 メール", "zip", DAY))
    assert ascii_name == "archive-query-2026-11-30.zip"
    assert unicode_name == "archive-請求書-メール-2026-11-30.zip"


def test_hostile_queries_make_harmless_names() -> None:
    for query in [
        '"../../etc/passwd"\r\nContent-Type: text/html',
        'a"; filename="evil.exe',
        "\\\\server\\share\\x",
        "invoice\u202egnp.exe",
        "\x00\x01\x7f\x80\xff",
        "-----",
    ]:
        ascii_name, unicode_name = names(export_disposition(query, "mbox", DAY))
        for name in (ascii_name, unicode_name or ""):
            assert not set(name) & set('/\\"\r\n\x00;\u202e'), (query, name)


def test_a_long_query_is_cut_at_a_word() -> None:
    ascii_name, _ = names(export_disposition("invoice " * 500, "mbox", DAY))
    slug = ascii_name.removeprefix("archive-").removesuffix("-2026-11-30.mbox")
    assert len(slug) <= MAX_SLUG
    assert set(slug.split("-")) == {"invoice"}


@given(st.text(max_size=4000))
def test_any_query_gives_a_bounded_ascii_header(query: str) -> None:
    header = export_disposition(query, "mbox", DAY)
    assert header.isascii()
    assert header.isprintable()
    ascii_name, unicode_name = names(header)
    assert len(ascii_name) <= MAX_SLUG + 30
    if unicode_name is not None:
        assert len(unicode_name) <= MAX_SLUG + 30


# -- through the API --------------------------------------------------------------------------


def test_the_export_is_named_after_its_query(web: Web) -> None:
    client = web.token_client("audra")
    response = client.get("/api/v1/export", params={"q": "from:alice report", "format": "mbox"})
    assert response.status_code == 200
    today = datetime.now(UTC).date().isoformat()
    assert response.headers["content-disposition"] == (
        f'attachment; filename="archive-from-alice-report-{today}.mbox"'
    )


def test_a_hostile_query_still_makes_a_safe_header(web: Web) -> None:
    client = web.token_client("audra")
    query = '"../../x\r\nSet-Cookie: a=b\\"" jürgen\u202e'
    response = client.get("/api/v1/export", params={"q": query, "format": "eml-zip"})
    assert response.status_code == 200
    header = response.headers["content-disposition"]
    ascii_name, unicode_name = names(header)
    assert ascii_name.startswith("archive-x-set-cookie-a-b-jurgen-")
    assert unicode_name is not None
    assert "jürgen" in unicode_name
    assert "set-cookie" not in {k.lower() for k in response.headers if k != "set-cookie"}
    assert "a=b" not in response.headers.get("set-cookie", "")


def test_the_search_page_export_links_carry_the_query_and_range(web: Web) -> None:
    page = web.login("bob").get("/search", params={"q": "report", "from": "2025-01-07"}).text
    assert "/api/v1/export?q=report+after%3A2025-01-07T00%3A00%3A00Z&amp;format=mbox" in page


# -- the message page's JSON link --------------------------------------------------------------


def test_plain_users_may_use_the_json_link_so_it_stays(web: Web) -> None:
    client = web.login("bob")
    page = client.get(f"/messages/{web.cast.report}").text
    link = re.search(r'<a class="button" href="(/api/v1/messages/\d+)"([^>]*)>JSON</a>', page)
    assert link, "the JSON link"
    assert "title=" in link.group(2)  # says what it is
    response = client.get(link.group(1))  # the session cookie is enough
    assert response.status_code == 200
    assert response.json()["id"] == web.cast.report
