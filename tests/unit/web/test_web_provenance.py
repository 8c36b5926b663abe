"""Imported mail says where it came from (which import, of what, when, from which file)
instead of an empty envelope box; mail imported before that was recorded says so too."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from postfix_archiver.cli import main

from .test_web_pages import Tags
from .web_helpers import Web

# no Return-Path, no Delivered-To: the mailbox recorded no envelope at all
MBOX = (
    b"From MAILER-DAEMON Mon Feb  3 10:00:00 2025\n"
    b"From: Old Friend <friend@example.net>\nTo: bob@example.com\nSubject: from the old mailbox\n"
    b"Date: Mon, 03 Feb 2025 10:00:00 +0000\nMessage-ID: <old1@example.net>\n\nhello\n\n"
)


def _import(web: Web, tmp_path: Path) -> tuple[Path, int]:
    box = tmp_path / "old mail.mbox"
    box.write_bytes(MBOX)
    config = tmp_path / "config.toml"
    config.write_text(f'[archive]\nhome = "{web.config.archive.home}"\n')
    result = CliRunner().invoke(main, ["import", "--config", str(config), str(box)])
    assert result.exit_code == 0, result.output
    (row,) = web.archive.search("subject:mailbox").results
    return box, row.id


def test_imported_mail_says_where_it_came_from(web: Web, tmp_path: Path) -> None:
    box, message = _import(web, tmp_path)
    page = web.login("audra").get(f"/messages/{message}")
    assert page.status_code == 200
    assert len(Tags(page.text).find("tr", **{"class": "provenance"})) == 1
    text = page.text
    start = text.index('<tr class="provenance">')
    row = text[start : text.index("</tr>", start)]
    assert f'by the import of <span class="mono">mbox {box}</span>' in row
    assert f'from <span class="mono">{box}: message at' in row
    assert "did not finish" not in row
    assert "&lt;&gt;" not in text  # no "Sender <>"
    assert "not recorded in the imported mailbox" in text


def test_a_user_sees_when_not_the_servers_file_names(web: Web, tmp_path: Path) -> None:
    box, message = _import(web, tmp_path)
    page = web.login("bob").get(f"/messages/{message}")
    assert page.status_code == 200
    assert str(box) not in page.text


def test_mail_imported_before_origins_were_recorded(web: Web, tmp_path: Path) -> None:
    _, message = _import(web, tmp_path)
    conn = sqlite3.connect(Path(web.config.archive.home) / "catalog.sqlite")
    with conn:
        conn.execute("DELETE FROM envelope_imports")
    conn.close()
    page = web.login("audra").get(f"/messages/{message}")
    assert page.status_code == 200
    assert "before the archive recorded which" in page.text


def test_importing_again_keeps_the_first_origin(web: Web, tmp_path: Path) -> None:
    box, message = _import(web, tmp_path)
    copy = tmp_path / "copy.mbox"
    copy.write_bytes(MBOX)
    config = tmp_path / "config.toml"
    result = CliRunner().invoke(main, ["import", "--config", str(config), str(copy)])
    assert result.exit_code == 0, result.output
    page = web.login("audra").get(f"/messages/{message}")
    assert str(box) in page.text
    assert str(copy) not in page.text


def test_a_file_name_that_is_not_utf8(web: Web, tmp_path: Path) -> None:
    raw_dir = bytes(tmp_path) + b"/old\xff mail.mbox"
    with open(raw_dir, "wb") as f:
        f.write(MBOX)
    config = tmp_path / "config.toml"
    config.write_text(f'[archive]\nhome = "{web.config.archive.home}"\n')
    name = raw_dir.decode("utf-8", "surrogateescape")
    result = CliRunner().invoke(main, ["import", "--config", str(config), name])
    assert result.exit_code == 0, result.output
    (row,) = web.archive.search("subject:mailbox").results
    page = web.login("audra").get(f"/messages/{row.id}")
    assert page.status_code == 200
    assert "old\u00ff mail.mbox" in page.text


def test_show_says_where_imported_mail_came_from(web: Web, tmp_path: Path) -> None:
    box, message = _import(web, tmp_path)
    config = tmp_path / "config.toml"  # written by _import
    shown = CliRunner().invoke(main, ["show", "--config", str(config), str(message)])
    assert shown.exit_code == 0, shown.output
    line = next(line for line in shown.output.splitlines() if "imported from" in line)
    assert f"imported from {box}: message at" in line
    assert f"by the import of mbox {box} started" in line
