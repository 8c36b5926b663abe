"""Chain events are computed outside the catalog, in the format archives were written with."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from tests.catalog_helpers import make_arrival

from postfix_archiver import chain
from postfix_archiver.archive.events import canonical_event, event_hash, seal
from postfix_archiver.catalog import ChainEvent
from postfix_archiver.catalog.sqlite import MIGRATIONS, SqliteCatalog
from postfix_archiver.envelope import Envelope


def test_the_hash_is_the_one_archives_were_written_with() -> None:
    envelope = Envelope(
        "alice@example.com",
        ("bob@example.org", "jörg@example.de"),
        queue_id="4XyZ",
        received=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    )
    old = chain.event_hash("a" * 64, 7, "b" * 64, 1234, envelope.canonical())
    assert event_hash("a" * 64, 7, "b" * 64, 1234, envelope) == old
    assert canonical_event("a" * 64, 7, "b" * 64, 1234, envelope).isascii()


def test_seal_links_to_the_last_event() -> None:
    arrival = make_arrival(1)
    first = seal(None, arrival)
    assert (first.seq, first.prev_hash) == (1, chain.GENESIS)
    second = seal(first, make_arrival(2))
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert seal(ChainEvent(first.seq, first.prev_hash, first.hash), arrival) != first


def test_a_catalog_of_the_first_schema_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.execute("INSERT INTO messages VALUES (1, 'x', 1, 1, 0, 0, '', '', '', '', '', 0, '[]')")
    conn.execute(
        "INSERT INTO envelopes VALUES (1, 1, 'k', 'a@example.com', NULL, NULL, NULL, NULL, "
        "'2024-05-01T12:00:00+00:00', 'smtp')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    catalog = SqliteCatalog(str(path))
    try:
        [row] = catalog.envelopes(1)
        assert (row.retention, row.tags) == (None, ())
        [added] = catalog.add_batch([make_arrival(5)], seal)
        assert added.event_seq == 1
    finally:
        catalog.close()


def test_a_read_only_open_upgrades_an_older_catalog_once(tmp_path: Path) -> None:
    """After an upgrade of the archiver, `search` on the old archive works at once."""
    path = tmp_path / "catalog.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    catalog = SqliteCatalog(str(path), readonly=True)
    try:
        assert catalog.readonly
        assert catalog.envelopes(1) == []
    finally:
        catalog.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()
