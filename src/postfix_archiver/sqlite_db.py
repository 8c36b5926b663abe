"""What the SQLite backends (catalog, blob pack, accounts) share: durable and read-only
connections, a connection per thread, write transactions, versioned schemas."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import urllib.request
import weakref
from collections.abc import Callable, Iterator, Sequence
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
    until = time.monotonic() + timeout
    while True:
        try:
            for statement in first if new else ():
                conn.execute(statement)
            conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            # processes switching a new file to WAL at once: SQLite refuses one of them at
            # once rather than risk a deadlock (no busy wait); the other's switch is done soon
            if not is_busy(exc) or time.monotonic() > until:
                conn.close()
                raise
            time.sleep(0.01)
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


# how long a removal waits, in all, for readers to leave a log before it reports the log as
# not cut yet: a reader's snapshot is normally one query or one page of the web UI
TRUNCATE_WAITS = (0.1, 0.3, 1.0, 2.0)


def truncate_wal(conn: sqlite3.Connection, waits: Sequence[float] = ()) -> bool:
    """Write the log back into the database file and cut it to nothing; True when done.
    A reader in another process still on the log (a long ``web`` request, a backup, a
    ``sqlite3`` shell) keeps it (result row ``(1, ...)``, or a "locked" error): tried again
    after each of ``waits`` seconds. Each try waits for no lock itself, so a removal is not
    stalled for the connection's whole busy timeout per batch."""
    normal = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
    conn.execute("PRAGMA busy_timeout=0")
    try:
        for wait in (0.0, *waits):
            time.sleep(wait)
            try:
                busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                continue
            if busy == 0:
                return True
        return False
    finally:
        conn.execute(f"PRAGMA busy_timeout={normal}")


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


class PerThread:
    """A connection for each thread that uses one, so readers never wait for one another or
    for the writer. A thread that ends gives its connection back (web worker threads come and
    go); ``close`` closes them all.

    Each connection has a lock, held while ``use`` lends it out and by ``close``: closing a
    connection another thread is using crashes the interpreter."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: set[_Entry] = set()

    def use(self, connect: Callable[[], sqlite3.Connection]) -> _Holder:
        """This thread's connection, as a context manager that lends it for the block's
        length; ``connect`` opens it on the thread's first use. (Given here, not kept: the
        owner's methods would keep the owner alive, and its connections open, until the next
        garbage collection.)"""
        holder: _Holder | None = getattr(self._local, "holder", None)
        if holder is None:
            holder = _Holder(connect())
            entry = (holder.conn, holder.lock)
            with self._lock:
                self._all.add(entry)
            # weakly: the set and its lock only, so the owner can still be collected
            weakref.finalize(holder, _release, entry, self._all, self._lock)
            self._local.holder = holder
        return holder

    def __len__(self) -> int:
        """How many connections are open."""
        with self._lock:
            return len(self._all)

    def close(self) -> None:
        """Closes every thread's connection, each once its query in flight is done; a thread
        that uses this again gets a new one."""
        with self._lock:
            for conn, lock in self._all:
                with lock:
                    conn.close()
            self._all.clear()
        self._local = threading.local()


class _Holder:
    """A thread's connection and its lock; when the thread ends, so does this, and the
    connection is closed (``_release``). A context manager of its own, not a generator: it is
    entered for every query, and a generator costs many times a lock."""

    __slots__ = ("__weakref__", "conn", "lock")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


_Entry = tuple[sqlite3.Connection, threading.Lock]


def _release(entry: _Entry, all_: set[_Entry], lock: threading.Lock) -> None:
    with lock:
        if entry not in all_:
            return  # closed already
        all_.discard(entry)
    conn, conn_lock = entry
    with conn_lock:
        conn.close()


class SchemaTooNew(Exception):
    """The file's schema is newer than this version knows: written by a later release."""

    def __init__(self, version: int, known: int) -> None:
        super().__init__(f"schema version {version}, newer than {known}")
        self.version = version
        self.known = known


def schema_version(conn: sqlite3.Connection, migrations: Sequence[str]) -> int:
    """The schema version of ``conn``'s file (``PRAGMA user_version``: how many of
    ``migrations`` it has had); raises ``SchemaTooNew`` past the last of them."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(migrations):
        raise SchemaTooNew(version, len(migrations))
    return version


def migrate(conn: sqlite3.Connection, migrations: Sequence[str]) -> None:
    """Brings the file up to the last of ``migrations`` (each a script of statements, applied
    in order, each in a write transaction of its own with its new ``user_version``). Raises
    ``SchemaTooNew`` for a newer file and ``sqlite3.Error`` for a step that fails (that step is
    rolled back; the ones before it stay). Another process migrating the same file at once
    is waited for: its steps are not applied twice."""
    while schema_version(conn, migrations) < len(migrations):
        with write_transaction(conn):
            # read again under the write lock: the version read before it may be another
            # process's step ago (two processes creating a fresh archive at once)
            number = schema_version(conn, migrations)
            if number == len(migrations):
                break
            for statement in _statements(migrations[number]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")


def _statements(script: str) -> Iterator[str]:
    """The statements of ``script`` one by one, each whole: a ``;`` ends one only where
    SQLite agrees (not inside a trigger's body or a string)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                yield pending
            pending = ""
    if pending.strip(" \t\r\n;"):
        yield pending  # unfinished: SQLite's syntax error names it
