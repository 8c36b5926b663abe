"""The index from the command line: ``index``, ``reindex``, ``verify --index``, the lag in
``stats`` and ``search``, and an attachment's failed extraction in ``show``; run for real as
subprocesses against a temporary home."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from tests.unit.test_cli import Cli

from postfix_archiver.accounts import AuditEntry, home_url, open_accounts
from postfix_archiver.envelope import Envelope
from postfix_archiver.extract import Limits


def mail(n: int, word: str = "zqxword", attachment: bytes = b"") -> bytes:
    head = (
        f"From: alice@example.com\nTo: bob@example.com\nSubject: memo {n}\n"
        f"Message-ID: <{n}@example.com>\nMIME-Version: 1.0\n"
    )
    if not attachment:
        return f"{head}\n{word} {n}\n".encode()
    return (
        (
            f'{head}Content-Type: multipart/mixed; boundary="B"\n\n--B\n'
            f"Content-Type: text/plain\n\n{word} {n}\n--B\n"
            'Content-Type: text/plain; name="notes.txt"\n'
            'Content-Disposition: attachment; filename="notes.txt"\n'
            "Content-Transfer-Encoding: base64\n\n"
        ).encode()
        + base64.encodebytes(attachment)
        + b"--B--\n"
    )


def put(cli: Cli, *messages: bytes, limits: Limits | None = None, index: bool = False) -> None:
    with cli.archive() as archive:
        for n, raw in enumerate(messages):
            archive.ingest(raw, Envelope("a@example.com", ("b@example.com",), queue_id=f"Q{n}"))
        if limits is not None:
            archive.extract_limits = limits
        if index:
            archive.index_pending()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_index_drains_the_queue_and_search_says_when_it_lags(cli: Cli) -> None:
    put(cli, mail(1), mail(2))
    result = cli.ok("search", "zqxword")
    assert "2 messages are not indexed yet" in result.stderr.decode()
    doc = cli.json("search", "--json", "zqxword")
    assert (doc["total"], doc["not_indexed"]) == (0, 2)
    stats = cli.json("stats", "--json")
    index = stats["index"]
    assert isinstance(index, dict)
    assert index["queued"] == 2
    assert isinstance(index["lag_seconds"], int)
    assert index["lag_seconds"] >= 0
    assert "not indexed:   2 messages, the oldest queued" in cli.ok("stats").stdout.decode()
    assert "indexed 2 messages" in cli.ok("index").stderr.decode()
    doc = cli.json("search", "--json", "zqxword")
    assert (doc["total"], doc["not_indexed"]) == (2, 0)
    assert "not indexed yet" not in cli.ok("search", "zqxword").stderr.decode()
    assert cli.json("stats", "--json")["index"] == {
        "queued": 0,
        "lag_seconds": 0,
        "extraction_failures": {},
    }


def test_show_and_stats_report_a_failed_extraction(cli: Cli) -> None:
    put(cli, mail(1, attachment=b"notes " * 100), limits=Limits(max_input=10), index=True)
    doc: Any = cli.json("show", "--json", "1")
    [att] = doc["attachments"]
    assert att["extraction"]["status"] == "too-big"
    assert "text not indexed: too-big" in cli.ok("show", "1").stdout.decode()
    stats: Any = cli.json("stats", "--json")
    assert stats["index"]["extraction_failures"] == {"too-big": 1}
    assert "1 too-big" in cli.ok("stats").stdout.decode()


def test_verify_index_reports_missing_and_stale_entries_and_reindex_repairs(cli: Cli) -> None:
    put(cli, mail(1), mail(2), index=True)
    assert cli.ok("verify", "--index").returncode == 0
    db = sqlite3.connect(cli.home / "catalog.sqlite")
    with db:
        db.execute("DELETE FROM fts_docsize WHERE id = 1")
        db.execute("INSERT INTO fts (rowid, subject) VALUES (77, 'ghost')")
    db.close()
    assert cli.ok("verify").returncode == 0  # without --index the index is not looked at
    result = cli("verify", "--index", "--json")
    assert result.returncode == 1
    problems = json.loads(result.stdout)["problems"]
    assert any("message 1" in str(p) and "neither indexed nor queued" in str(p) for p in problems)
    assert any("index entry 77" in str(p) for p in problems)
    result = cli.ok("reindex")
    assert "reindexed the whole index: 2 messages indexed" in result.stderr.decode()
    assert cli.ok("verify", "--index").returncode == 0
    assert cli.json("search", "--json", "zqxword")["total"] == 2


def test_reindex_a_query_rebuilds_only_its_matches(cli: Cli) -> None:
    put(cli, mail(1, "zqxone"), mail(2, "zqxtwo"), index=True)
    result = cli.ok("reindex", "zqxone")
    assert "reindexed 1 messages: 1 messages indexed" in result.stderr.decode()
    assert cli.json("search", "--json", "zqxone")["total"] == 1
    assert cli.json("search", "--json", "zqxtwo")["total"] == 1
    assert cli.ok("verify", "--index").returncode == 0
    actions = [e.action for e in _audit(cli) if e.action.startswith("index.rebuild")]
    assert actions == ["index.rebuild", "index.rebuild.intent"]  # newest first


def test_reindex_refuses_a_bad_query_in_one_line(cli: Cli) -> None:
    put(cli, mail(1))
    result = cli("reindex", "before:2024-99-99")
    assert result.returncode != 0
    assert len(result.stderr.decode().strip().splitlines()) == 1


def test_import_indexes_what_it_imported(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "one.eml"
    path.write_bytes(mail(1))
    cli.ok("import", path)
    assert cli.json("search", "--json", "zqxword")["total"] == 1


def _audit(cli: Cli) -> list[AuditEntry]:
    with open_accounts(home_url(cli.home)) as accounts:
        return list(accounts.audit(limit=100)[1])
