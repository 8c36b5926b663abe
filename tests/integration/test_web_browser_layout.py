"""Every page for every role in Chromium at desktop and phone size: it fits, it is accessible.

One ``postfix-archiver web`` serves the demo mailbox (web_corpus.py) plus mail made to break
a layout: a subject and an address with no place to wrap, a hostile HTML message, a hold with
a long query. For each role (user, auditor, admin) and each page that role may see, at
1280x800 and 390x844 (a phone):

- nothing overflows sideways (``scrollWidth <= innerWidth``), and on the phone the header's
  links, the Search button and "Log out" are all on screen;
- the search results become cards on the phone, with the subject given the card's width;
- axe-core (bundled by axe-playwright-python, nothing fetched) finds no serious or critical
  violation;
- the page has one h1 and a skip link to main, and the keyboard focus ring has at least 3:1
  contrast against what is behind it.

With ``UPDATE_SCREENSHOTS=1`` the phone screenshots are written to docs/ (the desktop ones
come from test_web_browser.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, FloatRect, Locator, Page, sync_playwright
from test_web_browser import CHROMIUM, CHROMIUM_ARGS, CLI, DOCS, free_port, running_web
from web_corpus import demo_messages, hostile_message

from postfix_archiver.archive import Archive
from postfix_archiver.config import parse_config
from postfix_archiver.envelope import Envelope

pytestmark = [pytest.mark.integration]

PASSWORD = "a long enough password for every role"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SIZES = {"desktop": DESKTOP, "phone": PHONE}
# user "bob" sees his own mail only; the auditor and the admin see all
ROLES = {"user": "bob", "auditor": "audra", "admin": "adam"}
LONG_WORD = "Quarterly" * 12  # 108 letters, no place to break
LONG_ADDRESS = "accounts.receivable.department.north-east-region@" + "subsidiary." * 6 + "example"


@dataclass
class Site:
    url: str
    message_id: int  # a message every role may read (Bob is a recipient)
    long_id: int  # the one with the unbreakable subject


def _long_message() -> tuple[bytes, Envelope]:
    """Dated 2024, so that the screenshots' ``after:2025-01-01`` leaves it out."""
    raw = (
        f"From: {LONG_ADDRESS}\nTo: bob@example.com, {LONG_ADDRESS}\n"
        f"Subject: {LONG_WORD} report {LONG_WORD}\nDate: Mon, 30 Dec 2024 10:00:00 +0000\n"
        "Message-ID: <long@example.com>\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n\n" + LONG_WORD * 3 + "\n"
    ).encode()
    return raw, Envelope(LONG_ADDRESS, ("bob@example.com",))


FILLERS = 30  # dated 2024: "before:2025-01-01" finds them and the long one, two pages of 25


