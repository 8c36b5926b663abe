"""Migration 6: a catalog made before conversations were recorded gets the column, its
messages listed as not known yet (``unthreaded``) until ``set_threads`` records them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from postfix_archiver.catalog.sqlite import MIGRATIONS, SqliteCatalog
from postfix_archiver.sqlite_db import migrate


def test_migration_6_leaves_old_mail_to_the_backfill(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    conn = sqlite3.connect(path)
    migrate(conn, MIGRATIONS[:5])
    with conn:
        for n, mid in ((7, "root@x"), (8, "reply@x"), (9, "")):
            conn.execute(
                "INSERT INTO messages (id, sha256, size, stored_size, date, received, "
                "message_id, subject, from_text, to_text, cc_text, attachment_count, defects) "
                "VALUES (?, ?, 1, 1, ?, 0, ?, 's', '', '', '', 0, '[]')",
                (n, f"sha{n}", n, mid),
            )
    conn.close()
    catalog = SqliteCatalog(str(path))
    try:
        assert catalog.unthreaded(10) == [(7, "sha7"), (8, "sha8"), (9, "sha9")]
        assert catalog.conversation(7) == []
        # the reply names only its parent (In-Reply-To): it joins the parent's conversation
        catalog.set_threads([(7, "root@x", ""), (8, "other@x", "root@x"), (9, "", "")])
        assert catalog.unthreaded(10) == []
        assert [r.id for r in catalog.conversation(8)] == [7, 8]
        assert catalog.conversation(9) == []  # alone
        assert catalog.threads([7, 8, 9, 2**70, -1]) == {7: "root@x", 8: "root@x"}
        catalog.set_threads([(7, "changed@x", "")])  # recorded already: kept
        assert catalog.threads([7]) == {7: "root@x"}
    finally:
        catalog.close()
