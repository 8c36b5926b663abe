"""The web UI in a real browser: Debian's Chromium, headless, driven by Playwright.

The real ``postfix-archiver web`` command serves an archive holding ordinary mail and one
hostile HTML message whose script would set ``document.title``/``window.__pwned`` or open an
alert, and whose images, style sheets and frames point at a local HTTP server standing in
for a tracker. The test logs in, searches, opens the hostile message and checks that no
script ran (no dialog, nothing set, in the page or in the mail frame) and that the tracker
got no request at all; then it downloads the .eml and finds the view and the download in
the audit log.

Screenshots of the search and message pages are saved under the test's tmp directory; with
``UPDATE_SCREENSHOTS=1`` they are also written to docs/ (docs/screenshot-search.png,
docs/screenshot-message.png).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from requirements import require_any_binary
from web_corpus import demo_messages, hostile_message

from postfix_archiver.archive import Archive
from postfix_archiver.config import parse_config

pytestmark = pytest.mark.integration

CHROMIUM = require_any_binary(
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"], "Chromium (Debian package chromium)"
)

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CLI = Path(sys.executable).with_name("postfix-archiver")
DOCS = Path(__file__).parents[2] / "docs"
PASSWORD = "audra's long password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass
class Tracker:
    """A local HTTP server playing a remote image host; it records every request."""

    server: ThreadingHTTPServer
    hits: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def tracker() -> Iterator[Tracker]:
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as server:
        yield Tracker(server, hits)


@dataclass
class Site:
    url: str
    hostile_id: int
    hostile_raw: bytes
    report_id: int


@pytest.fixture
def site(tmp_path: Path, tracker: Tracker) -> Iterator[Site]:
    home = tmp_path / "home"
    config_path = tmp_path / "archiver.toml"
    port = free_port()
    config_path.write_text(f'[archive]\nhome = "{home}"\n[web]\nlisten = "127.0.0.1:{port}"\n')
    config = parse_config(config_path.read_text(), str(config_path))
    hostile_raw, hostile_env = hostile_message(tracker.url)
    with Archive(config) as archive:
        ids = [archive.ingest(raw, env).id for raw, env in demo_messages()]
        hostile_id = archive.ingest(hostile_raw, hostile_env).id
    env = cli_env(config_path)
    add_user(env, "audra", "auditor")
    with running_web(env, tmp_path, port) as url:
        yield Site(url, hostile_id, hostile_raw, ids[-1])


def cli_env(config_path: Path) -> dict[str, str]:
    """The environment for the ``postfix-archiver`` commands of a test: ``config_path``'s
    archive, nothing of the caller's own ``POSTFIX_ARCHIVER_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
    env["POSTFIX_ARCHIVER_CONFIG"] = str(config_path)
    return env


