"""Links in an HTML body open outside the sandboxed frame: a new tab with no referrer and no
opener; the frame's sandbox allows that and nothing more (no script, not the archive's
origin, no navigating the page around it)."""

from __future__ import annotations

from postfix_archiver.web.pages import FRAME_CSP
from postfix_archiver.web.render import sanitize_html

from .test_web_pages import Tags
from .web_helpers import Web


def test_links_open_a_new_tab_without_referrer_or_opener() -> None:
    clean = sanitize_html(
        '<a href="https://example.com/a" target="_self" rel="opener">a</a>'
        '<a href="mailto:x@example.com" target="_top">b</a>'
        '<a href="javascript:alert(1)" target="_parent">c</a>'
    ).html
    links = Tags(clean).find("a")
    assert [a.get("href") for a in links] == ["https://example.com/a", "mailto:x@example.com", None]
    for a in links:
        assert a["target"] == "_blank"
        assert a["rel"] == "noopener noreferrer"


def test_the_frame_may_open_popups_and_nothing_else(web: Web) -> None:
    client = web.login("bob")
    page = client.get(f"/messages/{web.cast.hostile}")
    (frame,) = Tags(page.text).find("iframe")
    tokens = set((frame["sandbox"] or "").split())
    assert tokens == {"allow-popups", "allow-popups-to-escape-sandbox"}
    body = client.get(f"/messages/{web.cast.hostile}/body")
    csp = body.headers["content-security-policy"]
    assert csp == FRAME_CSP
    sandbox = next(d.split()[1:] for d in csp.split(";") if d.split()[0] == "sandbox")
    assert set(sandbox) == tokens
    for a in Tags(body.text).find("a"):
        assert a["target"] == "_blank"
        assert a["rel"] == "noopener noreferrer"
    assert Tags(body.text).find("a", href="https://example.com/ok")
