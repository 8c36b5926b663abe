"""Every page's landmarks for keyboard and screen reader: one h1, a skip link to main, access keys.

The browser test (tests/integration/test_web_browser_layout.py) checks the same in Chromium
with axe-core; this one runs without a browser, on every page each role can open.
"""

from __future__ import annotations

from collections import Counter

import pytest

from .test_web_pages import Tags
from .web_helpers import Web

PAGES = {
    "bob": ["/search", "/search?q=lunch", "/search?q=from%3A(", "/messages/1", "/messages/999"],
    "audra": ["/search", "/stats", "/audit", "/holds", "/messages/1"],
    "admin": ["/search", "/users", "/holds", "/audit", "/stats"],
}


def landmarks_of(html: str) -> Tags:
    tags = Tags(html)
    assert len(tags.find("h1")) == 1
    skip = [a for t, a in tags.tags if t == "a" and a.get("href") == "#main"]
    assert skip, "no skip link"
    assert tags.tags.index(("a", skip[0])) < tags.tags.index(
        next(t for t in tags.tags if t[0] == "header")
    )
    assert tags.find("main", id="main")
    keys = Counter(a["accesskey"] for _, a in tags.tags if a.get("accesskey"))
    assert all(n == 1 for n in keys.values()), keys  # one element per key
    return tags


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_page_has_one_h1_and_a_skip_link_first(web: Web, name: str) -> None:
    client = web.login(name)
    for path in PAGES[name]:
        response = client.get(path.replace("/messages/1", f"/messages/{web.cast.report}"))
        assert response.status_code in (200, 400, 404), path
        landmarks_of(response.text)
    landmarks_of(web.client().get("/login").text)


def test_search_box_has_access_key_s(web: Web) -> None:
    tags = landmarks_of(web.login("audra").get("/search?q=invoice").text)
    assert tags.find("input", name="q", accesskey="s")
