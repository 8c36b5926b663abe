"""A command that only reads, or that fails, creates nothing (issue #9, item 7).

Run without a config, a command used to create ``./archive-data`` in whatever directory it
was run from, even a mistyped ``user passwd``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = Path(sys.executable).parent / "postfix-archiver"

READ_OR_FAIL = [
    ("search", "invoice"),
    ("search", "--json"),
    ("show", "1"),
    ("show", "--raw", "1"),
    ("stats",),
    ("stats", "--json"),
    ("verify",),
    ("export", "--format", "mbox", "-o", "out.mbox"),
    ("user", "passwd", "bob"),
    ("user", "token", "bob", "--label", "laptop"),
    ("user", "tokens", "bob"),
    ("user", "revoke", "bob", "1"),
    ("user", "remove", "bob"),
    ("audit",),
]


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
    return subprocess.run(
        [str(CLI), *args],
        cwd=cwd,
        env=env,
        input="secret\nsecret\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("args", READ_OR_FAIL, ids=lambda a: " ".join(a))
def test_reading_or_failing_creates_no_archive(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run(tmp_path, *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "no archive at" in line or "no web users yet" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_user_list_on_no_archive_says_so_and_creates_nothing(tmp_path: Path) -> None:
    result = run(tmp_path, "user", "list")
    assert result.returncode == 0
    assert "No web users yet" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_import_still_creates_the_archive(tmp_path: Path) -> None:
    (tmp_path / "a.eml").write_bytes(b"From: a@example.com\nSubject: s\n\nbody\n")
    assert run(tmp_path, "import", "a.eml").returncode == 0
    assert (tmp_path / "archive-data" / "catalog.sqlite").exists()
    assert run(tmp_path, "stats").returncode == 0
