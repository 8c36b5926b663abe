"""``postfix-archiver migrate --to CONFIG`` between two SQLite + files archives, run for real
as subprocesses (the PostgreSQL + S3 round trip and the kill -9 are in
``tests/integration/test_migrate.py``)."""

from __future__ import annotations

import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.migrate_helpers import build_source, cli, fingerprint, raw, raw_blobs, write_config

from postfix_archiver.archive import Archive
from postfix_archiver.archive.compression import PREFIX as DICTIONARIES
from postfix_archiver.config import load_config_file
from postfix_archiver.envelope import Envelope
from postfix_archiver.search import parse_query
from postfix_archiver.store.keyring import create_key_file


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    stderr = done.stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_copy_keeps_every_row_blob_and_search_and_passes_verify(tmp_path: Path) -> None:
    source = build_source(tmp_path, encrypted=True)
    key = tmp_path / "keys" / "archive.key"
    target = write_config(
        tmp_path / "target.toml",
        tmp_path / "target",
        f'encryption = "aes-256-gcm"\nkey_file = "{key}"\n',
    )
    done = cli(source, "migrate", "--to", str(target), "--json")
    assert done.returncode == 0, done.stderr
    before, after = load_config_file(source), load_config_file(target)
    assert fingerprint(after) == fingerprint(before)
    blobs = raw_blobs(before)
    assert raw_blobs(after) == blobs  # sealed as they were, under the same keyed names
    assert any(k.startswith(DICTIONARIES) for k in blobs)
    assert cli(target, "verify", "--index").returncode == 0
    # the erased message's tombstone came along: the chain still says what was removed
    assert any(e.seq for e in fingerprint(after)["events"])
    assert cli(target, "hold", "list").stdout == cli(source, "hold", "list").stdout


def test_a_second_run_catches_up_with_mail_and_changes_since(tmp_path: Path) -> None:
    source = build_source(tmp_path)
    target = write_config(tmp_path / "target.toml", tmp_path / "target")
    assert cli(source, "migrate", "--to", str(target)).returncode == 0
    config = load_config_file(source)
    with Archive(config) as archive:  # mail kept arriving, an older message got a new arrival
        archive.ingest(raw(50), Envelope("late@example.com", ("bob@example.com",), "L1"))
        archive.ingest(raw(3), Envelope("again@example.com", ("new@example.org",), "L2"))
        archive.index_pending()
    changed = cli(source, "retention", "set", 'subject:"report 4"', "5y", "--reason", "r")
    assert changed.returncode == 0, changed.stderr
    done = cli(source, "migrate", "--to", str(target))
    assert done.returncode == 0, done.stderr
    assert "resuming an earlier copy" in done.stderr
    assert fingerprint(load_config_file(target)) == fingerprint(config)
    with Archive(load_config_file(target), readonly=True) as archive:
        assert [r.id for r in archive.iter_search("from:again@example.com")]


def test_refuses_another_archive_itself_and_a_newer_schema(tmp_path: Path) -> None:
    source = build_source(tmp_path)
    other = write_config(tmp_path / "other.toml", tmp_path / "other")
    with Archive(load_config_file(other)) as archive:
        archive.ingest(raw(1, "other"), Envelope("o@example.com", ("p@example.com",), "O1"))
    before = fingerprint(load_config_file(other))
    line = one_line(cli(source, "migrate", "--to", str(other)))
    assert "holds another archive" in line
    assert fingerprint(load_config_file(other)) == before
    line = one_line(cli(source, "migrate", "--to", str(source)))
    assert "the target's catalog is the source's" in line
    newer = write_config(tmp_path / "newer.toml", tmp_path / "newer")
    db = sqlite3.connect(tmp_path / "newer" / "catalog.sqlite")
    db.execute("PRAGMA user_version = 99")
    db.close()
    line = one_line(cli(source, "migrate", "--to", str(newer)))
    assert "newer than this postfix-archiver knows" in line


def test_a_target_that_is_not_empty_is_refused(tmp_path: Path) -> None:
    source = build_source(tmp_path)
    target = write_config(tmp_path / "target.toml", tmp_path / "target")
    with Archive(load_config_file(target)) as archive:
        archive.catalog.add_hold("h", "x", parse_query("x"), "r", "root", datetime.now(UTC))
    line = one_line(cli(source, "migrate", "--to", str(target)))
    assert "is not empty" in line


def test_sealed_blobs_need_the_same_keys_at_the_target(tmp_path: Path) -> None:
    source = build_source(tmp_path, encrypted=True)
    plain = write_config(tmp_path / "plain.toml", tmp_path / "plain")
    assert "the source's blobs are encrypted" in one_line(
        cli(source, "migrate", "--to", str(plain))
    )
    create_key_file(tmp_path / "keys2" / "other.key")
    wrong = write_config(
        tmp_path / "wrong.toml",
        tmp_path / "wrong",
        f'encryption = "aes-256-gcm"\nkey_file = "{tmp_path / "keys2" / "other.key"}"\n',
    )
    assert "does not hold the source's keys" in one_line(cli(source, "migrate", "--to", str(wrong)))


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[archive\n", "config error:"),
        ('[archive]\ncatalog = "postgresql://u:hunter2@127.0.0.1:1/x"\n', "cannot connect"),
        ('[archive]\nstore = "s3://Not_A_Bucket/x"\n', "error:"),
        ('[archive]\ncatalog = "mysql://x"\n', "unsupported catalog URL"),
        ('[archive]\nhome = "/nonexistent/\u0663/' + "x" * 300 + '"\n', "error"),
        ("\xff\xfe garbage", "config error:"),
    ],
)
def test_a_broken_or_hostile_target_config_is_one_line(
    tmp_path: Path, toml: str, expected: str
) -> None:
    source = write_config(tmp_path / "source.toml", tmp_path / "source")
    with Archive(load_config_file(source)) as archive:
        archive.ingest(raw(1), Envelope("a@example.com", ("b@example.com",), "Q1"))
    bad = tmp_path / "bad.toml"
    if toml.startswith("[archive]\n") and "home" not in toml:  # its defaults, not the cwd's
        toml += f'home = "{tmp_path / "target"}"\n'
    bad.write_bytes(toml.encode("utf-8", "surrogateescape") if "\xff" not in toml else b"\xff\xfe")
    line = one_line(cli(source, "migrate", "--to", str(bad)))
    assert expected in line
    if expected == "config error:":
        assert "bad.toml" in line
    assert "hunter2" not in line


@pytest.mark.parametrize("value", ["\u0663", "0", "-1", "10" * 10, "1e3"])
def test_a_hostile_batch_is_a_usage_error(tmp_path: Path, value: str) -> None:
    source = write_config(tmp_path / "source.toml", tmp_path / "source")
    target = write_config(tmp_path / "target.toml", tmp_path / "target")
    done = cli(source, "migrate", "--to", str(target), "--batch", value)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
