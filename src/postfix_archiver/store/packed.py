"""Small blobs packed into one SQLite file beside the blob tree.

A file per blob costs an inode, a directory entry and two fsyncs for every message; on a
busy filesystem, creating the inode is the dearest part (the allocator scans past the queue
files Postfix keeps deleting), and every file the archive creates also slows Postfix's own.
Packed, a whole batch of small blobs is one SQLite transaction with one fsync of its log.
Large blobs (big attachments) still get files of their own: the pack would copy them twice
(log, then checkpoint) for no gain.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..sqlite_db import (
    TRUNCATE_WAITS,
    PerThread,
    connect_durable,
    connect_readonly,
    is_busy,
    truncate_wal,
    write_transaction,
)

log = logging.getLogger("postfix_archiver.store")

# The page size of a new pack. A blob is a row, and a row smaller than a page yet larger than
# what is left of it starts a new page: with 4 kB pages a pack of mail (blobs of 1-3 kB) was
# 30% larger than the blobs it held, with 16 kB pages 22%, with 32 kB 18%
# (bench/catalog_size.py). Larger pages make a transaction of one blob (the pipe filter's)
# write more: 16 kB kept 0.77-0.91 of 4 kB's rate, 32 kB 0.47-0.79 (bench/pack_pages.py).
# A pack made before keeps its page size (changing it needs a VACUUM out of WAL mode).
PAGE_SIZE = 16384

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    key TEXT PRIMARY KEY,
    data BLOB NOT NULL
)
"""


class PackedBlobs:
    """``key -> bytes`` in SQLite (WAL, ``synchronous=FULL``): durable when ``put_many``
    returns, atomic per call, readable from any thread and process."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        # read-only: never writes or creates the file; a missing pack holds nothing
        self.readonly = readonly
        self._lock = threading.Lock()  # one writer per process; SQLite locks across them
        self._conns = PerThread()  # each thread reads (and the writer writes) on its own
        # read-only, once the file was seen: a pack is never removed, so it is not looked for
        # again before every read
        self._seen = False
        if readonly:
            return
        try:
            with self._use() as conn:
                conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise _error("prepare", path, exc) from exc

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            try:
                return connect_readonly(self.path)
            except sqlite3.Error as exc:
                raise _error("open", self.path, exc) from exc
        try:
            # durable commits: the blobs must be on disk before their rows commit;
            # auto_vacuum before WAL (it cannot change after): lets retention give space
            # back without a full VACUUM
            first = (f"PRAGMA page_size={PAGE_SIZE}", "PRAGMA auto_vacuum=INCREMENTAL")
            return connect_durable(self.path, timeout=60, first=first)
        except sqlite3.Error as exc:
            raise _error("open", self.path, exc) from exc

    def _use(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """This thread's connection, lent for a ``with`` block."""
        return self._conns.use(self._connect)

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        if not items:
            return
        with self._lock, self._use() as conn:
            try:
                with write_transaction(conn):
                    # REPLACE, not IGNORE: putting a key again repairs a damaged copy
                    conn.executemany("INSERT OR REPLACE INTO blobs VALUES (?, ?)", items)
            except sqlite3.Error as exc:
                raise _error("write", self.path, exc) from exc

    def get(self, key: str) -> bytes | None:
        row = self._one("SELECT data FROM blobs WHERE key = ?", key)
        return None if row is None else bytes(row[0])

    def size(self, key: str) -> int | None:
        row = self._one("SELECT length(data) FROM blobs WHERE key = ?", key)
        return None if row is None else int(row[0])

    def delete(self, key: str) -> bool:
        return self.delete_many([key]) > 0

    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete ``keys`` in one transaction, leaving nothing of them in the file: deleted
        cells and freed pages are zeroed (``secure_delete``), and the log that still holds
        their old pages is written back and cut. Returns how many were there."""
        if not keys or (self.readonly and not self.path.exists()):
            return 0
        with self._lock, self._use() as conn:
            try:
                conn.execute("PRAGMA secure_delete=ON")
                with write_transaction(conn):
                    count = sum(
                        conn.execute("DELETE FROM blobs WHERE key = ?", (key,)).rowcount
                        for key in keys
                    )
                cut = truncate_wal(conn)
            except sqlite3.Error as exc:
                raise _error("delete from", self.path, exc) from exc
            if not cut:
                # a reader in another process holds an old snapshot: ``truncate_logs``
                # (the end of every removal) tries again, and reports it if it still cannot
                log.warning("blob pack %s: WAL still in use, not truncated yet", self.path)
            return count

    def truncate_logs(self) -> list[str]:
        """Cut the log (which may still hold deleted blobs' old pages), waiting a few seconds
        for readers to leave it; the file's path if one still keeps it."""
        if self.readonly or not self.path.exists():
            return []
        with self._lock, self._use() as conn:
            try:
                if truncate_wal(conn, TRUNCATE_WAITS):
                    return []
            except sqlite3.Error as exc:
                log.warning("blob pack %s: WAL not truncated: %s", self.path, exc)
        return [str(self.path)]

    def keys(self, prefix: str) -> Iterator[str]:
        # a range on the primary key, not LIKE: '_' and '%' in a prefix stay literal
        sql, args = "SELECT key FROM blobs ORDER BY key", ()
        if prefix:
            sql = "SELECT key FROM blobs WHERE key >= ? AND key < ? ORDER BY key"
            args = (prefix, prefix + "\U0010ffff")  # type: ignore[assignment]
        try:
            with self._use() as conn:
                rows = conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise _error("read", self.path, exc) from exc
        for (key,) in rows:
            yield key

    def _one(self, sql: str, key: str) -> tuple[Any, ...] | None:
        if self.readonly and not self._exists():
            return None  # an archive whose blobs are all files (older than the pack)
        try:
            with self._use() as conn:
                row: tuple[Any, ...] | None = conn.execute(sql, (key,)).fetchone()
        except sqlite3.Error as exc:
            raise _error("read", self.path, exc) from exc
        return row

    def _exists(self) -> bool:
        if not self._seen:
            self._seen = self.path.exists()
        return self._seen

    def close(self) -> None:
        with self._lock:
            self._conns.close()  # waits for a query in flight on each connection


def _error(action: str, path: Path, exc: sqlite3.Error) -> StoreError:
    hint = ""
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL:
        hint = " (the disk is full: free space or move the store)"
    elif is_busy(exc):
        hint = " (another process holds a write transaction on it: a backup, a sqlite3 shell?)"
    elif code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        hint = " (check the owner and permissions of the store directory)"
    return StoreError(f"cannot {action} blob pack {path}: {exc}{hint}")
