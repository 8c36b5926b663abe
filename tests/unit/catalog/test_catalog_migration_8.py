"""Migration 8 (SQLite's own file: ``only`` SQLite): the address tables in their key's
b-tree (WITHOUT ROWID), upgraded in place from a catalog of the version before, its rows
found as before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from postfix_archiver.catalog.sqlite import MIGRATIONS, SqliteCatalog
from postfix_archiver.search import parse_query
from postfix_archiver.sqlite_db import migrate


def version_7(path: Path) -> None:
    """A catalog as version 7 wrote it: two messages, their addresses and envelopes."""
    conn = sqlite3.connect(path)
    migrate(conn, MIGRATIONS[:7])
    with conn:
        for n in (1, 2):
            conn.execute(
                "INSERT INTO messages (id, sha256, size, stored_size, date, received, "
                "message_id, subject, from_text, to_text, cc_text, attachment_count, defects) "
                "VALUES (?, ?, 1, 1, ?, 0, ?, 's', '', '', '', 0, '[]')",
                (n, f"sha{n}", n, f"m{n}@x"),
            )
            conn.execute(
                "INSERT INTO envelopes (id, message, env_key, sender, received, source) "
                "VALUES (?, ?, ?, ?, '2024-01-01T00:00:00+00:00', 'smtp')",
                (n, n, f"k{n}", f"s{n}@example.com"),
            )
        conn.executemany(
            "INSERT INTO addresses (message, kind, address, name) VALUES (?, ?, ?, ?)",
            [
                (1, "from", "alice@example.com", "Alice Smith"),
                (1, "to", "bob@example.org", ""),
                (2, "from", "carol@example.com", "Carol"),
                (2, "rcpt", "bob@example.org", ""),
            ],
        )
        conn.executemany(
            "INSERT INTO envelope_recipients (envelope, position, address) VALUES (?, ?, ?)",
            [(1, 0, "bob@example.org"), (1, 1, "dave@example.org"), (2, 0, "bob@example.org")],
        )
    conn.close()


def ids(catalog: SqliteCatalog, query: str) -> list[int]:
    return sorted(r.id for r in catalog.search(parse_query(query), limit=10).results)


def test_a_version_7_catalog_upgrades_in_place_and_finds_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    version_7(path)
    catalog = SqliteCatalog(str(path))
    try:
        assert ids(catalog, "from:alice@example.com") == [1]
        assert ids(catalog, "from:smith") == [1]  # by name
        assert ids(catalog, "to:bob@example.org") == [1, 2]  # envelope recipients count
        assert ids(catalog, "from:*@example.com") == [1, 2]
        assert [e.envelope.recipients for e in catalog.envelopes(1)] == [
            ("bob@example.org", "dave@example.org")
        ]
    finally:
        catalog.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        tables = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        assert "WITHOUT ROWID" in tables["addresses"]
        assert "WITHOUT ROWID" in tables["envelope_recipients"]
        indexes = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name IN ('addresses', 'envelope_recipients')"
            )
        }
        # the key is the table: no second copy of it beside
        assert indexes == {"addresses_address"}
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # the key still keeps an address once per message and kind
        with conn:
            conn.execute(
                "INSERT OR IGNORE INTO addresses (message, kind, address, name) "
                "VALUES (1, 'from', 'alice@example.com', 'other')"
            )
        assert conn.execute("SELECT count(*) FROM addresses WHERE message = 1").fetchone() == (2,)
    finally:
        conn.close()
