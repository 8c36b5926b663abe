"""Hostile Date headers through the command line and the web: issue #9, item 1.

A message dated ``31 Dec 9999 -1200`` (year 10000 in UTC) once made every reader of the
catalog fail; ``import`` of it aborted; unreadable dates were stored as 1970."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.conftest import make_config
from tests.unit.web.web_helpers import admin_web

CLI = Path(sys.executable).parent / "postfix-archiver"

HOSTILE_DATES = [
    "Fri, 31 Dec 9999 23:59:59 -1200",
    "Mon, 1 Jan 0001 00:00:00 +1400",
    "Sat, 1 Jan 99999 10:00:00 +0000",
    "Sun, 2 Jan 0 10:00:00 +0000",
    "30 Feb 2025 10:00:00 +0000",
    "garbage date",
    "Mon, 1 Jan 2024 25:61:61 +9999",
    "Mon, 1 Jan 2024 10:00:00 +9959",
]


def eml(i: int, date: str) -> bytes:
    return (
        f"From: a{i}@example.com\nTo: b@example.org\nSubject: dated {i}\nDate: {date}\n"
        f"Message-ID: <d{i}@example.com>\n\nbody {i}\n"
    ).encode()


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(CLI), *args],
        env={"POSTFIX_ARCHIVER_HOME": str(home), "PATH": "/usr/bin:/bin", "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, (args, result.stderr)
    return result


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "mail"
    folder.mkdir()
    for i, date in enumerate(HOSTILE_DATES):
        (folder / f"{i}.eml").write_bytes(eml(i, date))
    home = tmp_path / "home"
    run(home, "import", str(folder))
    return home


def test_every_reader_survives_hostile_dates(home: Path, tmp_path: Path) -> None:
    found = json.loads(run(home, "search", "--json").stdout)
    assert found["total"] == len(HOSTILE_DATES)
    for r in found["results"]:
        doc = json.loads(run(home, "show", "--json", str(r["id"])).stdout)
        assert doc["date"] == r["date"]
        run(home, "show", str(r["id"]))
    for order in ("date", "-date"):
        run(home, "search", "--order", order)
    stats = json.loads(run(home, "stats", "--json").stdout)
    assert stats["last_date"].startswith("9999-12-30")
    assert stats["first_date"].startswith("0001-01-02")
    run(home, "verify")
    for fmt in ("mbox", "maildir", "eml-zip"):
        run(home, "export", "--format", fmt, "-o", str(tmp_path / f"out.{fmt}"))


def test_unreadable_dates_become_the_arrival_time(home: Path) -> None:
    found = json.loads(run(home, "search", "--json", "--limit", "100").stdout)["results"]
    by_subject = {r["subject"]: datetime.fromisoformat(r["date"]) for r in found}
    now = datetime.now(UTC)
    for i, date in enumerate(HOSTILE_DATES):
        stored = by_subject[f"dated {i}"]
        if i >= 4:  # unreadable: when the import ran, not 1970
            assert abs(stored - now) < timedelta(minutes=5), (date, stored)
    assert by_subject["dated 0"] == datetime(9999, 12, 30, 23, 59, 59, tzinfo=UTC)
    assert by_subject["dated 1"].year == 1  # not 2001


def test_show_keeps_the_header_text(home: Path) -> None:
    found = json.loads(run(home, "search", "--json", "subject:dated", "subject:0").stdout)
    [row] = [r for r in found["results"] if r["subject"] == "dated 0"]
    shown = run(home, "show", str(row["id"])).stdout
    assert "Fri, 31 Dec 9999 23:59:59 -1200" in shown


def test_rows_written_before_dates_were_clamped_still_read(tmp_path: Path) -> None:
    """An archive written by an older version holds timestamps past year 9999."""
    home = tmp_path / "home"
    config = make_config(home)
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "a.eml").write_bytes(eml(1, "Mon, 1 Jan 2024 10:00:00 +0000"))
    run(home, "import", str(folder))
    conn = sqlite3.connect(home / "catalog.sqlite")
    with conn:
        conn.execute("UPDATE messages SET date = 253402343999, received = -99999999999999")
    conn.close()
    run(home, "search", "--json")
    run(home, "stats", "--json")
    with admin_web(config) as (archive, web):
        page = web.login("admin")
        api = web.token_client("admin")
        [row] = archive.search("").results
        for client, url in [
            (page, "/search"),
            (page, f"/messages/{row.id}"),
            (page, "/stats"),
            (api, "/api/v1/messages"),
            (api, f"/api/v1/messages/{row.id}"),
            (api, "/api/v1/stats"),
        ]:
            response = client.get(url)
            assert response.status_code == 200, (url, response.text)


def test_web_pages_show_hostile_dates(tmp_path: Path, home: Path) -> None:
    config = make_config(home)
    with admin_web(config) as (archive, web):
        page = web.login("admin")
        listing = page.get("/search")
        assert listing.status_code == 200
        assert "9999-12-30 23:59" in listing.text
        assert "0001-01-02" in listing.text  # four digits, not "1-01-02"
        [row] = [r for r in archive.search("", limit=100).results if r.subject == "dated 0"]
        shown = page.get(f"/messages/{row.id}")
        assert shown.status_code == 200
        assert "Fri, 31 Dec 9999 23:59:59 -1200" in shown.text
        assert web.token_client("admin").get("/api/v1/stats").status_code == 200
