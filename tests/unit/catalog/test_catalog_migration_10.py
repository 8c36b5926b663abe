"""Migration 10 (SQLite's own file: ``only`` SQLite): messages' SHA-256 and envelopes' keys
kept as their 32 bytes, upgraded in place from an archive the version before wrote (hex
text), every message read, found and verified as before, the chain's head unchanged."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.catalog_helpers import only

from postfix_archiver.archive import Archive, verify
from postfix_archiver.archive.removal import ERASE, remove
from postfix_archiver.catalog import sqlite as sqlite_catalog
from postfix_archiver.catalog.sqlite import MIGRATIONS, SqliteCatalog
from postfix_archiver.config import Config
from postfix_archiver.envelope import Envelope

T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
HASHES = (("messages", "sha256"), ("envelopes", "env_key"))


def message(n: int, words: str) -> bytes:
    return (
        f"From: sender{n}@example.com\r\nTo: rcpt{n}@example.com\r\n"
        f"Subject: report {n}\r\nMessage-ID: <m{n}@example.com>\r\n\r\n{words}\r\n"
    ).encode()


def envelope(n: int) -> Envelope:
    return Envelope(
        f"sender{n}@example.com", (f"rcpt{n}@example.com",), queue_id=f"Q{n}", received=T0
    )


@contextmanager
def version_9(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The catalog as version 9 made and wrote it: nine steps, every hash as its hex text
    (the statements are the same; only what goes into the hash columns differed)."""
    with monkeypatch.context() as m:
        m.setattr(sqlite_catalog, "MIGRATIONS", MIGRATIONS[:9])
        m.setattr(sqlite_catalog, "_hash_in", lambda value: value)
        yield


def column_types(db: Path) -> set[tuple[str, str, int]]:
    conn = sqlite3.connect(db)
    try:
        return {
            (f"{table}.{column}", *row)
            for table, column in HASHES
            for row in conn.execute(
                f"SELECT DISTINCT typeof({column}), length({column}) FROM {table}"
            )
        }
    finally:
        conn.close()


def ids(archive: Archive, query: str) -> list[int]:
    return sorted(r.id for r in archive.search(query).results)


@only("sqlite")
def test_a_version_9_archive_upgrades_in_place(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Path(config.archive.catalog_url.removeprefix("sqlite://"))
    raws = {n: message(n, f"quarterly figures number{n} attached") for n in (1, 2, 3)}
    with version_9(monkeypatch), Archive(config) as archive:
        got = {n: archive.ingest(raw, envelope(n)).id for n, raw in raws.items()}
        archive.ingest(raws[1], envelope(4))  # the same bytes again: a second arrival
        remove(archive, [archive.get(got[3])], why=ERASE, reason="request", who="dpo")
        archive.index_pending()
        before = verify(archive)
        assert before.ok, before.problems
    assert {t for _, t, _ in column_types(db)} == {"text"}

    with Archive(config) as archive:
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        conn.close()
        # every key in 32 bytes now, none left as text; the chain's hashes stay hex (what
        # an auditor compares with a signed checkpoint)
        assert {(t, n) for _, t, n in column_types(db)} == {("blob", 32)}
        conn = sqlite3.connect(db)
        kinds = conn.execute("SELECT DISTINCT typeof(prev_hash), typeof(hash) FROM events")
        assert kinds.fetchall() == [("text", "text")]
        conn.close()
        after = verify(archive)
        assert after.ok, after.problems
        assert (after.head, after.events, after.messages) == (
            before.head,
            before.events,
            before.messages,
        )
        for n in (1, 2):
            assert archive.raw(got[n]) == raws[n]
            assert archive.resolve(archive.get(got[n]).sha256) == got[n]
            assert ids(archive, f"number{n}") == [got[n]]
        assert ids(archive, '"quarterly figures"') == [got[1], got[2]]
        assert len(archive.catalog.envelopes(got[1])) == 2
        # an arrival seen before is still recognised by its envelope key (no new event) ...
        again = archive.ingest(raws[2], envelope(2))
        assert (again.id, again.new_envelope) == (got[2], False)
        # ... and new mail goes on the chain after the migrated head
        fresh = archive.ingest(message(5, "after the upgrade"), envelope(5))
        archive.index_pending()
        assert ids(archive, "upgrade") == [fresh.id]
        report = verify(archive)
        assert report.ok, report.problems
        assert report.events == after.events + 1
        [link] = [e for e in archive.catalog.chain() if e.seq == report.events]
        assert link.prev_hash == after.head
    assert {(t, n) for _, t, n in column_types(db)} == {("blob", 32)}


@pytest.mark.parametrize(
    "value",
    [
        "AB" * 32,  # upper case: bytes.fromhex would take it and give back "ab..."
        "ab" * 31 + " a",
        "g" * 64,
        "\u0661" * 64,  # ARABIC-INDIC DIGIT ONE: a digit, not a hex digit
        "ab" * 33,
        "",
        "ab" * 16,
    ],
)
def test_what_is_not_a_lowercase_sha256_reads_back_as_written(tmp_path: Path, value: str) -> None:
    """A value that would not come back the same from its bytes stays as it was: a
    hand-edited row still shows as edited (``verify`` compares the text), and a lookup of a
    hostile string finds nothing rather than another message."""
    catalog = SqliteCatalog(str(tmp_path / "catalog.sqlite"))
    try:
        assert catalog.find_sha(value) is None
        assert catalog.find_sha("ab" * 32) is None
    finally:
        catalog.close()
    assert sqlite_catalog._hash_in(value) == value
    assert sqlite_catalog._hash_out(sqlite_catalog._hash_in(value)) == value
    digest = "0f" * 32
    assert sqlite_catalog._hash_in(digest) == bytes.fromhex(digest)
    assert sqlite_catalog._hash_out(sqlite_catalog._hash_in(digest)) == digest
