"""Reading mail in a real browser (Debian's Chromium via Playwright): back to the search and
previous/next within its results, links in HTML mail opening outside the frame, at desktop
and phone size with no horizontal overflow.

The real ``postfix-archiver web`` command serves an archive of the demo mailbox plus a few
messages of this test's own: an HTML message whose links point at a local HTTP server (the
"outside" site; every other request is aborted: nothing leaves the machine).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import ViewportSize, sync_playwright
from test_web_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CLI,
    PASSWORD,
    add_user,
    cli_env,
    free_port,
    running_web,
    serving,
)
from web_corpus import demo_messages

from postfix_archiver.archive import Archive
from postfix_archiver.config import parse_config
from postfix_archiver.envelope import Envelope

pytestmark = [pytest.mark.integration]

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


@dataclass
class Outside:
    """A local HTTP server playing the web site a link in mail points at."""

    server: ThreadingHTTPServer
    hits: list[tuple[str, str | None]] = field(default_factory=list)  # path, Referer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


# the archive and its web server are read, never changed, by these tests: made once for the
# module (ingest, a CLI user, an import and the server's start took 20-30 s per test)
@pytest.fixture(scope="module")
def outside() -> Iterator[Outside]:
    hits: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append((self.path, self.headers.get("Referer")))
            body = b"<!doctype html><title>outside</title><p>the linked site</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as server:
        yield Outside(server, hits)


def linked_message(outside: str) -> bytes:
    return (
        "From: News <news@example.com>\nTo: audra@example.com\nSubject: Linked newsletter\n"
        "Date: Mon, 10 Feb 2025 09:00:00 +0000\nMessage-ID: <linked@example.com>\n"
        "MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"
        f'<h1>News</h1><p>Read <a href="{outside}/article?id=7" target="_self">the article'
        "</a>.</p>\n"
    ).encode()


def thread_messages() -> list[tuple[str, bytes]]:
    """A question, its reply quoting it (References), and a reply to the reply."""
    head = "From: {f}\nTo: {t}\nSubject: {s}\nDate: Tue, 11 Feb 2025 {h}:00:00 +0000\n"
    return [
        ("question", (head.format(f="bob@example.com", t="audra@example.com", s="Budget?", h=9)
                      + "Message-ID: <q@example.com>\n\nShall we meet on Friday?\n").encode()),
        ("answer", (head.format(f="audra@example.com", t="bob@example.com", s="Re: Budget?", h=10)
                    + "Message-ID: <a@example.com>\nIn-Reply-To: <q@example.com>\n"
                    "References: <q@example.com>\n\nYes, at noon.\n\n"
                    "On Tue, 11 Feb 2025, bob@example.com wrote:\n"
                    "> Shall we meet on Friday?\n").encode()),
        ("thanks", (head.format(f="bob@example.com", t="audra@example.com", s="Re: Budget?", h=11)
                    + "Message-ID: <t@example.com>\nIn-Reply-To: <a@example.com>\n"
                    "References: <q@example.com> <a@example.com>\n\nThanks!\n").encode()),
    ]  # fmt: skip


IMPORTED = (
    b"From MAILER-DAEMON Mon Feb  3 10:00:00 2025\n"
    b"From: Old Friend <friend@example.net>\nTo: audra@example.com\n"
    b"Subject: from the old mailbox\nDate: Mon, 03 Feb 2025 10:00:00 +0000\n"
    b"Message-ID: <old1@example.net>\n\nhello from before\n\n"
)


@dataclass
class Site:
    url: str
    ids: dict[str, int]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, outside: Outside) -> Iterator[Site]:
    tmp_path = tmp_path_factory.mktemp("site")
    home = tmp_path / "home"
    config_path = tmp_path / "archiver.toml"
    port = free_port()
    config_path.write_text(f'[archive]\nhome = "{home}"\n[web]\nlisten = "127.0.0.1:{port}"\n')
    config = parse_config(config_path.read_text(), str(config_path))
    when = datetime(2025, 2, 10, 9, tzinfo=UTC)
    with Archive(config) as archive:
        for raw, envelope in demo_messages():
            archive.ingest(raw, envelope)
        ids = {
            "linked": archive.ingest(
                linked_message(outside.url),
                Envelope("news@example.com", ("audra@example.com",), received=when),
            ).id
        }
        for name, raw in thread_messages():
            ids[name] = archive.ingest(
                raw, Envelope("bob@example.com", ("audra@example.com",), received=when)
            ).id
        archive.index_pending()
    env = cli_env(config_path)
    add_user(env, "audra", "auditor")
    box = tmp_path / "old.mbox"
    box.write_bytes(IMPORTED)
    subprocess.run([str(CLI), "import", str(box)], env=env, check=True, capture_output=True)
    with Archive(config, readonly=True) as archive:
        ids["imported"] = archive.search("subject:mailbox").results[0].id
    with running_web(env, tmp_path, port) as url:
        yield Site(url, ids)


@pytest.fixture(scope="module")
def browser(
    tmp_path_factory: pytest.TempPathFactory, site: Site, outside: Outside
) -> Iterator[Any]:
    """A logged-in Chromium context, shared by the module's tests (each sets its window
    size and goes to its own page); requests anywhere but the site and the outside server
    are aborted."""
    tmp_path = tmp_path_factory.mktemp("browser")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport=DESKTOP,
        )
        try:

            def route(r: Any) -> None:
                if r.request.url.startswith(("http://127.0.0.1:", "data:")):
                    r.continue_()
                else:
                    r.abort()

            context.route("**/*", route)
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(f"{site.url}/login")
            page.fill("input[name=name]", "audra")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{site.url}/search")
            yield context
        finally:
            context.close()


# the message page's parts this test's features add; the page's header and the phone layout
# as a whole are the layout's (README, "Phones"): listed when they overflow, for the report
OWN = (
    "nav.msgnav, iframe.mailbody, .bodies, nav.bodytabs, section.conversation, .provenance, "
    "table.envelope, details.inline-images, details.quoted, details.thread"
)


def no_overflow(page: Any) -> None:
    """None of ``OWN`` reaches past the window's right edge."""
    over = page.evaluate(
        """(sel) => [...document.querySelectorAll(sel)]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
            .map(e => e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right)""",
        OWN,
    )
    assert over == [], f"{page.url}: wider than the window: {over}"


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_back_to_the_search_and_previous_next(browser: Any, site: Site, size: Any) -> None:
    page = browser.pages[0]
    page.set_viewport_size(size)
    page.goto(f"{site.url}/search?q=&order=date&per=25")
    first = page.locator("table.results tbody tr td.subject a").first
    subject = first.inner_text()
    first.click()
    page.wait_for_url("**/messages/*")
    assert page.locator("h1.subject").inner_text() == subject
    total = page.locator("nav.msgnav .place").inner_text().removeprefix("1 of ")
    assert total.isdigit()
    no_overflow(page)
    assert page.locator("a[rel=prev]").count() == 0
    page.locator("a[rel=next]").click()
    page.wait_for_url("**/messages/*")
    assert page.locator("nav.msgnav .place").inner_text() == f"2 of {total}"
    assert page.locator("a[rel=next]").get_attribute("accesskey") == "n"
    assert page.locator("a[rel=prev]").get_attribute("accesskey") == "p"
    page.locator("a[rel=prev]").click()
    page.wait_for_url("**/messages/*")
    assert page.locator("h1.subject").inner_text() == subject
    page.locator("nav.msgnav a.back").click()
    page.wait_for_url("**/search?*")
    assert page.input_value("input[name=q]") == ""
    assert page.locator("input[name=order]").input_value() == "date"
    assert page.locator("input[name=per]").input_value() == "25"
    assert page.locator("table.results tbody tr td.subject a").first.inner_text() == subject


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_link_in_mail_opens_outside_the_frame(
    browser: Any, site: Site, outside: Outside, size: Any
) -> None:
    outside.hits.clear()  # the other window size's case clicked the link too
    page = browser.pages[0]
    page.set_viewport_size(size)
    message_url = f"{site.url}/messages/{site.ids['linked']}"
    page.goto(message_url)
    body = page.frame_locator("iframe.mailbody")
    body.locator("h1").wait_for()
    no_overflow(page)
    with browser.expect_page() as opened:
        body.locator("a", has_text="the article").click()
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.url == f"{outside.url}/article?id=7"
    assert tab.locator("p").inner_text() == "the linked site"
    assert tab.evaluate("() => window.opener") is None
    assert outside.hits == [("/article?id=7", None)]  # no Referer: no archive address leaks
    # the message page and its frame stay as they were
    assert page.url == message_url
    assert body.locator("h1").inner_text() == "News"
    frame = next(f for f in page.frames if f.url.endswith("/body"))
    assert frame.evaluate("() => document.scripts.length") == 0
    tab.close()


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_conversation_and_quoted_text(browser: Any, site: Site, size: Any) -> None:
    page = browser.pages[0]
    page.set_viewport_size(size)
    page.goto(f"{site.url}/messages/{site.ids['answer']}")
    items = page.locator("ol.conversation li")
    assert items.count() == 3
    assert "(this message)" in items.nth(1).inner_text()
    no_overflow(page)
    quoted = page.locator("details.quoted")
    assert quoted.locator("summary").inner_text() == "Quoted text (2 lines)"
    assert not quoted.locator("pre").is_visible()  # folded
    quoted.locator("summary").click()
    assert quoted.locator("pre").is_visible()
    assert "> Shall we meet on Friday?" in quoted.locator("pre").inner_text()
    items.nth(2).locator("a").click()
    page.wait_for_url(f"{site.url}/messages/{site.ids['thanks']}")
    assert page.locator("h1.subject").inner_text() == "Re: Budget?"
    # grouped results: the three are one row
    page.goto(f"{site.url}/search?q=after:2025-02-11&group=1")  # the three only
    assert page.locator("table.results tbody tr").count() == 1
    assert "2 more in this conversation" in page.locator("details.thread summary").inner_text()


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_one_body_at_a_time_and_imported_mail(browser: Any, site: Site, size: Any) -> None:
    page = browser.pages[0]
    page.set_viewport_size(size)
    page.goto(f"{site.url}/messages/{site.ids['linked']}")
    frame = page.locator("iframe.mailbody")
    frame.wait_for()
    assert page.locator("div.body").count() == 0
    height = frame.bounding_box()["height"]
    assert size["height"] * 0.6 < height <= size["height"] * 0.8 + 1
    no_overflow(page)
    page.locator("nav.bodytabs a", has_text="Text").click()
    page.wait_for_url("**view=text")
    assert page.locator("iframe.mailbody").count() == 0
    assert "Read the article" in page.locator("div.body").inner_text()
    no_overflow(page)
    page.goto(f"{site.url}/messages/{site.ids['imported']}")
    provenance = page.locator("tr.provenance").inner_text()
    assert "by the import of mbox" in provenance
    assert "old.mbox" in provenance
    assert "Sender\t<>" not in page.locator("table.envelope").inner_text()
    assert "not recorded in the imported mailbox" in page.locator("table.envelope").inner_text()
    no_overflow(page)
