"""What the catalog and the blob pack share about SQLite: durable connections, transactions."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path


def connect_durable(path: Path, *, timeout: float, first: Sequence[str] = ()) -> sqlite3.Connection:
    """A connection in WAL mode whose commits are on disk when they return (the promise to
    Postfix needs that), usable from any thread under the caller's own locking. ``first``:
    statements that must run before the switch to WAL (``auto_vacuum`` on a new file)."""
    conn = sqlite3.connect(path, timeout=timeout, check_same_thread=False, isolation_level=None)
    for statement in first:
        conn.execute(statement)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return conn


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # SQLite has already rolled back after some errors (SQLITE_FULL): a second ROLLBACK
        # would fail and hide the error that matters
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
