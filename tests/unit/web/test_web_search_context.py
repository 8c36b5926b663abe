"""A message opened from a search links back to that exact search, and to the previous and
next result, across result pages; hostile context values are dropped, never a 500."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from postfix_archiver.archive import Archive
from postfix_archiver.envelope import Envelope

from .test_web_pages import Tags
from .web_helpers import Web


@pytest.fixture
def bulk(archive: Archive) -> list[int]:
    """Ids of 30 messages "bulk 00" .. "bulk 29" to Bob, one minute apart (oldest first)."""
    ids = []
    for n in range(30):
        raw = (
            f"From: sender{n:02d}@example.com\nTo: bob@example.com\nSubject: bulk {n:02d}\n"
            f"Date: Mon, 03 Feb 2025 10:{n:02d}:00 +0000\n\nbulk\n"
        ).encode()
        ids.append(archive.ingest(raw, Envelope("x@example.com", ("bob@example.com",))).id)
    archive.index_pending()
    return ids


def _link(html: str, rel: str) -> str | None:
    found = Tags(html).find("a", rel=rel)
    return found[0]["href"] if found else None


def _params(href: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(href).query)


def test_result_links_carry_the_search_and_back_returns_to_it(web: Web, bulk: list[int]) -> None:
    client = web.login("bob")
    results = client.get("/search", params={"q": "bulk", "order": "date", "per": 25, "page": 2})
    links = [a["href"] for a in Tags(results.text).find("a") if "/messages/" in (a["href"] or "")]
    assert links[0] == f"/messages/{bulk[25]}?q=bulk&order=date&per=25&page=2"
    message = client.get(links[0])
    assert message.status_code == 200
    (back,) = Tags(message.text).find("a", **{"class": "back"})
    assert back["href"] == "/search?q=bulk&order=date&per=25&page=2"
    assert "26 of 30" in message.text


def test_previous_and_next_walk_the_results_across_pages(web: Web, bulk: list[int]) -> None:
    client = web.login("bob")
    # the last message of page 1 (newest first): its next is the first of page 2
    page = client.get(f"/messages/{bulk[5]}", params={"q": "bulk", "per": 25, "page": 1})
    assert "25 of 30" in page.text
    following = _link(page.text, "next")
    assert following is not None
    assert following.startswith(f"/messages/{bulk[4]}?")
    assert _params(following)["page"] == ["2"]
    assert Tags(page.text).find("a", rel="next", accesskey="n")
    assert Tags(page.text).find("a", rel="prev", accesskey="p")
    after = client.get(following)
    assert "26 of 30" in after.text
    back = _link(after.text, "prev")
    assert back is not None
    assert back.startswith(f"/messages/{bulk[5]}?")
    assert _params(back)["page"] == ["1"]
    # the ends have no link further
    newest = client.get(f"/messages/{bulk[29]}", params={"q": "bulk", "per": 25})
    assert _link(newest.text, "prev") is None
    assert _link(newest.text, "next") is not None
    oldest = client.get(f"/messages/{bulk[0]}", params={"q": "bulk", "per": 25, "page": 2})
    assert _link(oldest.text, "next") is None


def test_without_a_search_there_is_only_the_plain_back_link(web: Web, bulk: list[int]) -> None:
    page = web.login("bob").get(f"/messages/{bulk[3]}")
    assert _link(page.text, "next") is None
    assert Tags(page.text).find("a", **{"class": "back"})[0]["href"] == "/search"


def test_neighbours_are_only_the_users_own_mail(web: Web, bulk: list[int]) -> None:
    # the cast's report to Bob and Dave's lunch with Erin match "report OR lunch"; Bob's
    # neighbours never include Dave's message
    client = web.login("bob")
    page = client.get(f"/messages/{web.cast.report}", params={"q": "report OR lunch OR bulk"})
    assert page.status_code == 200
    for rel in ("prev", "next"):
        href = _link(page.text, rel)
        if href is not None:
            assert not href.startswith(f"/messages/{web.cast.lunch}?")
    assert "of 31" in page.text  # 30 bulk + the report; not the lunch


@pytest.mark.parametrize(
    "query",
    [
        "q=bulk&page=-1",
        "q=bulk&page=99999999999999999999999",
        "q=bulk&page=%D9%A3",  # Arabic-Indic digit three
        "q=bulk&page=2x&per=-5&order=drop%20table",
        "q=bulk&per=%D9%A2%D9%A5",
        "q=" + "x" * 5000,
        "q=subject%3A%22open",
        "q=bulk%00",
        "q=b%FFulk&order=%FF&per=%FF&page=%FF",  # 8-bit bytes, not UTF-8
        "q=after%3A99999-01-01",
        "q=before%3A0000-01-01",
        "q=bulk&page=10000000",
        "q=bulk&q=other&page=1&page=2",
    ],
)
def test_hostile_context_is_dropped_not_an_error(web: Web, bulk: list[int], query: str) -> None:
    page = web.login("bob").get(f"/messages/{bulk[10]}?{query}")
    assert page.status_code == 200
    assert "bulk 10" in page.text


def test_neighbours_are_found_with_one_bounded_search(
    web: Web, bulk: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = web.login("bob")
    calls: list[tuple[int, int]] = []
    search = Archive.search

    def counting(self: Archive, *args: object, **kwargs: object) -> object:
        calls.append((int(kwargs["limit"]), int(kwargs["offset"])))  # type: ignore[call-overload]
        return search(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Archive, "search", counting)
    client.get(f"/messages/{bulk[5]}", params={"q": "bulk", "per": 25, "page": 1})
    assert calls == [(27, 0)]
    calls.clear()
    client.get(f"/messages/{bulk[4]}", params={"q": "bulk", "per": 25, "page": 2})
    assert calls == [(27, 24)]


def test_the_search_a_message_page_runs_again_is_audited(web: Web, bulk: list[int]) -> None:
    # the message page re-runs its search (for its place, previous and next): the view's
    # audit entry says which, so no query runs without a trace
    client = web.login("bob")
    assert client.get(f"/messages/{bulk[3]}", params={"q": "bulk secret", "per": 25}).status_code
    _, entries = web.accounts.audit(limit=1, offset=0, action="view")
    (entry,) = entries
    assert entry.detail["message"] == bulk[3]
    assert parse_qs(entry.detail["search"])["q"] == ["bulk secret"]
