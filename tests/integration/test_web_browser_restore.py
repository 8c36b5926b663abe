"""Restore to my mailbox in a real browser (Debian's Chromium via Playwright) against the real
``postfix-archiver web`` and a private Dovecot: a user clicks the button on a message's page,
lands on the same page with the outcome, and the message is in their Restored folder; a
second click restores nothing twice."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dovecot_harness import Dovecot, dovecot_server
from imap_cli import PASSWORD as IMAP_PASSWORD
from imap_cli import client
from playwright.sync_api import sync_playwright
from test_web_browser import CHROMIUM, CHROMIUM_ARGS, CLI, PASSWORD, cli_env, free_port, running_web

from postfix_archiver.archive import Archive
from postfix_archiver.config import parse_config
from postfix_archiver.envelope import Envelope

pytestmark = [pytest.mark.integration]

RAW = (
    b"From: Carol <carol@example.com>\r\nTo: Bob <bob@example.com>\r\n"
    b"Subject: Budget 2026\r\nDate: Tue, 07 Jan 2025 10:00:00 +0000\r\n"
    b"Message-ID: <budget@example.com>\r\n\r\nThe numbers, at last.\r\n"
)
ARRIVED = datetime(2025, 1, 7, 10, 5, tzinfo=UTC)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    for server in dovecot_server():
        server.add_user("bob", IMAP_PASSWORD)
        yield server


def restored(dovecot: Dovecot) -> dict[bytes, datetime]:
    imap = client(dovecot, "bob")
    try:
        if not imap.folder_exists("Restored"):
            return {}
        imap.select_folder("Restored", readonly=True)
        fetched = imap.fetch(imap.search(), ["BODY.PEEK[]", "INTERNALDATE"])
    finally:
        imap.logout()
    return {d[b"BODY[]"]: d[b"INTERNALDATE"] for d in fetched.values()}


def test_restore_to_my_mailbox_in_a_browser(tmp_path: Path, dovecot: Dovecot) -> None:
    port = free_port()
    master, secret = dovecot.master
    (tmp_path / "master.secret").write_text(secret + "\n")
    config_path = tmp_path / "archiver.toml"
    config_path.write_text(
        f'[archive]\nhome = "{tmp_path / "home"}"\n[web]\nlisten = "127.0.0.1:{port}"\n'
        f'[restore]\nimap = "imaps://127.0.0.1:{dovecot.imaps_port}"\n'
        f'ca_file = "{dovecot.ca_file}"\nmaster_user = "{master}"\n'
        'master_password_file = "master.secret"\n'
    )
    config = parse_config(config_path.read_text(), str(config_path))
    with Archive(config) as archive:
        message = archive.ingest(
            RAW, Envelope("carol@example.com", ("bob@example.com",), received=ARRIVED)
        ).id
    env = cli_env(config_path)
    subprocess.run(
        [str(CLI), "user", "add", "bob", "--role", "user", "--address", "bob@example.com",
         "--password-stdin"],
        input=PASSWORD + "\n", text=True, env=env, check=True, capture_output=True,
    )  # fmt: skip
    with running_web(env, tmp_path, port) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page: Any = browser.new_page()
            page.goto(f"{url}/login?next=/messages/{message}")
            page.fill("input[name=name]", "bob")
            page.fill("input[name=password]", PASSWORD)
            page.click("form button[type=submit]")
            page.wait_for_url(f"{url}/messages/{message}")
            page.click("button:text-is('Restore to my mailbox')")
            page.wait_for_load_state()
            assert page.url == f"{url}/messages/{message}"
            assert page.locator("#status").inner_text() == "Restored 1 message to your mailbox."
            page.reload()  # a GET: nothing restored again, the message gone
            assert page.locator("#status").count() == 0
            page.click("button:text-is('Restore to my mailbox')")
            page.wait_for_load_state()
            assert "1 was there already" in page.locator("#status").inner_text()
        finally:
            browser.close()
    got = restored(dovecot)
    assert list(got) == [RAW]
    assert [when.astimezone(UTC) for when in got.values()] == [ARRIVED]
