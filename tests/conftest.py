"""Shared fixtures: a fresh archive on the default backends (SQLite + files) in tmp_path."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from email.feedparser import FeedParser
from pathlib import Path

import pytest
from tests.s3_helpers import moto_s3  # noqa: F401  (the session's S3 server, a fixture)

from postfix_archiver.accounts import home_url, open_accounts
from postfix_archiver.archive import Archive
from postfix_archiver.config import Config, parse_config

CPYTHON_EMAIL = Path(__file__).parent / "data" / "cpython_email"


def make_config(home: Path, extra: str = "") -> Config:
    return parse_config(f'[archive]\nhome = "{home}"\n{extra}', str(home / "config.toml"))


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path / "data")


@pytest.fixture
def archive(config: Config) -> Iterator[Archive]:
    with Archive(config) as a:
        yield a


@pytest.fixture
def throwaway_user() -> Iterator[str]:
    """A system user name nobody has, for ``install --apply``; the user and group it made
    are removed after (needs root and useradd, as CI has)."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root and useradd")
    name = f"pa{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=60)
        subprocess.run(["groupdel", name], capture_output=True, timeout=60)


@pytest.fixture
def cpython_messages() -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(CPYTHON_EMAIL.glob("msg_*.txt"))]


def refuse_audit(home: Path, when: str = "1") -> None:
    """Makes the real audit log refuse new entries (``when`` true for them), as a full disk
    or a broken database would: root ignores file modes, a trigger does not."""
    with open_accounts(home_url(home)):
        pass
    db = sqlite3.connect(home / "web.sqlite")
    with db:
        db.execute(
            f"CREATE TRIGGER no_audit BEFORE INSERT ON audit WHEN {when} "
            "BEGIN SELECT RAISE(ABORT, 'audit log full'); END"
        )
    db.close()


class Parses:
    """Counts whole-message parses: every one ends in ``FeedParser.close``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        close = FeedParser.close

        def counted(parser: FeedParser) -> object:
            self.count += 1
            return close(parser)

        monkeypatch.setattr(FeedParser, "close", counted)
