"""The message page shows one body (HTML if there is one, else text) with a link to the
other, and lists the HTML body's inline images apart from the attachments."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from .test_web_pages import Tags
from .test_web_reading import newsletter  # noqa: F401 - a fixture
from .web_helpers import Web


def test_html_is_shown_with_a_link_to_the_text(web: Web) -> None:
    client = web.login("bob")
    hostile = web.cast.hostile
    page = client.get(f"/messages/{hostile}", params={"q": "pay", "per": "25"})
    tags = Tags(page.text)
    assert len(tags.find("iframe")) == 1
    assert not tags.find("div", **{"class": "body"})
    (text_link,) = [a for a in tags.find("a") if (a["href"] or "").endswith("view=text")]
    assert text_link["href"] == f"/messages/{hostile}?q=pay&order=-date&per=25&page=1&view=text"
    text = client.get(text_link["href"] or "")
    tags = Tags(text.text)
    assert not tags.find("iframe")
    assert tags.find("div", **{"class": "body"})
    assert "Please pay." in text.text
    assert tags.find("a", href=f"/messages/{hostile}?q=pay&order=-date&per=25&page=1&view=html")
    # the search context survives the switch
    (back,) = tags.find("a", **{"class": "back"})
    assert back["href"] == "/search?q=pay&order=-date&per=25&page=1"


def test_a_text_only_message_has_no_switch(web: Web) -> None:
    page = web.login("bob").get(f"/messages/{web.cast.report}", params={"view": "html"})
    tags = Tags(page.text)
    assert not tags.find("iframe")
    assert not tags.find("nav", **{"class": "bodytabs"})
    assert "Here is the quarterly report." in page.text


@pytest.mark.parametrize("view", ["", "HTML", "text\x00", "\udcfftext", "x" * 10_000, "-1"])
def test_odd_view_values_show_the_default(web: Web, view: str) -> None:
    page = web.login("bob").get(
        f"/messages/{web.cast.hostile}?view={quote(view.encode('utf-8', 'surrogateescape'))}"
    )
    assert page.status_code == 200
    assert len(Tags(page.text).find("iframe")) == 1


def test_inline_images_are_listed_apart(web: Web, newsletter: int) -> None:  # noqa: F811
    page = web.login("bob").get(f"/messages/{newsletter}")
    assert page.status_code == 200
    table = page.text[page.text.index('<table class="attachments">') :]
    table = table[: table.index("</table>")]
    assert "big.pdf" in table
    assert "image/png" not in table
    start = page.text.index('<details class="inline-images">')
    folded = page.text[start : page.text.index("</details>", start)]
    assert "Inline images (1)" in folded
    assert "image/png" in folded
    assert "download>Download</a>" in folded  # still downloadable
    assert "(1 files, 1 inline image)" in page.text
