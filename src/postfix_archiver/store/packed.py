"""Small blobs packed into one SQLite file beside the blob tree.

A file per blob costs an inode, a directory entry and two fsyncs for every message; on a
busy filesystem, creating the inode is the dearest part (the allocator scans past the queue
files Postfix keeps deleting), and every file the archive creates also slows Postfix's own.
Packed, a whole batch of small blobs is one SQLite transaction with one fsync of its log.
Large blobs (big attachments) still get files of their own: the pack would copy them twice
(log, then checkpoint) for no gain.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..sqlite_db import connect_durable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    key TEXT PRIMARY KEY,
    data BLOB NOT NULL
)
"""


class PackedBlobs:
    """``key -> bytes`` in SQLite (WAL, ``synchronous=FULL``): durable when ``put_many``
    returns, atomic per call, readable from any thread and process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()  # one writer per process; SQLite locks across them
        self._conns_lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        conn = self._conn()
        try:
            # must precede the table: lets retention give space back without a full VACUUM
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise _error("prepare", path, exc) from exc

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                # durable commits: the blobs must be on disk before their rows commit
                conn = connect_durable(self.path, timeout=60)
            except sqlite3.Error as exc:
                raise _error("open", self.path, exc) from exc
            self._local.conn = conn
            with self._conns_lock:
                self._all.append(conn)
        return conn

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        if not items:
            return
        with self._lock:
            conn = self._conn()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    # REPLACE, not IGNORE: putting a key again repairs a damaged copy
                    conn.executemany(
                        "INSERT OR REPLACE INTO blobs (key, data) VALUES (?, ?)", items
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    # SQLite has already rolled back after some errors (SQLITE_FULL)
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _error("write", self.path, exc) from exc

    def get(self, key: str) -> bytes | None:
        row = self._one("SELECT data FROM blobs WHERE key = ?", key)
        return None if row is None else bytes(row[0])

    def size(self, key: str) -> int | None:
        row = self._one("SELECT length(data) FROM blobs WHERE key = ?", key)
        return None if row is None else int(row[0])

    def delete(self, key: str) -> bool:
        with self._lock:
            try:
                cur = self._conn().execute("DELETE FROM blobs WHERE key = ?", (key,))
            except sqlite3.Error as exc:
                raise _error("delete from", self.path, exc) from exc
            return cur.rowcount > 0

    def keys(self, prefix: str) -> Iterator[str]:
        # a range on the primary key, not LIKE: '_' and '%' in a prefix stay literal
        sql, args = "SELECT key FROM blobs ORDER BY key", ()
        if prefix:
            sql = "SELECT key FROM blobs WHERE key >= ? AND key < ? ORDER BY key"
            args = (prefix, prefix + "\U0010ffff")  # type: ignore[assignment]
        try:
            rows = self._conn().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise _error("read", self.path, exc) from exc
        for (key,) in rows:
            yield key

    def _one(self, sql: str, key: str) -> tuple[Any, ...] | None:
        try:
            row: tuple[Any, ...] | None = self._conn().execute(sql, (key,)).fetchone()
        except sqlite3.Error as exc:
            raise _error("read", self.path, exc) from exc
        return row

    def close(self) -> None:
        with self._lock, self._conns_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


def _error(action: str, path: Path, exc: sqlite3.Error) -> StoreError:
    hint = ""
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL:
        hint = " (the disk is full: free space or move the store)"
    elif code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        hint = " (check the owner and permissions of the store directory)"
    return StoreError(f"cannot {action} blob pack {path}: {exc}{hint}")
