"""``purge`` and ``erase`` run for real: dry runs change no byte, held mail is kept or refused
by name, a locked catalog is a clear line that loses nothing, both are audited, and hostile
queries and reasons are errors, never tracebacks."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.conftest import make_config, refuse_audit

from postfix_archiver.accounts import home_url, open_accounts
from postfix_archiver.archive import Archive
from postfix_archiver.envelope import Envelope

CLI = Path(sys.executable).parent / "postfix-archiver"
OLD = datetime.now(UTC) - timedelta(days=400)


def raw(n: int) -> bytes:
    return (
        f"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: report {n}\r\n"
        f"Message-ID: <r{n}@example.com>\r\n\r\nquarterly figures {n}\r\n"
    ).encode()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    with Archive(make_config(home, 'retention = "30d"\n')) as archive:
        for n in range(1, 4):
            received = OLD if n < 3 else datetime.now(UTC)
            archive.ingest(
                raw(n), Envelope("a@example.com", ("b@example.com",), f"Q{n}", received=received)
            )
        archive.index_pending()  # as serve's indexer does after the answer
    return home


def run(home: Path, *args: str | bytes) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
    env["POSTFIX_ARCHIVER_HOME"] = str(home)
    return subprocess.run(
        [str(CLI), *args],
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        check=False,
    )


def snapshot(home: Path) -> dict[str, bytes]:
    """Every file's bytes, but for what a read-only SQLite open may leave: the WAL index
    (-shm, no data) and an empty WAL."""
    files = {str(p): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}
    return {
        name: data
        for name, data in files.items()
        if not name.endswith("-shm") and not (name.endswith("-wal") and not data)
    }


def hold(home: Path, message: int, name: str = "case-7") -> None:
    db = sqlite3.connect(home / "catalog.sqlite")
    with db:
        db.execute(
            "INSERT INTO holds (name, query, reason, created_by, created_at) "
            "VALUES (?, 'x', 'litigation', 'root', 0)",
            (name,),
        )
        db.execute(
            "INSERT INTO message_holds (hold, message) SELECT id, ? FROM holds WHERE name = ?",
            (message, name),
        )
    db.close()


def ids(home: Path) -> list[int]:
    with Archive(make_config(home), readonly=True) as archive:
        return sorted(r.id for r in archive.catalog.messages())


def test_purge_dry_run_shows_what_would_go_and_changes_no_byte(home: Path) -> None:
    hold(home, 2)
    before = snapshot(home)
    result = run(home, "purge", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["dry_run"] is True
    assert [m["id"] for m in doc["remove"]] == [1]
    assert [(m["id"], m["holds"]) for m in doc["held"]] == [(2, ["case-7"])]
    assert snapshot(home) == before


def test_purge_removes_expired_keeps_held_and_is_audited(home: Path) -> None:
    hold(home, 2)
    result = run(home, "purge")
    assert result.returncode == 0, result.stderr
    assert "purged: message 1 (tombstone event 4)" in result.stdout
    assert "kept (held by case-7): message 2" in result.stdout
    assert ids(home) == [2, 3]
    with open_accounts(home_url(home), create=False) as accounts:
        total, entries = accounts.audit(action="message.purge")
    assert total == 2
    entry, intent = entries  # newest first: the outcome follows its intent
    assert intent.action == "message.purge.intent"
    assert intent.detail["remove"][0]["id"] == 1
    assert intent.detail["held"] == [2]
    assert entry.action == "message.purge"
    assert entry.detail["removed"][0]["id"] == 1
    assert entry.detail["held"] == [2]
    verified = run(home, "verify")
    assert verified.returncode == 0, verified.stderr
    assert "event 1: arrival of a message removed by tombstone 4 (purge, retention expired" in (
        verified.stdout
    )


def wal_size(database: Path) -> int:
    wal = Path(f"{database}-wal")  # the last connection to close removes it
    return wal.stat().st_size if wal.exists() else 0


READER = """
import sqlite3, sys
conns = [sqlite3.connect(path, isolation_level=None) for path in sys.argv[1:]]
for conn in conns:  # a read transaction each, as a long web request or a backup holds
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
print("reading", flush=True)
sys.stdin.readline()
"""


def test_a_log_a_reader_keeps_from_being_cut_fails_the_purge_until_rerun(home: Path) -> None:
    """The removed rows' old pages stay in a WAL a reader keeps: the purge must say so (and
    fail) rather than call the erasure done, and a rerun once the reader is gone cuts it."""
    catalog, pack = home / "catalog.sqlite", home / "blobs" / "packed.sqlite"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(catalog), str(pack)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline() == "reading\n"
        result = run(home, "purge", "--json")
        assert result.returncode == 1, result.stderr
        assert "purge is done, but the write-ahead log" in result.stderr
        assert "run `postfix-archiver purge` again" in result.stderr
        assert json.loads(result.stdout)["logs_not_cleared"] == [str(catalog), str(pack)]
        assert ids(home) == [3]  # the removal itself is done
        assert wal_size(catalog) > 0
        assert wal_size(pack) > 0
    finally:
        reader.communicate("\n", timeout=30)
    again = run(home, "purge")
    assert again.returncode == 0, again.stderr
    assert wal_size(catalog) == wal_size(pack) == 0
    with open_accounts(home_url(home), create=False) as accounts:
        _total, entries = accounts.audit(action="message.purge")
    outcomes = [e for e in entries if e.action == "message.purge"]  # not the intents before
    assert sorted(e.detail["logs_not_cleared"] for e in outcomes) == [[], [str(catalog), str(pack)]]


def test_erase_refuses_held_mail_naming_message_and_hold(home: Path) -> None:
    hold(home, 2)
    before = snapshot(home)
    result = run(home, "erase", "report", "--reason", "art. 17 request")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "message 2 (hold case-7)" in result.stderr
    assert "nothing was erased" in result.stderr
    assert snapshot(home) == before


def test_erase_dry_run_then_erase(home: Path) -> None:
    before = snapshot(home)
    dry = run(home, "erase", "subject:report", "-figures", "OR", "3", "--reason", "r", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would erase: message 3" in dry.stdout
    assert snapshot(home) == before
    done = run(home, "erase", "quarterly", "3", "--reason", "art. 17 request", "--json")
    assert done.returncode == 0, done.stderr
    assert [m["id"] for m in json.loads(done.stdout)["removed"]] == [3]
    assert ids(home) == [1, 2]


def test_erase_on_a_locked_catalog_is_one_clear_line_and_loses_nothing(home: Path) -> None:
    before = ids(home)
    db = sqlite3.connect(home / "catalog.sqlite", isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    try:
        env = {"POSTFIX_ARCHIVER_HOME": str(home)}
        result = subprocess.run(
            [str(CLI), "erase", "report", "--reason", "r"],
            env={**{k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_")}, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: catalog")
    assert "locked" in result.stderr
    assert ids(home) == before
    with Archive(make_config(home), readonly=True) as archive:
        assert all(archive.raw(i) for i in before)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["erase", "--reason", "r"], "give a query"),
        (["erase", "report", "--reason", "   "], "give a reason"),
        (["erase", "report", "--reason", "x" * 100_000], "keep it to 1000"),
        (["erase", "id:99999999999999999999999", "--reason", "r"], ""),
        (["erase", "(" * 5000, "--reason", "r"], ""),
        (["erase", b"from:\xff\xfe@example.com", "--reason", b"\xe9t\xe9 \x1b[31m"], ""),
        (["erase", "after:99999-01-01", "--reason", "r"], ""),
    ],
)
def test_hostile_queries_and_reasons_never_trace_back(
    home: Path, args: list[str | bytes], message: str
) -> None:
    before = ids(home)
    result = run(home, *args)
    assert "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr
    assert ids(home) == before


@pytest.mark.parametrize("command", [["purge"], ["erase", "report", "--reason", "r"]])
def test_nothing_is_removed_that_the_audit_log_cannot_record(
    home: Path, command: list[str]
) -> None:
    refuse_audit(home)
    before = ids(home)
    result = run(home, *command)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "audit log full" in result.stderr
    assert ids(home) == before


def test_a_removal_whose_outcome_is_not_recorded_left_its_intent(home: Path) -> None:
    refuse_audit(home, "NEW.action NOT LIKE '%.intent'")
    result = run(home, "purge")
    assert result.returncode == 1
    assert "audit log full" in result.stderr
    assert ids(home) == [3]
    with open_accounts(home_url(home), create=False) as accounts:
        _, [entry] = accounts.audit()
    assert entry.action == "message.purge.intent"
    assert [m["id"] for m in entry.detail["remove"]] == [1, 2]


def test_erase_finds_mail_not_indexed_yet(tmp_path: Path) -> None:
    """An erasure by words must not miss mail archived but not yet indexed: the dry run
    says it may, the erasure indexes first."""
    home = tmp_path / "home"
    with Archive(make_config(home)) as archive:
        archive.ingest(raw(3), Envelope("a@example.com", ("b@example.com",), "Q3"))
    dry = run(home, "erase", "quarterly", "--reason", "r", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "1 messages are not indexed yet: this dry run may miss" in dry.stderr
    done = run(home, "erase", "quarterly", "--reason", "art. 17 request", "--json")
    assert done.returncode == 0, done.stderr
    assert [m["id"] for m in json.loads(done.stdout)["removed"]] == [1]