def add_user(env: dict[str, str], name: str, role: str, password: str = PASSWORD) -> None:
    subprocess.run(
        [str(CLI), "user", "add", name, "--role", role, "--password-stdin"],
        input=password + "\n", text=True, env=env, check=True, capture_output=True,
    )  # fmt: skip


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """A web server of ``handler`` on a free loopback port, in a thread, while in use."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def running_web(env: dict[str, str], log_dir: Path, port: int) -> Iterator[str]:
    """``postfix-archiver web`` run with ``env`` (its output in ``log_dir/web.log``, shown if
    it does not come up): its URL once ``/healthz`` answers; stopped after."""
    log_path = log_dir / "web.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(CLI), "web"], env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log_path.read_text()) from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def test_browser_session(site: Site, tracker: Tracker, tmp_path: Path) -> None:
    dialogs: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            accept_downloads=True,
            viewport={"width": 1280, "height": 860},
        )
        try:

            def route(r: object) -> None:
                request = r.request  # type: ignore[attr-defined]
                requests.append(request.url)
                if request.url.startswith(("http://127.0.0.1:", "data:")):
                    r.continue_()  # type: ignore[attr-defined]  # the tracker must see tries
                else:
                    r.abort()  # type: ignore[attr-defined]  # nothing leaves this machine

            context.route("**/*", route)
            context.on("request", lambda request: requests.append(request.url))
            page = context.new_page()

            def on_dialog(dialog: object) -> None:
                dialogs.append(dialog.message)  # type: ignore[attr-defined]
                dialog.dismiss()  # type: ignore[attr-defined]

            page.on("dialog", on_dialog)

            # log in: the search page sends a stranger to the login form and back
            page.goto(f"{site.url}/search")
            assert "/login" in page.url
            page.fill("input[name=name]", "audra")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{site.url}/search")

            # search with the query language, results as a table
            page.fill("input[name=q]", "after:2025-01-01")
            page.press("input[name=q]", "Enter")
            page.wait_for_url("**/search?q=after*")
            assert page.locator("table.results tbody tr").count() == 14
            page.screenshot(path=str(tmp_path / "screenshot-search.png"))
            page.fill("input[name=q]", "invoice")
            page.press("input[name=q]", "Enter")
            page.wait_for_url("**/search?q=invoice*")
            hostile_link = page.locator(f'a[href^="/messages/{site.hostile_id}?"]')
            assert "</title><script>" in hostile_link.inner_text()  # shown, as text
            # the word is marked where the index found it: in the HTML body's text, whose
            # blocks are words apart ("Overdue invoice Pay now.", not "invoicePay"), shown
            # as text under the row, nothing run
            row = page.locator(f'tr:has(a[href^="/messages/{site.hostile_id}?"])')
            assert row.locator("p.snippet mark").all_inner_texts() == ["invoice"]
            assert "Overdue invoice Pay now" in row.locator("p.snippet").inner_text()
            assert page.locator("p.snippet mark").count() >= 2  # the other invoices too

            # the hostile message: nothing runs, nothing is fetched from the tracker
            hostile_link.click()
            page.wait_for_url(f"{site.url}/messages/{site.hostile_id}?*")
            frame_element = page.locator("iframe.mailbody")
            frame_element.wait_for()
            body = page.frame_locator("iframe.mailbody")
            assert body.locator("h1").inner_text() == "Overdue invoice"
            page.wait_for_load_state("networkidle")
            frame = next(f for f in page.frames if f.url.endswith("/body"))
            assert page.evaluate("() => [document.title.includes('PWNED'), window.__pwned]") == [
                False,
                None,
            ]
            assert frame.evaluate("() => [document.title, window.__pwned]") == ["", None]
            assert frame.evaluate("() => document.scripts.length") == 0
            assert (
                frame.evaluate("() => document.querySelectorAll('[onerror],[onmouseover]').length")
                == 0
            )
            hover = body.locator("p", has_text="hover here")
            hover.hover()
            body.locator("a", has_text="click me").click()
            page.wait_for_timeout(300)
            sandbox = frame_element.get_attribute("sandbox")
            assert sandbox == "allow-popups allow-popups-to-escape-sandbox"
            assert "remote image blocked" in page.locator("main").inner_text()

            # download the original message
            with page.expect_download() as download:
                page.click("text=Download .eml")
            assert Path(download.value.path()).read_bytes() == site.hostile_raw
            assert download.value.suggested_filename == f"message-{site.hostile_id}.eml"

            # a message worth a screenshot: HTML with an inline logo, an attachment, a Bcc
            page.goto(f"{site.url}/messages/{site.report_id}")
            page.frame_locator("iframe.mailbody").locator("table").wait_for()
            assert "Bcc" in page.locator("ul.rcpts").inner_text()
            page.screenshot(path=str(tmp_path / "screenshot-message.png"), full_page=True)

            # the audit log shows the view and the download
            page.goto(f"{site.url}/audit?user=audra")
            rows = page.locator("table.audit tbody tr").all_inner_texts()
            mine = [r for r in rows if f"message={site.hostile_id}" in r]
            assert any("\tdownload\t" in r and 'part="raw"' in r for r in mine), rows
            assert any("\tview\t" in r for r in mine), rows
            assert any("\tlogin\t" in r and "ok=true" in r for r in rows), rows
            assert any("\tsearch\t" in r and 'query="invoice"' in r for r in rows), rows
        finally:
            context.close()

    assert dialogs == []
    assert tracker.hits == []
    assert not [u for u in requests if u.startswith(tracker.url)]
    assert not [u for u in requests if not u.startswith((site.url, "data:"))], requests
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        for name in ("screenshot-search.png", "screenshot-message.png"):
            shutil.copyfile(tmp_path / name, DOCS / name)
