"""The admin and auditor pages in a real browser (Debian's Chromium via Playwright), at desktop
(1280x800) and phone (390x844) size: the add form keeps what was typed after an error, removal
goes through a confirmation page, a reload after a change does not do it again, the audit log's
filters, CSV and chain check, the statistics chart; no page wider than the screen."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright
from test_web_browser import CHROMIUM, CHROMIUM_ARGS, CLI, Site, add_user, cli_env, site, tracker  # noqa: F401

pytestmark = [pytest.mark.integration]

ADMIN_PASSWORD = "the admin's long password"
SIZES = [(1280, 800), (390, 844)]


def _add_admin(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "archiver.toml")  # the site fixture's
    add_user(env, "root", "admin", ADMIN_PASSWORD)


def _fits(page: Any, what: str) -> None:
    """Nothing in the page's main part reaches past the screen's right edge (the header above
    it is the phone layout's, checked in that work's own browser test)."""
    wide = page.evaluate(
        "() => [...document.querySelectorAll('main, main *')]"
        ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5"
        " && !e.closest('div.tablescroll *'))"
        ".slice(0, 8).map(e => e.tagName + '.' + e.className)"
    )
    assert wide == [], (what, wide)
    scrolls = page.evaluate(
        "() => [...document.querySelectorAll('div.tablescroll')]"
        ".every(e => e.getBoundingClientRect().right <= window.innerWidth + 0.5)"
    )
    assert scrolls, what


def _flash(page: Any) -> list[str]:
    return page.locator("main p.notice, main p.error").all_inner_texts()  # type: ignore[no-any-return]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_admin_pages_in_a_browser(
    site: Site,  # noqa: F811
    tmp_path: Path,
    width: int,
    height: int,
) -> None:
    _add_admin(tmp_path)
    name = f"frank{width}"
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
            headless=True, accept_downloads=True, viewport={"width": width, "height": height},
        )  # fmt: skip
        try:
            page = context.new_page()
            dialogs: list[str] = []

            def on_dialog(dialog: Any) -> None:  # no script runs, so none should come
                dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.goto(f"{site.url}/login?next=/users")
            page.fill("input[name=name]", "root")
            page.fill("input[name=password]", ADMIN_PASSWORD)
            page.click("form button[type=submit]")
            page.wait_for_url(f"{site.url}/users")
            _fits(page, "users")

            # a refused add keeps the form, less the password
            form = page.locator("form.adduser")
            form.locator("input[name=name]").fill(name)
            form.locator("select[name=role]").select_option("auditor")
            form.locator("textarea[name=addresses]").fill("frank@example.com\nnot-an-address")
            form.locator("input[name=password]").fill("frank's long password")
            form.locator("button[type=submit]").click()
            page.wait_for_load_state()
            assert any("not a mail address" in t for t in _flash(page)), _flash(page)
            form = page.locator("form.adduser")
            assert form.locator("input[name=name]").input_value() == name
            assert form.locator("select[name=role]").input_value() == "auditor"
            assert form.locator("textarea[name=addresses]").input_value() == (
                "frank@example.com\nnot-an-address"
            )
            assert form.locator("input[name=password]").input_value() == ""
            _fits(page, "users after an error")

            # fixed: added, and the address bar is on /users, not on the POST
            form.locator("textarea[name=addresses]").fill("frank@example.com")
            form.locator("input[name=password]").fill("frank's long password")
            form.locator("button[type=submit]").click()
            page.wait_for_url(f"{site.url}/users#status")
            assert _flash(page) == [f"Added {name} (auditor)."]
            page.reload()  # a plain GET: nothing added twice, the message gone
            assert _flash(page) == []
            assert page.locator(f"table.users strong:text-is('{name}')").count() == 1
            assert "root" in page.locator("table.users").inner_text()

            # remove asks first; Cancel keeps the user
            page.click(f"a[href='/users/{name}/remove']")
            page.wait_for_url(f"{site.url}/users/{name}/remove")
            assert page.locator("h1").inner_text() == f"Remove {name}?"
            _fits(page, "confirmation")
            page.click("text=Cancel")
            page.wait_for_url(f"{site.url}/users")
            assert page.locator(f"table.users strong:text-is('{name}')").count() == 1
            page.click(f"a[href='/users/{name}/remove']")
            page.click(f"button:text-is('Remove {name}')")
            page.wait_for_url(f"{site.url}/users")
            assert _flash(page) == [f"Removed {name} with their sessions and API tokens."]
            page.reload()
            assert _flash(page) == []
            assert page.locator(f"table.users strong:text-is('{name}')").count() == 0

            # an API token for audra: shown once
            page.click("a[href='/users/audra/tokens']")
            page.fill("input[name=label]", "reports")
            page.click("button:text-is('Create')")
            page.wait_for_url(f"{site.url}/users/audra/tokens")
            secret = page.locator("input.secret").input_value()
            assert secret.startswith("pa_")
            _fits(page, "tokens")
            page.reload()
            assert page.locator("input.secret").count() == 0

            # the audit log: filters, the chain, the CSV
            page.goto(f"{site.url}/audit")
            _fits(page, "audit")
            page.fill("form.filters input[name=q]", name)
            page.click("form.filters button[type=submit]")
            page.wait_for_url("**/audit?**")
            actions = page.locator("table.audit tbody td:nth-child(5)").all_inner_texts()
            assert actions == ["user.remove", "user.add"], actions
            page.click("button:text-is('Verify the chain')")
            page.wait_for_url("**/audit/verify?**")
            assert page.locator("p.notice").inner_text().startswith("Chain verified: ")
            _fits(page, "audit verified")
            with page.expect_download() as download:
                page.click("a:has-text('Download CSV')")
            text = Path(download.value.path()).read_text(encoding="utf-8")
            rows = list(csv.DictReader(io.StringIO(text)))
            # the download is recorded with its filter first, so it matches it too
            assert [r["action"] for r in rows] == ["audit.export", "user.remove", "user.add"]
            white = page.evaluate(
                "() => getComputedStyle(document.querySelector('table.audit td.mono')).whiteSpace"
            )
            assert white == "nowrap"

            # statistics: by arrival, the chart's bars
            page.goto(f"{site.url}/stats")
            assert "by arrival" in page.locator("h2").inner_text()
            assert page.locator("svg.chart rect.bar").count() >= 1
            _fits(page, "stats")
            page.screenshot(path=str(tmp_path / f"stats-{width}.png"), full_page=True)
        finally:
            context.close()
    assert dialogs == []
