"""The index is merged into one piece after a catch-up (``indexer.compact``): smaller, same
answers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.conftest import make_config

from postfix_archiver.archive import Archive, indexer
from postfix_archiver.envelope import Envelope
from postfix_archiver.errors import CatalogError

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
]


def _mail(n: int) -> bytes:
    body = " ".join(WORDS[(n * 7 + i) % len(WORDS)] + str(n % 50 + i) for i in range(40))
    return f"From: a{n}@example.com\nSubject: note {n} {WORDS[n % 13]}\n\n{body}\n".encode()


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    while True:
        byte = data[at]
        at += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, at


def _segments(home: Path) -> int:
    """How many pieces (segments) the index is in: from FTS5's structure record (row 10 of
    ``fts_data``: a 4-byte cookie, then varints: levels, segments, ...)."""
    conn = sqlite3.connect(home / "catalog.sqlite")
    try:
        (record,) = conn.execute("SELECT block FROM fts_data WHERE id = 10").fetchone()
    finally:
        conn.close()
    _, at = _varint(record, 4)
    return _varint(record, at)[0]


def _archive(home: Path, count: int) -> tuple[int, list[list[int]]]:
    """The index's pieces and the answers to a few queries after a catch-up: ``count``
    messages indexed batch by batch, as the background indexer takes them."""
    with Archive(make_config(home)) as archive:
        for n in range(count):
            archive.ingest(_mail(n), Envelope(sender="a@example.com", recipients=("b@x",)))
        archive.index_pending()
        answers = [
            [r.id for r in archive.search(q, limit=1000).results]
            for q in ("alpha3", "bravo", "note -kilo", '"charlie7 delta8"', "subject:echo")
        ]
    return _segments(home), answers


def test_a_catch_up_leaves_the_index_in_one_smaller_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexer, "COMPACT_AFTER", 10**9)
    loose, loose_answers = _archive(tmp_path / "loose", 600)
    monkeypatch.setattr(indexer, "COMPACT_AFTER", 100)
    monkeypatch.setattr(indexer, "COMPACT_PAGES", 8)  # many short steps
    merged, merged_answers = _archive(tmp_path / "merged", 600)
    assert merged_answers == loose_answers
    assert all(merged_answers)
    assert (merged, loose > 1) == (1, True), (merged, loose)


def test_compacting_waits_for_a_quarter_of_the_index(tmp_path: Path) -> None:
    with Archive(make_config(tmp_path / "home")) as archive:
        for n in range(30):
            archive.ingest(_mail(n), Envelope(sender="a@example.com", recipients=("b@x",)))
        archive.index_pending()
        assert archive.catalog.index_size() == 30
        archive.indexed_since_compact = indexer.COMPACT_AFTER - 1
        assert not indexer.compact(archive)  # too few since the last time
        archive.indexed_since_compact = indexer.COMPACT_AFTER
        assert indexer.compact(archive)
        assert archive.indexed_since_compact == 0
        assert not archive.catalog.compact_index(100)  # one piece: nothing left to merge


def test_compacting_gives_way_to_new_mail_and_to_a_locked_catalog(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    with Archive(make_config(home)) as archive:
        for n in range(40):
            archive.ingest(_mail(n), Envelope(sender="a@example.com", recipients=("b@x",)))
        archive.index_pending()
        archive.ingest(_mail(99), Envelope(sender="a@example.com", recipients=("b@x",)))
        archive.indexed_since_compact = indexer.COMPACT_AFTER
        assert not indexer.compact(archive)  # mail queued: indexed first
        assert archive.indexed_since_compact == indexer.COMPACT_AFTER  # still to do
        archive.index_pending()  # ... and the catch-up compacts after it
        assert archive.indexed_since_compact == 0
        assert _segments(home) == 1
        archive.indexed_since_compact = indexer.COMPACT_AFTER

        def locked(pages: int) -> bool:  # a backup holding the catalog for longer than 30 s
            raise CatalogError("catalog is locked by another process")

        monkeypatch.setattr(archive.catalog, "compact_index", locked)
        assert not indexer.compact(archive)  # an extra: logged, not raised
        assert "index not compacted now" in caplog.text


def test_an_import_that_indexed_as_it_committed_is_compacted_at_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexer, "COMPACT_AFTER", 100)
    home = tmp_path / "home"
    with Archive(make_config(home)) as archive:
        items = [
            (_mail(n), Envelope(sender="a@example.com", recipients=("b@x",))) for n in range(600)
        ]
        assert sum(1 for _ in archive.ingest_many(items, window=8)) == 600
        assert archive.catalog.index_status().queued == 0  # indexed with the import
        assert _segments(home) > 1
        assert archive.index_pending() == 0  # as `import` ends
        assert _segments(home) == 1
        assert archive.search("alpha3").total > 0