def _fillers() -> Iterator[tuple[bytes, Envelope]]:
    for n in range(FILLERS):
        raw = (
            f"From: carol@example.com\nTo: bob@example.com\nSubject: Daily note {n}\n"
            f"Date: {n % 28 + 1:02d} Nov 2024 09:00:00 +0000\nMessage-ID: <note{n}@example.com>\n"
            "\nNothing new.\n"
        ).encode()
        yield raw, Envelope("carol@example.com", ("bob@example.com",))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("layout")
    home = tmp / "home"
    config_path = tmp / "archiver.toml"
    port = free_port()
    config_path.write_text(f'[archive]\nhome = "{home}"\n[web]\nlisten = "127.0.0.1:{port}"\n')
    config = parse_config(config_path.read_text(), str(config_path))
    with Archive(config) as archive:
        ids = [archive.ingest(raw, env).id for raw, env in demo_messages()]
        archive.ingest(*hostile_message("http://127.0.0.1:9"))  # port 9: nothing listens
        long_id = archive.ingest(*_long_message()).id
        for raw, envelope in _fillers():
            archive.ingest(raw, envelope)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
    env["POSTFIX_ARCHIVER_CONFIG"] = str(config_path)

    def cli(*args: str, stdin: str = "") -> None:
        subprocess.run(
            [str(CLI), *args], input=stdin, text=True, env=env, check=True, capture_output=True
        )

    for role, name in ROLES.items():
        extra = ["--address", "bob@example.com"] if role == "user" else []
        cli("user", "add", name, "--role", role, *extra, "--password-stdin", stdin=PASSWORD + "\n")
    cli("hold", "add", "case-2025-" + "x" * 50, f"from:{LONG_ADDRESS} OR subject:{LONG_WORD}")
    with running_web(env, tmp, port) as url:
        yield Site(url, ids[-1], long_id)  # ids[-1]: the Q3 report, to Bob


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def sessions(site: Site, browser: Browser) -> dict[str, Any]:
    """The cookies of a logged-in session for each role (one login each)."""
    states: dict[str, Any] = {}
    for role, name in ROLES.items():
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{site.url}/login")
        page.fill("input[name=name]", name)
        page.fill("input[name=password]", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(f"{site.url}/search")
        states[role] = context.storage_state()
        context.close()
    return states


def pages_for(role: str, site: Site) -> dict[str, str]:
    pages = {
        "search": "/search",
        "results": f"/search?q={LONG_WORD}+OR+report+OR+invoice+OR+budget",
        "bad query": "/search?q=from%3A+(" + "x" * 80,
        "message": f"/messages/{site.message_id}",
        "long message": f"/messages/{site.long_id}",
        "error": "/messages/999999999",
    }
    if role in ("auditor", "admin"):
        pages |= {"stats": "/stats", "audit": "/audit", "holds": "/holds"}
    if role == "admin":
        pages["users"] = "/users"
    return pages


CASES = [
    (size, role, name)
    for size in SIZES
    for role in ROLES
    for name in pages_for(role, Site("", 0, 0))
] + [(size, "nobody", "login") for size in SIZES]


def open_page(
    browser: Browser, sessions: dict[str, Any], site: Site, size: str, role: str, name: str
) -> tuple[Any, Page]:
    state = sessions.get(role)
    context = browser.new_context(viewport=SIZES[size], storage_state=state)  # type: ignore[arg-type]
    page = context.new_page()
    path = "/login" if role == "nobody" else pages_for(role, site)[name]
    page.goto(site.url + path)
    return context, page


def box(locator: Locator) -> FloatRect:
    """Where an element is drawn (it must be drawn)."""
    rect = locator.bounding_box()
    assert rect is not None, locator
    return rect


def overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the window (0: it fits)."""
    width: int = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    return width


@pytest.mark.parametrize(("size", "role", "name"), CASES)
def test_page_fits_the_window(
    browser: Browser, sessions: dict[str, Any], site: Site, size: str, role: str, name: str
) -> None:
    context, page = open_page(browser, sessions, site, size, role, name)
    try:
        assert overflow(page) <= 0, f"{name} for {role} at {size} is wider than the window"
        # every link and button of the header is inside the window, none cut off
        boxes = [box(e) for e in page.locator("header.top a, header.top button").all()]
        assert boxes
        width = SIZES[size]["width"]
        assert all(b["x"] >= 0 and b["x"] + b["width"] <= width for b in boxes), boxes
        if name.startswith("search") or name == "results":
            button = box(page.locator("form.searchbar button"))
            assert button["x"] + button["width"] <= width
    finally:
        context.close()


SCREENSHOT_QUERY = "/search?q=after%3A2025-01-01"


def test_results_are_cards_on_a_phone(
    browser: Browser, sessions: dict[str, Any], site: Site, tmp_path: Path
) -> None:
    """On the phone each result is a card whose first line is the subject, across the card."""
    widths = {}
    for size, viewport in SIZES.items():
        context = browser.new_context(viewport=viewport, storage_state=sessions["auditor"])  # type: ignore[arg-type]
        try:
            page = context.new_page()
            page.goto(site.url + SCREENSHOT_QUERY)
            row = page.locator("table.results tbody tr").first
            subject = row.locator("td.subject")
            row_box, subject_box = box(row), box(subject)
            widths[size] = subject_box["width"] / row_box["width"]
            assert page.locator("table.results thead").is_visible() == (size == "desktop")
            if size == "phone":
                # the subject is the card's first line, sender and date under it
                sender = box(row.locator("td.from"))
                assert sender["y"] >= subject_box["y"] + subject_box["height"]
                before = row.locator("td.to").evaluate(
                    "e => getComputedStyle(e, '::before').content"
                )
                assert before == '"to "'  # without the header row, the recipients are labelled
                page.screenshot(path=str(tmp_path / "screenshot-search-phone.png"))
                page.goto(f"{site.url}/messages/{site.message_id}")
                page.frame_locator("iframe.mailbody").locator("table").wait_for()
                page.screenshot(path=str(tmp_path / "screenshot-message-phone.png"))
        finally:
            context.close()
    assert widths["phone"] > 0.8 > widths["desktop"], widths
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        for name in ("screenshot-search-phone.png", "screenshot-message-phone.png"):
            shutil.copyfile(tmp_path / name, DOCS / name)


def luminance(rgb: tuple[float, ...]) -> float:
    """WCAG relative luminance of an sRGB colour (0-255 channels)."""

    def linear(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else float(((c + 0.055) / 1.055) ** 2.4)

    r, g, b = (linear(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


# what the keyboard focus looks like: the focused element's outline and the first opaque
# background behind it (the outline is drawn outside the element, so its parents' background)
FOCUS_RING = """() => {
  const el = document.activeElement;
  if (!el || el === document.body || el.tagName === "IFRAME") return null;
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  let p = el.parentElement, bg = [255, 255, 255];
  for (; p; p = p.parentElement) {
    const c = rgb(getComputedStyle(p).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] === 1)) { bg = c.slice(0, 3); break; }
  }
  const s = getComputedStyle(el);
  return {what: el.outerHTML.slice(0, 80), style: s.outlineStyle,
          width: parseFloat(s.outlineWidth), color: rgb(s.outlineColor), bg: bg};
}"""


@pytest.mark.parametrize(("size", "role", "name"), CASES)
def test_page_is_accessible(
    browser: Browser, sessions: dict[str, Any], site: Site, size: str, role: str, name: str
) -> None:
    context, page = open_page(browser, sessions, site, size, role, name)
    try:
        assert page.locator("h1").count() == 1
        assert page.locator("a.skip[href='#main']").count() == 1
        assert page.locator("main#main").count() == 1
        # links in the text are underlined (the header's and the buttons' are not text)
        plain = page.evaluate(
            """() => [...document.querySelectorAll('main a:not(.button)')]
                 .filter(a => !getComputedStyle(a).textDecorationLine.includes('underline'))
                 .map(a => a.outerHTML.slice(0, 80))"""
        )
        assert plain == []
        # every element the keyboard reaches shows a solid ring of 2px or more at 3:1 or better
        # (the ring's rules do not change with the width: walked at one size, for time's sake,
        # the first 30 stops: the header, the forms and the first results)
        seen: set[str] = set()
        for _ in range(30 if size == "desktop" else 0):
            page.keyboard.press("Tab")
            ring = page.evaluate(FOCUS_RING)
            if ring is None:
                continue
            if ring["what"] in seen:  # a date field's day, month, year: one element
                continue
            seen.add(ring["what"])
            assert ring["style"] != "none", ring
            assert ring["width"] >= 2, ring
            assert contrast(tuple(ring["color"]), tuple(ring["bg"])) >= 3, ring
        assert len(seen) >= 2 or size != "desktop"  # the skip link and at least one more
        # axe-core's rules: no serious or critical violation. Playwright injects axe through
        # the DevTools protocol, which the page's CSP (script-src 'none') does not block, so
        # no bypass_csp is needed. The mail body's frame is left out ("iframes": False): it
        # is the sender's HTML, sandboxed, not the archive's page.
        results = Axe().run(page, options={"iframes": False, "resultTypes": ["violations"]})
        bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        assert bad == [], results.generate_report()
    finally:
        context.close()


def test_access_keys(browser: Browser, sessions: dict[str, Any], site: Site) -> None:
    """S is the search box, N and P the next and previous page, each on one element only.

    Chromium acts on access keys only for key presses from the real keyboard, not for those
    Playwright sends, so this reads the attributes rather than pressing Alt+N.
    """
    keys = """() => Object.fromEntries([...document.querySelectorAll('[accesskey]')]
                 .map(e => [e.accessKey, e.name || e.rel]))"""
    context = browser.new_context(viewport=DESKTOP, storage_state=sessions["auditor"])  # type: ignore[arg-type]
    try:
        page = context.new_page()
        page.goto(site.url + "/search?q=before%3A2025-01-01&per=25")
        assert page.evaluate(keys) == {"s": "q", "n": "next"}
        assert page.locator("[accesskey]").count() == 2
        page.locator("a[accesskey=n]").click()
        page.wait_for_url("**page=2*")
        assert page.evaluate(keys) == {"s": "q", "p": "prev"}
    finally:
        context.close()
