"""What the catalog and the blob pack share about SQLite: durable connections, transactions."""

from __future__ import annotations

import contextlib
import sqlite3
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path

# the monotonic time by which the current thread's writes must give up waiting for a lock
_deadline: ContextVar[float | None] = ContextVar("sqlite_write_deadline", default=None)


def connect_durable(path: Path, *, timeout: float, first: Sequence[str] = ()) -> sqlite3.Connection:
    """A connection in WAL mode whose commits are on disk when they return (the promise to
    Postfix needs that), usable from any thread under the caller's own locking. ``first``:
    statements that must run before the switch to WAL (``auto_vacuum`` on a new file)."""
    new = not path.exists() or path.stat().st_size == 0
    conn = sqlite3.connect(path, timeout=timeout, check_same_thread=False, isolation_level=None)
    # only on a new file: on an existing one they change nothing, yet they need a write
    # lock, which fails at once (no busy wait) while another process holds one
    for statement in first if new else ():
        conn.execute(statement)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return conn


@contextlib.contextmanager
def deadline(at: float | None) -> Iterator[None]:
    """Within this block, a ``write_transaction`` on this thread waits for another process's
    lock only until ``at`` (``time.monotonic()``), not for the connection's whole busy
    timeout: a message's answer is due by then, whoever holds the database."""
    token = _deadline.set(at)
    try:
        yield
    finally:
        _deadline.reset(token)


def is_busy(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is SQLite's "database is locked"."""
    while exc is not None:
        if isinstance(exc, sqlite3.OperationalError):
            code = getattr(exc, "sqlite_errorcode", None)
            if code is not None:
                return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            return "database is locked" in str(exc)
        exc = exc.__cause__ or exc.__context__
    return False


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception. Under ``deadline``,
    waits for another process's lock no longer than the time left (once it is gone, the
    write is still tried once: it succeeds when nobody holds the lock)."""
    at = _deadline.get()
    normal: int | None = None
    if at is not None:
        normal = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
        left = max(0, min(normal, int((at - time.monotonic()) * 1000)))
        conn.execute(f"PRAGMA busy_timeout={left}")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # SQLite has already rolled back after some errors (SQLITE_FULL): a second
            # ROLLBACK would fail and hide the error that matters
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        if normal is not None:
            conn.execute(f"PRAGMA busy_timeout={normal}")


def connect_readonly(path: Path, *, timeout: float = 30) -> sqlite3.Connection:
    """A connection that never writes, for commands that only read (``search``, ``stats``,
    ``verify`` ...), so they work on a full disk and create nothing.

    A WAL database needs its ``-shm`` index, which a read-only open may have to create, and
    that fails on a full disk. When it does and the log holds nothing (``-wal`` missing or
    empty: every commit is in the main file), the file is opened ``immutable``, which reads it
    without the index or any lock. Raises ``FileNotFoundError`` when there is no file."""
    if not path.exists():
        raise FileNotFoundError(str(path))
    base = "file:" + urllib.request.pathname2url(str(path.resolve()))
    conn = sqlite3.connect(
        base + "?mode=ro", uri=True, timeout=timeout, check_same_thread=False, isolation_level=None
    )
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise
    conn = sqlite3.connect(
        base + "?mode=ro&immutable=1",
        uri=True,
        timeout=timeout,
        check_same_thread=False,
        isolation_level=None,
    )
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return conn
