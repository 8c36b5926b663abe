"""The default catalog: SQLite in WAL mode with an FTS5 full-text index. See ``Catalog``.

One connection writes (used only by the archive's committer); every reading thread gets its
own connection, so searches never wait for a commit.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from ..bigrams import query_form
from ..dates import EARLIEST, EARLIEST_TS, LATEST_TS, from_timestamp, to_timestamp
from ..envelope import Envelope
from ..errors import CatalogError
from ..message import normalize_message_id
from ..search import Field, Node, Text
from ..sqlite_db import (
    TRUNCATE_WAITS,
    PerThread,
    SchemaTooNew,
    connect_durable,
    connect_readonly,
    is_busy,
    migrate,
    schema_version,
    truncate_wal,
    write_transaction,
)
from .compile import Compiler, like_escape
from .records import (
    AddResult,
    AttachmentRow,
    ChainEvent,
    ChainLink,
    EnvelopeRow,
    ExtractRecord,
    HoldQueries,
    HoldRow,
    ImportOrigin,
    Indexed,
    IndexEntry,
    IndexStatus,
    MessageRow,
    NewArrival,
    Removal,
    Removed,
    RemoveResult,
    Sealer,
    SearchPage,
    Stats,
    TombstoneSealer,
)
from .tables import Table, TableRows, resume_sql, select_sql, upsert_sql

# what a removal leaves to delete from the store: ("message" | "part" | "text", SHA-256)
BlobRef = tuple[str, str]

# The full-text table is contentless (content = ''): it keeps the token index only. The text
# itself is in the blobs; keeping a copy here would make the catalog as large as the mail.
MIGRATIONS: list[str] = [
    # 1: the initial schema
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        stored_size INTEGER NOT NULL,
        date INTEGER NOT NULL,
        received INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        from_text TEXT NOT NULL,
        to_text TEXT NOT NULL,
        cc_text TEXT NOT NULL,
        attachment_count INTEGER NOT NULL,
        defects TEXT NOT NULL
    );
    CREATE INDEX messages_date ON messages(date DESC, id DESC);
    CREATE INDEX messages_message_id ON messages(message_id);
    CREATE INDEX messages_size ON messages(size);
    CREATE TABLE addresses (
        message INTEGER NOT NULL REFERENCES messages(id),
        kind TEXT NOT NULL,
        address TEXT NOT NULL,
        name TEXT NOT NULL,
        UNIQUE (message, kind, address)
    );
    CREATE INDEX addresses_address ON addresses(address, kind);
    CREATE TABLE envelopes (
        id INTEGER PRIMARY KEY,
        message INTEGER NOT NULL REFERENCES messages(id),
        env_key TEXT NOT NULL,
        sender TEXT NOT NULL,
        queue_id TEXT,
        client_address TEXT,
        client_name TEXT,
        helo TEXT,
        received TEXT NOT NULL,
        source TEXT NOT NULL,
        UNIQUE (message, env_key)
    );
    CREATE TABLE envelope_recipients (
        envelope INTEGER NOT NULL REFERENCES envelopes(id),
        position INTEGER NOT NULL,
        address TEXT NOT NULL,
        PRIMARY KEY (envelope, position)
    );
    CREATE TABLE attachments (
        message INTEGER NOT NULL REFERENCES messages(id),
        position INTEGER NOT NULL,
        filename TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (message, position)
    );
    CREATE INDEX attachments_filename ON attachments(filename);
    CREATE TABLE parts (
        sha256 TEXT PRIMARY KEY,
        stored_size INTEGER NOT NULL
    );
    CREATE TABLE message_parts (
        message INTEGER NOT NULL REFERENCES messages(id),
        sha256 TEXT NOT NULL REFERENCES parts(sha256),
        PRIMARY KEY (message, sha256)
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        message INTEGER NOT NULL,
        envelope INTEGER NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE VIRTUAL TABLE fts USING fts5(
        subject, body, names, addrs, content = '',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    """,
    # 2: what the deciding rules said of each arrival (per envelope, as rules are per
    # recipient and one message can arrive again under other rules)
    """
    ALTER TABLE envelopes ADD COLUMN retention TEXT;
    ALTER TABLE envelopes ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'
    """,
    # 3: retention dates and legal holds. Messages archived before keep NULL (forever): an
    # upgrade must never make mail deletable by surprise. A hold's messages are recorded when
    # the hold is placed and as matching mail arrives, so a hold covers what it covered even
    # if the query language changes meaning later.
    """
    ALTER TABLE messages ADD COLUMN retain_until INTEGER;
    CREATE INDEX messages_retain_until ON messages(retain_until);
    CREATE TABLE holds (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        query TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        released_by TEXT,
        released_at INTEGER
    );
    CREATE TABLE message_holds (
        hold INTEGER NOT NULL REFERENCES holds(id),
        message INTEGER NOT NULL REFERENCES messages(id),
        PRIMARY KEY (hold, message)
    );
    CREATE INDEX message_holds_message ON message_holds(message)
    """,
    # 4: removal (purge, erasure). How each message was indexed (a contentless index can
    # forget an entry only given its exact values); tombstone events keep what their hash
    # covers; the blobs a removal left to delete, so a crash before they go is finished by
    # the next run. The events indexes find a message's arrivals and keep ids from being
    # reused (a removed message's events still name it).
    """
    ALTER TABLE messages ADD COLUMN indexed_with TEXT;
    ALTER TABLE events ADD COLUMN tombstone TEXT;
    CREATE INDEX events_message ON events(message);
    CREATE INDEX events_envelope ON events(envelope);
    CREATE TABLE removed_blobs (
        kind TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (kind, sha256)
    );
    CREATE TABLE deleted_blobs (
        seq INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        sha256 TEXT NOT NULL
    );
    CREATE INDEX deleted_blobs_sha256 ON deleted_blobs(sha256)
    """,
    # 5: indexing after answering. Ingest queues a message (``index_queue``, durable: a
    # restart resumes) and the background indexer makes its entry, now with the text
    # extracted from its attachments (a new column, so the table is made anew); the
    # extraction cache's bookkeeping by attachment SHA-256 (the text is a ``t/`` blob).
    # Every message archived before is queued: the archive is indexed again in the
    # background, and searches say their results may be incomplete meanwhile.
    """
    CREATE TABLE index_queue (
        message INTEGER PRIMARY KEY,
        queued_at INTEGER NOT NULL
    );
    CREATE INDEX index_queue_age ON index_queue(queued_at, message);
    CREATE TABLE extracts (
        sha256 TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        status TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX attachments_sha256 ON attachments(sha256);
    DROP TABLE fts;
    CREATE VIRTUAL TABLE fts USING fts5(
        subject, body, names, addrs, attachments, content = '',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    UPDATE messages SET indexed_with = NULL;
    INSERT INTO index_queue (message, queued_at)
        SELECT id, CAST(strftime('%s', 'now') AS INTEGER) FROM messages
    """,
    # 6: conversations (``conversation.thread_key``): each message's root Message-ID, "" for
    # a message alone. Messages archived before have NULL (not known yet): the indexer
    # fills it in from their headers when it has nothing else to do (``unthreaded``).
    """
    ALTER TABLE messages ADD COLUMN thread TEXT;
    CREATE INDEX messages_thread ON messages(thread, date, id)
    """,
    # 7: where imported mail came from. An import's envelope is what the file recorded
    # (often nothing: no sender, no recipients); the import run (what was imported, when)
    # and each arrival's file or mbox position are recorded beside it, not in the envelope
    # (whose key makes an import run twice record it once, and which the chain covers).
    """
    CREATE TABLE imports (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        started INTEGER NOT NULL,
        finished INTEGER
    );
    CREATE TABLE envelope_imports (
        envelope INTEGER PRIMARY KEY,
        import INTEGER NOT NULL REFERENCES imports(id),
        origin TEXT NOT NULL
    )
    """,
    # 8: size. The address tables keep their rows in their key's b-tree (WITHOUT ROWID):
    # a rowid table beside a UNIQUE index held every address twice (a tenth of the raw
    # mail's size in the catalog, measured by bench/catalog_size.py). Same columns, same
    # keys, so every query reads them as before.
    """
    CREATE TABLE addresses_v8 (
        message INTEGER NOT NULL REFERENCES messages(id),
        kind TEXT NOT NULL,
        address TEXT NOT NULL,
        name TEXT NOT NULL,
        PRIMARY KEY (message, kind, address)
    ) WITHOUT ROWID;
    INSERT INTO addresses_v8 (message, kind, address, name)
        SELECT message, kind, address, name FROM addresses;
    DROP TABLE addresses;
    ALTER TABLE addresses_v8 RENAME TO addresses;
    CREATE INDEX addresses_address ON addresses(address, kind);
    CREATE TABLE envelope_recipients_v8 (
        envelope INTEGER NOT NULL REFERENCES envelopes(id),
        position INTEGER NOT NULL,
        address TEXT NOT NULL,
        PRIMARY KEY (envelope, position)
    ) WITHOUT ROWID;
    INSERT INTO envelope_recipients_v8 (envelope, position, address)
        SELECT envelope, position, address FROM envelope_recipients;
    DROP TABLE envelope_recipients;
    ALTER TABLE envelope_recipients_v8 RENAME TO envelope_recipients
    """,
    # 9: where a resumable import stopped (the IMAP importer: per account and folder,
    # "UIDVALIDITY:UID" of the last message committed), so a re-run fetches only new mail
    """
    CREATE TABLE import_cursors (
        source TEXT PRIMARY KEY,
        cursor TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    # 10: size. A message's SHA-256 and an envelope's key are kept as their 32 bytes, not
    # 64 hex digits: stored in the row and again in its UNIQUE index, the digits were 0.025
    # of the raw mail's size (bench/catalog_size.py). Changed in place: a BLOB stays a BLOB
    # in a column declared TEXT, so no table is made anew (``envelopes`` is referenced, and
    # foreign keys are on). Only what reads back exactly is converted (``_hash_in``), and
    # all is read back as the same hex (``_hash_out``): the chain hashes the same text,
    # ``verify`` checks what it did. The chain's own hashes (``events``) stay hex: they are
    # what an auditor reads and compares with a signed checkpoint, in any SQLite shell.
    """
    UPDATE messages SET sha256 = hash_in(sha256);
    UPDATE envelopes SET env_key = hash_in(env_key)
    """,
]

# Columns holding a SHA-256 as its bytes (migration 10), per table: a copy to or from
# another backend (``snapshot``, ``load_rows``) carries them as hex, as that backend keeps them.
_HASH_COLUMNS: dict[str, tuple[str, ...]] = {
    "messages": ("sha256",),
    "envelopes": ("env_key",),
}
_SqlValue = str | bytes | int | float | None
_HEX64 = re.compile(r"[0-9a-f]{64}")  # lowercase ASCII: what hexdigest() gives


def _hash_in(value: _SqlValue) -> _SqlValue:
    """A SHA-256 as the catalog keeps it: 64 lowercase hex digits as their 32 bytes; any
    other value (a hand-edited or damaged row, a hostile lookup) as it is, so that what is
    read back is exactly what was written and a mismatch still shows."""
    if isinstance(value, str) and len(value) == 64 and _HEX64.fullmatch(value):
        return bytes.fromhex(value)
    return value


def _hash_out(value: object) -> str:
    """The hex text of a SHA-256 column, stored as bytes (since migration 10) or text."""
    return value.hex() if isinstance(value, bytes) else str(value)


log = logging.getLogger("postfix_archiver.catalog")

# A removed message's id (and its envelopes' ids) stay named by its chain events: a new row
# takes the next id after every one ever used, never a freed one (SQLite would reuse the
# highest), so "message 12" in a tombstone, a log or an audit entry means one message only.
_NEXT_MESSAGE = (
    "(SELECT max(coalesce((SELECT max(id) FROM messages), 0), "
    "coalesce((SELECT max(message) FROM events), 0)) + 1)"
)
_NEXT_ENVELOPE = (
    "(SELECT max(coalesce((SELECT max(id) FROM envelopes), 0), "
    "coalesce((SELECT max(envelope) FROM events), 0)) + 1)"
)
_ACTIVE_HOLD = (
    "SELECT 1 FROM message_holds mh JOIN holds h ON h.id = mh.hold "
    "WHERE mh.message = ? AND h.released_at IS NULL LIMIT 1"
)
_PART_USED = "SELECT 1 FROM message_parts WHERE sha256 = ? LIMIT 1"
_ATTACHMENT_USED = "SELECT 1 FROM attachments WHERE sha256 = ? LIMIT 1"
# a blob whose deletion is recorded (``release_blobs`` step 1) but not yet done: still pending
_IN_FLIGHT = (
    "SELECT 1 FROM removed_blobs r WHERE ((r.kind = 'message' AND r.sha256 = ?) "
    "OR (r.kind = 'part' AND r.sha256 IN ({marks}))) AND EXISTS (SELECT 1 FROM deleted_blobs d "
    "WHERE d.kind = r.kind AND d.sha256 = r.sha256) LIMIT 1"
)

_MESSAGE_COLUMNS = (
    "m.id, m.sha256, m.size, m.stored_size, m.date, m.received, m.subject, "
    "m.message_id, m.from_text, m.to_text, m.cc_text, m.attachment_count, "
    "m.defects, m.retain_until"
)
# the date orders a page can be found for by walking ``messages_date`` (see ``_newest_first``)
_DATE_DIRECTION = {"-date": "DESC", "date": "ASC"}
# how many times more messages than the matches' share predicts that walk reads before it
# gives up (matches bunched in time: a word of 2024 looked for newest first in 2026)
DATE_WALK_MARGIN = 4
# how many times longer a full-text lookup for one message takes than that message's place
# in the list of all matches (``SqliteCatalog._newest_first``): 9-16 us against 0.3 us on a
# merged index of 100,000 messages, about 100 us where it is in 13 pieces (the indexer
# merges them once a quarter more was indexed): between the two
LOOKUP_COST = 100
# at most this many matches are listed by id (one pass gives the total and the page)
FEW_MATCHES = 2000
# how many messages the walk along the date index passes over in the time sorting one match
# by date takes, for a query of the full-text index alone: the walk checks each message's id
# in the list of matches without reading its row (0.3 us), the sort reads every match's row
# (5.4 us; 209,224 messages, a word in 1,355). Other conditions read the row of each message
# walked over, as the sort does: 1 for those
SORT_COST = 16
# one entry for each of search.ORDERS (the CLI, the API and the web pages offer those)
_ORDER_SQL: dict[str, str] = {
    "-date": "m.date DESC, m.id DESC",
    "date": "m.date ASC, m.id ASC",
    "-size": "m.size DESC, m.id DESC",
    "size": "m.size ASC, m.id ASC",
    "subject": "m.subject COLLATE NOCASE ASC, m.id ASC",
    "-subject": "m.subject COLLATE NOCASE DESC, m.id DESC",
    "from": "m.from_text COLLATE NOCASE ASC, m.id ASC",
    "-from": "m.from_text COLLATE NOCASE DESC, m.id DESC",
}


def fts_string(value: str) -> str:
    """An FTS5 string literal: the value's tokens, matched in order, never as syntax."""
    # SQLite reads the MATCH text as a C string: a NUL would end it inside the quotes
    # ("unterminated string"); it is no token character, so it separates like a space
    return '"' + value.replace("\x00", " ").replace('"', '""') + '"'


# compile.FULLTEXT_FIELDS as FTS5 column filters
_FTS_COLUMNS = {"subject": "{subject}", "attachment": "{names attachments}"}


def fts_term(node: Text | Field) -> str:
    value = node.value
    prefix = not node.phrase and value.endswith("*") and len(value.rstrip("*")) > 0
    # as the index holds it: CJK runs in pairs (Latin text comes back unchanged)
    form = query_form(value.rstrip("*") if prefix else value)
    term = fts_string(form.text) + ("*" if prefix or form.prefix else "")
    if isinstance(node, Field):
        return _FTS_COLUMNS[node.name] + " : " + term
    return term


class SqliteDialect:
    param = "?"
    like = "LIKE"

    def fulltext(
        self,
        terms: Sequence[Text | Field],
        params: list[object],
        *,
        correlated: bool = False,
        excluded: Sequence[Text | Field] = (),
    ) -> str:
        match = " AND ".join(fts_term(t) for t in terms)
        if excluded:
            # one NOT of their OR: a chain of NOTs nests a level per term, and SQLite from
            # 3.44 refuses an expression 256 levels deep (a query may hold 500 terms)
            match = f"({match}) NOT ({' OR '.join(fts_term(t) for t in excluded)})"
        params.append(match)
        if correlated:
            # FTS5 takes the rowid with the MATCH: it seeks each term's list to this message
            return "EXISTS (SELECT 1 FROM fts WHERE fts MATCH ? AND rowid = m.id)"
        return "m.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)"


def _ts(value: datetime) -> int:
    return to_timestamp(value)


def _dt(value: int) -> datetime:
    # clamped: a row written before dates were clamped must not break every reader
    return from_timestamp(value)


def _iso(value: object) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:  # out of datetime's range: only a damaged or hand-edited row
        return EARLIEST


class _NeedsUpgrade(Exception):
    """A read-only open found an older schema."""


class SqliteCatalog:
    def __init__(self, path: str, *, readonly: bool = False) -> None:
        self.path = Path(path)
        # read-only: for commands that only read; opens nothing for writing, creates nothing
        self.readonly = readonly
        self.url = f"sqlite://{self.path}"
        self._write_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._dialect = SqliteDialect()
        self._compiler = Compiler(self._dialect)
        self._readers = PerThread()
        if readonly:
            try:
                with self._readers.use(self._connect_reader) as conn:
                    self._check_version(conn)
                return
            except _NeedsUpgrade:
                pass
            # an archive from an older version: upgraded once (a write, but of a file that
            # exists); where even that fails (a full disk), the error says what to do
            self.readonly = False
            try:
                self._migrate()
            except CatalogError as exc:
                raise CatalogError(
                    f"{exc}; the catalog needs upgrading to this version, which needs a "
                    "writable catalog (free space, or run `postfix-archiver serve` once)"
                ) from None
            finally:
                self.close()
                self.readonly = True
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(
                f"cannot create catalog directory {self.path.parent}: {exc.strerror}"
            ) from exc
        self._migrate()

    # -- connections -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            try:
                return connect_readonly(self.path)
            except FileNotFoundError:
                raise CatalogError(
                    f"no archive at {self.path.parent}: nothing has been archived there yet "
                    "(give --config or set $POSTFIX_ARCHIVER_HOME to the archive's directory)"
                ) from None
            except sqlite3.Error as exc:
                raise CatalogError(f"cannot open catalog {self.path}: {exc}") from exc
        try:
            conn = connect_durable(self.path, timeout=30)
            conn.execute("PRAGMA foreign_keys=ON")
            conn.create_function("hash_in", 1, _hash_in, deterministic=True)
        except sqlite3.Error as exc:
            raise CatalogError(f"cannot open catalog {self.path}: {exc}") from exc
        return conn

    def _connect_reader(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.execute("PRAGMA query_only=ON")
        return conn

    def _write_conn(self) -> sqlite3.Connection:
        if self.readonly:
            raise CatalogError(f"catalog {self.path} is open read-only")
        if self._writer is None:
            self._writer = self._connect()
            # the full-text index touches many pages per message: keep them in memory
            self._writer.execute("PRAGMA cache_size=-65536")
        return self._writer

    def _check_version(self, conn: sqlite3.Connection) -> int:
        try:
            version = schema_version(conn, MIGRATIONS)
        except sqlite3.Error as exc:
            raise CatalogError(f"cannot read catalog {self.path}: {exc}") from exc
        except SchemaTooNew as exc:
            raise self._too_new(exc) from None
        if self.readonly and version < len(MIGRATIONS):
            raise _NeedsUpgrade(version)
        return version

    def _too_new(self, exc: SchemaTooNew) -> CatalogError:
        return CatalogError(
            f"catalog {self.path} has schema version {exc.version}, newer than this "
            f"postfix-archiver knows ({exc.known}): upgrade postfix-archiver"
        )

    def _migrate(self) -> None:
        conn = self._write_conn()
        try:
            self._check_version(conn)  # a file it cannot read says so
            migrate(conn, MIGRATIONS)
        except sqlite3.Error as exc:
            raise CatalogError(f"cannot prepare catalog {self.path}: {exc}") from exc
        except SchemaTooNew as exc:
            raise self._too_new(exc) from None

    def close(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._readers.close()

    # -- writing -----------------------------------------------------------------------

    def add_batch(
        self, arrivals: Sequence[NewArrival], seal: Sealer, holds: HoldQueries | None = None
    ) -> list[AddResult]:
        with self._write_lock:
            conn = self._write_conn()
            try:
                with write_transaction(conn):
                    results = [self._add(conn, a, seal) for a in arrivals]
                    if holds is not None:
                        self._hold_new(conn, [r.id for r in results if r.new_envelope], holds)
            except sqlite3.Error as exc:
                if is_busy(exc):
                    raise CatalogError(
                        f"catalog {self.path} is locked by another process (a backup or a "
                        "sqlite3 shell in a write transaction?): mail is deferred until it ends"
                    ) from exc
                raise CatalogError(f"cannot write catalog {self.path}: {exc}") from exc
            return results

    def _add(self, conn: sqlite3.Connection, a: NewArrival, seal: Sealer) -> AddResult:
        sha = _hash_in(a.sha256)
        row = conn.execute("SELECT id FROM messages WHERE sha256 = ?", (sha,)).fetchone()
        new_message = row is None
        env = a.envelope
        if row is None:
            self._check_blobs(conn, a)
        message = self._insert_message(conn, a) if row is None else row[0]
        env_key = _hash_in(env.key)  # a canonical JSON and a SHA-256: made once
        exists = conn.execute(
            "SELECT id FROM envelopes WHERE message = ? AND env_key = ?",
            (message, env_key),
        ).fetchone()
        if exists is not None:
            return AddResult(message, new_message, False, None)
        if not new_message:  # a new arrival keeps the message at least as long as it says
            conn.execute(
                "UPDATE messages SET retain_until = CASE WHEN retain_until IS NULL "
                "OR ?1 IS NULL THEN NULL ELSE max(retain_until, ?1) END WHERE id = ?2",
                (None if a.retain_until is None else _ts(a.retain_until), message),
            )
        cur = conn.execute(
            "INSERT INTO envelopes (id, message, env_key, sender, queue_id, client_address, "
            f"client_name, helo, received, source, retention, tags) VALUES ({_NEXT_ENVELOPE}, "
            "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message,
                env_key,
                env.sender,
                env.queue_id,
                env.client_address,
                env.client_name,
                env.helo,
                env.canonical()["received"],
                env.source,
                a.retention,
                json.dumps(list(a.tags)),
            ),
        )
        envelope_id = cur.lastrowid
        assert envelope_id is not None
        _insert_rows(
            conn,
            "INSERT INTO envelope_recipients (envelope, position, address) VALUES (?, ?, ?)",
            [(envelope_id, i, r) for i, r in enumerate(env.recipients)],
        )
        addresses = [(message, "rcpt", r.lower(), "") for r in env.recipients]
        if env.sender:
            addresses.append((message, "sender", env.sender.lower(), ""))
        _insert_rows(
            conn,
            "INSERT OR IGNORE INTO addresses (message, kind, address, name) VALUES (?, ?, ?, ?)",
            addresses,
        )
        last = conn.execute(
            "SELECT seq, prev_hash, hash FROM events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        event = seal(None if last is None else ChainEvent(int(last[0]), last[1], last[2]), a)
        conn.execute(
            "INSERT INTO events (seq, message, envelope, prev_hash, hash) VALUES (?, ?, ?, ?, ?)",
            (event.seq, message, envelope_id, event.prev_hash, event.hash),
        )
        return AddResult(message, new_message, True, event.seq)

    @staticmethod
    def _check_blobs(conn: sqlite3.Connection, a: NewArrival) -> None:
        """A new message row only if the blobs it was staged with are still there: a removal
        may have deleted one it reuses (or stored again) since it was staged."""
        if a.blob_epoch is None:
            return
        if a.stored_size == 0:  # staged as known bytes, and the message was removed since
            raise CatalogError(f"message {a.sha256} was removed while it arrived again: retry")
        shas = [a.sha256, *(p.sha256 for p in a.parts)]
        marks = ",".join("?" * len(shas))
        deleted = conn.execute(
            f"SELECT 1 FROM deleted_blobs WHERE seq > ? AND sha256 IN ({marks}) LIMIT 1",
            (a.blob_epoch, *shas),
        ).fetchone()
        if deleted is not None:
            raise CatalogError(f"a blob of message {a.sha256} was removed while it arrived: retry")
        parts = [p.sha256 for p in a.parts]
        in_flight = conn.execute(
            _IN_FLIGHT.format(marks=",".join("?" * len(parts))), (a.sha256, *parts)
        ).fetchone()
        if in_flight is not None:
            # a deletion was recorded and has not finished (under way, or interrupted: the
            # next purge or erase finishes it): the blob may be gone or about to go
            raise CatalogError(
                f"a blob of message {a.sha256} is being removed: retry (a purge or erase "
                "interrupted while deleting blobs is finished by running `purge` again)"
            )

    def _insert_message(self, conn: sqlite3.Connection, a: NewArrival) -> int:
        def show(addrs: Sequence[object]) -> str:
            return ", ".join(str(x) for x in addrs)

        cur = conn.execute(
            "INSERT INTO messages (id, sha256, size, stored_size, date, received, message_id, "
            "subject, from_text, to_text, cc_text, attachment_count, defects, retain_until, "
            f"indexed_with, thread) VALUES ({_NEXT_MESSAGE}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?, ?)",
            (
                _hash_in(a.sha256),
                a.size,
                a.stored_size,
                _ts(a.date),
                _ts(a.envelope.received),
                normalize_message_id(a.message_id),
                a.subject,
                show(a.from_),
                show(a.to),
                show(a.cc),
                len(a.attachments),
                json.dumps(a.defects),
                None if a.retain_until is None else _ts(a.retain_until),
                None,  # not indexed yet: queued below
                self._thread(conn, a.thread, a.thread_parent),
            ),
        )
        message = cur.lastrowid
        assert message is not None
        rows = [
            (message, kind, addr.address.lower(), addr.name)
            for kind, addrs in (("from", a.from_), ("to", a.to), ("cc", a.cc))
            for addr in addrs
            if addr.address
        ]
        _insert_rows(
            conn,
            "INSERT OR IGNORE INTO addresses (message, kind, address, name) VALUES (?, ?, ?, ?)",
            rows,
        )
        _insert_rows(
            conn,
            "INSERT INTO attachments (message, position, filename, content_type, size, sha256) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (message, x.index, x.filename, x.content_type, x.size, x.sha256)
                for x in a.attachments
            ],
        )
        _insert_rows(
            conn,
            "INSERT OR IGNORE INTO parts (sha256, stored_size) VALUES (?, ?)",
            [(p.sha256, p.stored_size) for p in a.parts],
        )
        _insert_rows(
            conn,
            "INSERT OR IGNORE INTO message_parts (message, sha256) VALUES (?, ?)",
            [(message, p.sha256) for p in a.parts],
        )
        # indexed later, by the indexer: the answer to Postfix waits for the row, not the index
        conn.execute(
            "INSERT OR IGNORE INTO index_queue (message, queued_at) VALUES (?, ?)",
            (message, int(time.time())),
        )
        return message

    # -- removing ----------------------------------------------------------------------

    def remove(
        self, removals: Sequence[Removal], seal: TombstoneSealer, *, rebuild: bool = False
    ) -> RemoveResult:
        with self._write_lock:
            conn = self._write_conn()
            # freed pages and deleted cells are zeroed, so nothing of the mail stays in the
            # file's free space; only while removing (ingest frees index pages all the time),
            # then back to what the SQLite build has by default (Debian's: on)
            before = int(conn.execute("PRAGMA secure_delete").fetchone()[0])
            conn.execute("PRAGMA secure_delete=ON")
            try:
                with write_transaction(conn):
                    result = RemoveResult({}, [], [], [])
                    for removal in removals:
                        rebuild |= self._remove(conn, removal, seal, result)
                    if rebuild:
                        self._clear_index(conn)
                        result = dataclasses.replace(result, reindexed=True)
                    # the index drops deleted entries only when its segments are merged
                    conn.execute("INSERT INTO fts (fts) VALUES ('optimize')")
            except sqlite3.Error as exc:
                raise self._write_error(exc, "nothing was removed") from exc
            finally:
                conn.execute(f"PRAGMA secure_delete={before}")
            self._checkpoint(conn)
            return result

    def _write_error(self, exc: sqlite3.Error, outcome: str) -> CatalogError:
        if is_busy(exc):
            return CatalogError(
                f"catalog {self.path} is locked by another process (a backup or a sqlite3 "
                f"shell in a write transaction?): {outcome}; run it again when that ends"
            )
        return CatalogError(f"cannot write catalog {self.path}: {exc}; {outcome}")

    def _remove(
        self, conn: sqlite3.Connection, r: Removal, seal: TombstoneSealer, result: RemoveResult
    ) -> bool:
        """Removes one message; True if its index entry is unknown (the index is rebuilt)."""
        row = (
            conn.execute(
                "SELECT sha256, size, retain_until, indexed_with FROM messages WHERE id = ?",
                (r.message,),
            ).fetchone()
            if _storable(r.message)
            else None
        )
        if row is None:
            result.gone.append(r.message)
            return False
        if conn.execute(_ACTIVE_HOLD, (r.message,)).fetchone() is not None:
            result.held.append(r.message)  # held since the caller looked: never removed
            return False
        if r.expired_before is not None and (row[2] is None or int(row[2]) > _ts(r.expired_before)):
            # a purge planned before the retention was extended, or before the same bytes
            # arrived again (and Postfix was told they are kept): checked here, under the
            # write lock, so no such change can slip in between the check and the delete
            result.retained.append(r.message)
            return False
        sha, size = _hash_out(row[0]), int(row[1])
        envelopes = [
            self._envelope_from(conn, e[0], e[1:])
            for e in conn.execute(
                "SELECT id, sender, queue_id, client_address, client_name, helo, received, "
                "source FROM envelopes WHERE message = ? ORDER BY id",
                (r.message,),
            )
        ]
        arrivals = [
            ChainEvent(int(e[0]), str(e[1]), str(e[2]))
            for e in conn.execute(
                "SELECT seq, prev_hash, hash FROM events "
                "WHERE message = ? AND tombstone IS NULL ORDER BY seq",
                (r.message,),
            )
        ]
        parts = [str(p[0]) for p in conn.execute(
            "SELECT sha256 FROM message_parts WHERE message = ?", (r.message,)
        )]  # fmt: skip
        unknown = False
        queued = conn.execute("DELETE FROM index_queue WHERE message = ?", (r.message,)).rowcount
        if queued:
            pass  # not indexed yet: it has no entry to forget
        elif r.index is not None and (r.indexed_with is None or r.indexed_with == row[3]):
            _index(conn, "delete", r.message, r.index)
        else:
            unknown = True  # indexed otherwise than the caller computed: rebuilt
        attachments = [str(a[0]) for a in conn.execute(
            "SELECT DISTINCT sha256 FROM attachments WHERE message = ?", (r.message,)
        )]  # fmt: skip
        conn.execute(
            "DELETE FROM envelope_recipients WHERE envelope IN "
            "(SELECT id FROM envelopes WHERE message = ?)",
            (r.message,),
        )
        conn.execute(
            "DELETE FROM envelope_imports WHERE envelope IN "
            "(SELECT id FROM envelopes WHERE message = ?)",
            (r.message,),
        )
        for table in ("envelopes", "addresses", "attachments", "message_parts", "message_holds"):
            conn.execute(f"DELETE FROM {table} WHERE message = ?", (r.message,))
        conn.execute("DELETE FROM messages WHERE id = ?", (r.message,))
        refs: list[BlobRef] = [("message", sha)]
        for part in parts:
            if conn.execute(_PART_USED, (part,)).fetchone() is None:
                conn.execute("DELETE FROM parts WHERE sha256 = ?", (part,))
                refs.append(("part", part))
        for attachment in attachments:
            # its extracted text goes with the last message that has it
            if conn.execute(_ATTACHMENT_USED, (attachment,)).fetchone() is None:
                extracted = conn.execute(
                    "DELETE FROM extracts WHERE sha256 = ? RETURNING status", (attachment,)
                ).fetchone()
                if extracted is not None and extracted[0] == "ok":  # only then a text blob
                    refs.append(("text", attachment))
        conn.executemany("INSERT OR IGNORE INTO removed_blobs (kind, sha256) VALUES (?, ?)", refs)
        last = conn.execute(
            "SELECT seq, prev_hash, hash FROM events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        event, content = seal(
            ChainEvent(int(last[0]), str(last[1]), str(last[2])),
            Removed(r, sha, size, envelopes, arrivals),
        )
        conn.execute(
            "INSERT INTO events (seq, message, envelope, prev_hash, hash, tombstone) "
            "VALUES (?, ?, 0, ?, ?, ?)",
            (event.seq, r.message, event.prev_hash, event.hash, json.dumps(content)),
        )
        result.removed[r.message] = event.seq
        return unknown

    @staticmethod
    def _clear_index(conn: sqlite3.Connection) -> None:
        """The index emptied and every message queued: for when an entry's exact values are
        unknown (a message indexed under another ``index_limit``, a cached text lost). The
        indexer makes the entries again in the background, in its own small transactions."""
        conn.execute("INSERT INTO fts (fts) VALUES ('delete-all')")
        conn.execute("UPDATE messages SET indexed_with = NULL WHERE indexed_with IS NOT NULL")
        conn.execute(
            "INSERT OR IGNORE INTO index_queue (message, queued_at) SELECT id, ? FROM messages",
            (int(time.time()),),
        )

    def _checkpoint(self, conn: sqlite3.Connection, waits: Sequence[float] = ()) -> bool:
        # the log still holds the removed rows' old pages until it is written back and cut
        try:
            if truncate_wal(conn, waits):
                return True
            log.warning("catalog %s: WAL still in use by a reader, not truncated yet", self.path)
        except sqlite3.Error as exc:
            log.warning("catalog %s: WAL not truncated after a removal: %s", self.path, exc)
        return False

    # -- the full-text index, made after answering (``archive.indexer``) ------------------

    def queued(
        self, limit: int, due: datetime | None = None, *, claim: bool = False
    ) -> list[tuple[int, str]]:
        # no claim: a SQLite catalog is one host's, whose indexer runs in ``serve`` (a pipe
        # filter's process leaves its mail queued for it)
        rows = self._query(
            "SELECT q.message, m.sha256 FROM index_queue q JOIN messages m ON m.id = q.message "
            "WHERE q.queued_at <= ? ORDER BY q.queued_at, q.message LIMIT ?",
            (_INT_MAX if due is None else _ts(due), max(0, min(limit, 1 << 20))),
        )
        return [(int(r[0]), _hash_out(r[1])) for r in rows]

    def index(
        self,
        entries: Sequence[Indexed],
        signature: str,
        extracts: Sequence[ExtractRecord] = (),
        holds: HoldQueries | None = None,
    ) -> list[int]:
        done: list[int] = []
        with self._write("index messages") as conn:
            for x in extracts:
                known = conn.execute(
                    "SELECT version, status FROM extracts WHERE sha256 = ?", (x.sha256,)
                ).fetchone()
                if (
                    known is not None
                    and known[0] == x.version
                    and (known[1] == "ok") != (x.status == "ok")
                ):
                    # another indexer (a reindex beside serve's) extracted it meanwhile,
                    # with another outcome (a timeout under load): the batch stays queued
                    # and is made again from the stored outcome, since an entry must be
                    # exactly what its removal will compute again
                    return []
                if conn.execute(_ATTACHMENT_USED, (x.sha256,)).fetchone() is None:
                    # its messages were removed while it was extracted: its text blob goes
                    # with the next removal's blobs
                    conn.execute(
                        "INSERT OR IGNORE INTO removed_blobs (kind, sha256) VALUES ('text', ?)",
                        (x.sha256,),
                    )
                    continue
                conn.execute(
                    "INSERT OR REPLACE INTO extracts (sha256, version, status, detail) "
                    "VALUES (?, ?, ?, ?)",
                    (x.sha256, x.version, x.status, x.detail),
                )
            for e in entries:
                if not _storable(e.message):
                    continue
                # only if still queued: removed meanwhile (its queue row went with it), or
                # indexed by another indexer (a reindex beside serve's), it is left alone
                if not conn.execute(
                    "DELETE FROM index_queue WHERE message = ?", (e.message,)
                ).rowcount:
                    continue
                _index(conn, "", e.message, e.entry)
                conn.execute(
                    "UPDATE messages SET indexed_with = ? WHERE id = ?", (signature, e.message)
                )
                done.append(e.message)
            if holds is not None and done:
                # a hold's query may need the text: matched again now that it is indexed
                self._hold_new(conn, done, holds)
        return done

    def defer(self, messages: Sequence[int], until: datetime) -> None:
        with self._write("defer indexing") as conn:
            conn.executemany(
                "UPDATE index_queue SET queued_at = ? WHERE message = ?",
                [(_ts(until), m) for m in messages if _storable(m)],
            )

    def extract_records(self, sha256s: Sequence[str]) -> dict[str, ExtractRecord]:
        found: dict[str, ExtractRecord] = {}
        shas = list(dict.fromkeys(sha256s))
        for start in range(0, len(shas), 500):
            chunk = shas[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self._query(
                f"SELECT sha256, version, status, detail FROM extracts WHERE sha256 IN ({marks})",
                chunk,
            ):
                found[str(r[0])] = ExtractRecord(str(r[0]), str(r[1]), str(r[2]), str(r[3]))
        return found

    def index_status(self) -> IndexStatus:
        count, oldest = self._query("SELECT count(*), min(queued_at) FROM index_queue")[0]
        failures = self._query(
            "SELECT status, count(*) FROM extracts WHERE status NOT IN ('ok', 'unsupported') "
            "GROUP BY status ORDER BY status"
        )
        return IndexStatus(
            queued=int(count),
            oldest=None if oldest is None else _dt(int(oldest)),
            failures={str(s): int(n) for s, n in failures},
        )

    def requeue(
        self, known: Sequence[Indexed], signature: str, unknown: Sequence[int] = ()
    ) -> bool:
        entries = {e.message: e.entry for e in known if _storable(e.message)}
        ids = [*entries, *(m for m in unknown if _storable(m) and m not in entries)]
        with self._write("queue messages for indexing") as conn:
            now = int(time.time())
            for message in ids:
                row = conn.execute(
                    "SELECT m.indexed_with, "
                    "EXISTS (SELECT 1 FROM index_queue q WHERE q.message = m.id), "
                    "EXISTS (SELECT 1 FROM fts_docsize d WHERE d.id = m.id) "
                    "FROM messages m WHERE m.id = ?",
                    (message,),
                ).fetchone()
                if row is None or row[1]:
                    continue  # gone, or queued already
                if row[2]:  # it has an entry: forgotten by its exact values, or rebuilt
                    entry = entries.get(message)
                    if entry is None or row[0] != signature:
                        self._clear_index(conn)
                        return True
                    _index(conn, "delete", message, entry)
                conn.execute("UPDATE messages SET indexed_with = NULL WHERE id = ?", (message,))
                conn.execute(
                    "INSERT INTO index_queue (message, queued_at) VALUES (?, ?)", (message, now)
                )
        return False

    def rebuild_index(self) -> None:
        with self._write("rebuild the index") as conn:
            self._clear_index(conn)

    def compact_index(self, pages: int) -> bool:
        with self._write("compact the index") as conn:
            before = conn.total_changes
            # negative: merge whatever pieces there are, as 'optimize' does, but stop after
            # about ``pages`` pages, so that a commit waits for one step at most
            conn.execute("INSERT INTO fts (fts, rank) VALUES ('merge', ?)", (-max(1, pages),))
            # SQLite's documented test: fewer than two changes means no merge work was done
            return conn.total_changes - before >= 2

    def index_size(self) -> int:
        return int(self._query("SELECT count(*) FROM fts_docsize")[0][0])

    def index_check(self) -> tuple[list[int], list[int]]:
        # a contentless FTS5 table keeps one row per entry in its docsize table: its ids,
        # read without touching the index itself
        missing = self._query(
            "SELECT m.id FROM messages m WHERE NOT EXISTS "
            "(SELECT 1 FROM index_queue q WHERE q.message = m.id) AND NOT EXISTS "
            "(SELECT 1 FROM fts_docsize d WHERE d.id = m.id) ORDER BY m.id"
        )
        stale = self._query(
            "SELECT d.id FROM fts_docsize d WHERE NOT EXISTS "
            "(SELECT 1 FROM messages m WHERE m.id = d.id) ORDER BY d.id"
        )
        return [int(r[0]) for r in missing], [int(r[0]) for r in stale]

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._write_lock:
            try:
                with write_transaction(self._write_conn()):
                    yield
            except sqlite3.Error as exc:
                raise self._write_error(exc, "nothing was changed") from exc

    def truncate_logs(self) -> list[str]:
        if self.readonly:
            return []
        with self._write_lock:
            return [] if self._checkpoint(self._write_conn(), TRUNCATE_WAITS) else [str(self.path)]

    def blob_epoch(self) -> int:
        return int(self._query("SELECT coalesce(max(seq), 0) FROM deleted_blobs")[0][0])

    def pending_blobs(self) -> list[BlobRef]:
        return [
            (str(r[0]), str(r[1]))
            for r in self._query("SELECT kind, sha256 FROM removed_blobs ORDER BY kind, sha256")
        ]

    def release_blobs(self, delete: Callable[[list[BlobRef]], None], *, batch: int = 200) -> int:
        count = 0
        insert = "INSERT INTO deleted_blobs (kind, sha256) VALUES (?, ?)"
        with self._write_lock:
            conn = self._write_conn()
            while True:
                try:
                    # 1. the intent, committed before any blob goes: however the deletion
                    # ends (an error, a kill), an arrival that needs one of these blobs and
                    # was staged before this commit finds it (seq above its epoch), and one
                    # staged after it finds the blob still pending (``_IN_FLIGHT``); both
                    # fail (temporarily) instead of recording a message without its blobs
                    with write_transaction(conn):
                        refs = [
                            (str(r[0]), str(r[1]))
                            for r in conn.execute(
                                "SELECT kind, sha256 FROM removed_blobs LIMIT ?", (batch,)
                            )
                        ]
                        if not refs:
                            return count
                        unused = [ref for ref in refs if not self._referenced(conn, ref)]
                        conn.executemany(insert, unused)
                        # used again by mail that arrived since: kept, nothing to do
                        conn.executemany(
                            "DELETE FROM removed_blobs WHERE kind = ? AND sha256 = ?",
                            [ref for ref in refs if ref not in unused],
                        )
                    # 2. the deletion, under the write lock (no arrival commits meanwhile);
                    # recorded again, so an arrival staged between 1 and 2 is refused too
                    with write_transaction(conn):
                        unused = [ref for ref in unused if not self._referenced(conn, ref)]
                        delete(unused)
                        conn.executemany(insert, unused)
                        conn.executemany(
                            "DELETE FROM removed_blobs WHERE kind = ? AND sha256 = ?", unused
                        )
                        count += len(unused)
                except sqlite3.Error as exc:
                    raise self._write_error(
                        exc, "the removed messages' blobs are deleted by the next purge or erase"
                    ) from exc

    @staticmethod
    def _referenced(conn: sqlite3.Connection, ref: BlobRef) -> bool:
        kind, sha = ref
        sql = {
            "message": "SELECT 1 FROM messages WHERE sha256 = ?",
            "part": _PART_USED,
            "text": _ATTACHMENT_USED,
        }[kind]
        key = _hash_in(sha) if kind == "message" else sha  # only messages keep the bytes
        return conn.execute(sql, (key,)).fetchone() is not None

    # -- reading -----------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._readers.use(self._connect_reader) as conn:
                return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise CatalogError(f"catalog query failed: {exc}") from exc

    @staticmethod
    def _row(r: Sequence[Any]) -> MessageRow:
        return MessageRow(
            id=int(r[0]),
            sha256=_hash_out(r[1]),
            size=int(r[2]),
            stored_size=int(r[3]),
            date=_dt(int(r[4])),
            received=_dt(int(r[5])),
            subject=str(r[6]),
            message_id=str(r[7]),
            from_=str(r[8]),
            to=str(r[9]),
            cc=str(r[10]),
            attachment_count=int(r[11]),
            defects=json.loads(str(r[12])),
            retain_until=None if r[13] is None else _dt(int(r[13])),
        )

    def find_sha(self, sha256: str) -> int | None:
        rows = self._query("SELECT id FROM messages WHERE sha256 = ?", (_hash_in(sha256),))
        return int(rows[0][0]) if rows else None

    def search(
        self,
        query: Node,
        *,
        limit: int = 50,
        offset: int = 0,
        order: str = "-date",
        visible_to: Sequence[str] | None = None,
    ) -> SearchPage:
        compiled = Compiler(self._dialect, own=visible_to).compile(query)
        where, params = compiled.where, compiled.params
        if visible_to is not None:
            # first, so that SQLite starts from the user's own messages (hundreds) and checks
            # each against the query, not from a common word's 38,000 (87 to 13 ms)
            own: list[object] = []
            where = f"{self._compiler.visible(visible_to, own)} AND ({where})"
            params = [*own, *params]
        order_sql = _ORDER_SQL.get(order)
        if order_sql is None:
            raise ValueError(f"unknown order {order!r}")
        index_only = compiled.index_only and visible_to is None
        # the matches' ids, where they are few: one pass over the index (or the addresses)
        # gives both the total and the page (found among them), where a count and then the
        # page each made it: "subject:word" reads the word's whole list, once, not twice
        ids = self._few_matches(where, params, index_only)
        if ids is not None:
            total = len(ids)
        elif index_only:
            # counted in the index: every entry of it is an archived message's (removals take
            # both in one transaction), so the 38,000 lookups of a common word's messages are
            # not needed to count them (a short page that disagrees is counted again below)
            total = self._query("SELECT count(*) FROM fts WHERE fts MATCH ?", params)[0][0]
        else:
            total = self._query(f"SELECT count(*) FROM messages m WHERE {where}", params)[0][0]
        rows = self._newest_first(
            query, visible_to, order, int(total), limit, offset, row_free=index_only
        )
        if rows is None and ids is not None:
            rows = self._query(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages m "
                "WHERE m.id IN (SELECT value FROM json_each(?)) "
                f"ORDER BY {order_sql} LIMIT ? OFFSET ?",
                [json.dumps(ids), limit, offset],
            )
        elif rows is None:
            rows = self._query(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE {where} "
                f"ORDER BY {order_sql} LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
        if compiled.index_only and len(rows) < limit and offset + len(rows) < total:
            # the index counted entries of messages that are gone: counted again, the slow
            # way (an entry whose removal did not match it; ``reindex`` clears it)
            log.warning("the full-text index holds entries of removed messages: run reindex")
            total = self._query(f"SELECT count(*) FROM messages m WHERE {where}", params)[0][0]
        pending = self._query("SELECT count(*) FROM index_queue")[0][0]
        return SearchPage(int(total), [self._row(r) for r in rows], int(pending))

    def _few_matches(self, where: str, params: list[object], index_only: bool) -> list[int] | None:
        """The ids of every match of ``where`` if there are at most ``FEW_MATCHES``, else None
        (what was read then is a small part of what counting them reads)."""
        if index_only:
            sql = "SELECT rowid FROM fts WHERE fts MATCH ? LIMIT ?"
        else:
            sql = f"SELECT m.id FROM messages m WHERE {where} LIMIT ?"
        found = self._query(sql, [*params, FEW_MATCHES + 1])
        return [int(r[0]) for r in found] if len(found) <= FEW_MATCHES else None

    def _newest_first(
        self,
        query: Node,
        visible_to: Sequence[str] | None,
        order: str,
        total: int,
        limit: int,
        offset: int,
        *,
        row_free: bool = False,
    ) -> list[tuple[Any, ...]] | None:
        """The page of a query that matches many messages, in date order, found by walking
        the messages in that order until the page is full; None where that would not pay.

        SQLite's plan sorts every match by date for a page of 50: 38,000 random reads for a
        common word. When matches are a good part of the archive, the newest few hundred
        messages hold the page: the walk reads those, in the date index's order, and stops
        at the page's last match, or at the date of the ``DATE_WALK_MARGIN`` times as many
        messages as the matches' share predicts. If fewer than a full page lie before that
        date (the matches are not spread evenly over time), the usual plan runs.

        Each message walked over is checked against the query, one of two ways: in the
        list of every match (made once, a fraction of a microsecond per match), or looked
        up for that message alone (``LOOKUP_COST`` times as long, but independent of how
        many match): whichever reads less. At a million messages a common word's list is
        hundreds of thousands long, and the 500 messages walked over are far fewer.

        ``row_free``: the query is checked on a message's id alone (``SORT_COST``): a walk
        many times longer than the list of matches still reads less than sorting them, so a
        rarer word's page (1% of the archive: 5,000 matches at a million, each row read to
        sort them) is walked too. Where the walk then finds too few, sorting after it costs
        at most twice the sort alone.
        """
        if order not in _DATE_DIRECTION or limit <= 0 or offset + limit > total:
            return None
        newest = self._query("SELECT max(id) FROM messages")[0][0] or 0  # ids ≈ the count
        expected = (offset + limit) * newest // max(total, 1)  # messages walked, spread evenly
        walk = DATE_WALK_MARGIN * expected + 100
        if walk >= total * (SORT_COST if row_free else 1):  # as long as sorting the matches
            return None
        direction = _DATE_DIRECTION[order]
        bound = self._query(
            f"SELECT date FROM messages INDEXED BY messages_date "
            f"ORDER BY date {direction}, id {direction} LIMIT 1 OFFSET ?",
            [walk - 1],
        )
        if not bound:
            return None
        correlated = expected * LOOKUP_COST < total
        compiled = Compiler(self._dialect, own=visible_to, correlated=correlated).compile(query)
        where, params = compiled.where, compiled.params
        if visible_to is not None:
            own: list[object] = []
            where = f"{self._compiler.visible(visible_to, own)} AND ({where})"
            params = [*own, *params]
        # the index's order is the page's: SQLite reads no further than the page's last match
        rows = self._query(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m INDEXED BY messages_date "
            f"WHERE m.date {'>=' if direction == 'DESC' else '<='} ? AND ({where}) "
            f"ORDER BY {_ORDER_SQL[order]} LIMIT ? OFFSET ?",
            [bound[0][0], *params, limit, offset],
        )
        return rows if len(rows) == limit else None

    def get(self, message: int) -> MessageRow | None:
        if not _storable(message):
            return None
        rows = self._query(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?",
            (message,),
        )
        return self._row(rows[0]) if rows else None

    def envelopes(self, message: int) -> list[EnvelopeRow]:
        if not _storable(message):
            return []
        rows = self._query(
            "SELECT id, message, sender, queue_id, client_address, client_name, helo, "
            "received, source, retention, tags FROM envelopes WHERE message = ? ORDER BY id",
            (message,),
        )
        return [
            EnvelopeRow(
                int(r[0]),
                int(r[1]),
                self._envelope(r[0], r[2:9]),
                retention=_opt(r[9]),
                tags=tuple(str(t) for t in json.loads(str(r[10]))),
            )
            for r in rows
        ]

    def _envelope(self, envelope_id: object, r: Sequence[Any]) -> Envelope:
        recipients = self._query(
            "SELECT address FROM envelope_recipients WHERE envelope = ? ORDER BY position",
            (envelope_id,),
        )
        return _make_envelope(r, recipients)

    @staticmethod
    def _envelope_from(conn: sqlite3.Connection, envelope_id: object, r: Sequence[Any]) -> Envelope:
        recipients = conn.execute(
            "SELECT address FROM envelope_recipients WHERE envelope = ? ORDER BY position",
            (envelope_id,),
        ).fetchall()
        return _make_envelope(r, recipients)

    def attachments(self, message: int) -> list[AttachmentRow]:
        if not _storable(message):
            return []
        rows = self._query(
            "SELECT message, position, filename, content_type, size, sha256 "
            "FROM attachments WHERE message = ? ORDER BY position",
            (message,),
        )
        return [
            AttachmentRow(int(r[0]), int(r[1]), str(r[2]), str(r[3]), int(r[4]), str(r[5]))
            for r in rows
        ]

    def held(self, messages: Sequence[int]) -> set[int]:
        messages = [m for m in messages if _storable(m)]
        found: set[int] = set()
        for start in range(0, len(messages), 500):  # under SQLite's bound-parameter limit
            chunk = list(messages[start : start + 500])
            marks = ",".join("?" * len(chunk))
            found.update(
                int(r[0])
                for r in self._query(
                    "SELECT DISTINCT mh.message FROM message_holds mh "
                    "JOIN holds h ON h.id = mh.hold "
                    f"WHERE h.released_at IS NULL AND mh.message IN ({marks})",
                    chunk,
                )
            )
        return found

    def active_holds_of(self, messages: Sequence[int]) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {}
        for chunk in _chunks([m for m in messages if _storable(m)]):
            marks = ",".join("?" * len(chunk))
            for message, name in self._query(
                "SELECT mh.message, h.name FROM message_holds mh JOIN holds h ON h.id = mh.hold "
                f"WHERE h.released_at IS NULL AND mh.message IN ({marks}) ORDER BY h.name",
                chunk,
            ):
                found.setdefault(int(message), []).append(str(name))
        return found

    def index_signatures(self, messages: Sequence[int]) -> dict[int, str | None]:
        found: dict[int, str | None] = {}
        for chunk in _chunks([m for m in messages if _storable(m)]):
            marks = ",".join("?" * len(chunk))
            for message, signature in self._query(
                f"SELECT id, indexed_with FROM messages WHERE id IN ({marks})", chunk
            ):
                found[int(message)] = _opt(signature)
        return found

    def expired(self, now: datetime) -> Iterator[MessageRow]:
        last = 0
        while True:
            rows = self._query(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.retain_until IS NOT NULL "
                "AND m.retain_until <= ? AND m.id > ? ORDER BY m.id LIMIT 1000",
                (_ts(now), last),
            )
            if not rows:
                return
            yield from (self._row(r) for r in rows)
            last = int(rows[-1][0])

    @staticmethod
    def _thread(conn: sqlite3.Connection, key: str, parent: str) -> str:
        """``key``, or the conversation of the archived message ``parent`` names."""
        if parent:
            found = conn.execute(
                "SELECT thread FROM messages WHERE message_id = ? AND thread IS NOT NULL "
                "AND thread != '' ORDER BY id LIMIT 1",
                (parent,),
            ).fetchone()
            if found:
                return str(found[0])
        return key

    def conversation(
        self, message: int, *, limit: int = 200, visible_to: Sequence[str] | None = None
    ) -> list[MessageRow]:
        if not _storable(message):
            return []
        params: list[object] = [message]
        where = "m.thread = (SELECT thread FROM messages WHERE id = ? AND thread != '')"
        if visible_to is not None:
            where = f"{where} AND {self._compiler.visible(visible_to, params)}"
        rows = self._query(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE {where} "
            "ORDER BY m.date, m.id LIMIT ?",
            [*params, limit],
        )
        return [self._row(r) for r in rows]

    def threads(self, messages: Sequence[int]) -> dict[int, str]:
        ids = [m for m in messages if _storable(m)]
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        rows = self._query(
            f"SELECT id, thread FROM messages WHERE id IN ({marks}) AND thread != ''", ids
        )
        return {int(i): str(t) for i, t in rows}

    def unthreaded(self, limit: int) -> list[tuple[int, str]]:
        rows = self._query(
            "SELECT id, sha256 FROM messages WHERE thread IS NULL ORDER BY id LIMIT ?", (limit,)
        )
        return [(int(i), _hash_out(sha)) for i, sha in rows]

    def set_threads(self, threads: Sequence[tuple[int, str, str]]) -> None:
        with self._write("record conversations") as conn:
            for message, key, parent in threads:
                conn.execute(
                    "UPDATE messages SET thread = ? WHERE id = ? AND thread IS NULL",
                    (self._thread(conn, key, parent), message),
                )

    def start_import(self, source: str, when: datetime) -> int:
        with self._write("record an import") as conn:
            cur = conn.execute(
                "INSERT INTO imports (source, started) VALUES (?, ?)", (source, _ts(when))
            )
            assert cur.lastrowid is not None
            return int(cur.lastrowid)

    def record_import_origins(self, run: int, origins: Sequence[tuple[int, str]]) -> None:
        with self._write("record where imported mail came from") as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO envelope_imports (envelope, import, origin) "
                "SELECT envelope, ?, ? FROM events WHERE seq = ? AND tombstone IS NULL",
                [(run, origin, seq) for seq, origin in origins if _storable(seq)],
            )

    def import_cursor(self, source: str) -> str | None:
        rows = self._query("SELECT cursor FROM import_cursors WHERE source = ?", (source,))
        return str(rows[0][0]) if rows else None

    def set_import_cursors(self, cursors: Sequence[tuple[str, str]]) -> None:
        if not cursors:
            return
        with self._write("record where an import stopped") as conn:
            conn.executemany(
                "INSERT INTO import_cursors (source, cursor) VALUES (?, ?) "
                "ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor",
                cursors,
            )

    def finish_import(self, run: int, when: datetime) -> None:
        with self._write("record an import") as conn:
            conn.execute("UPDATE imports SET finished = ? WHERE id = ?", (_ts(when), run))

    def import_origins(self, envelopes: Sequence[int]) -> dict[int, ImportOrigin]:
        ids = [e for e in envelopes if _storable(e)]
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        rows = self._query(
            "SELECT o.envelope, o.origin, i.source, i.started, i.finished "
            "FROM envelope_imports o JOIN imports i ON i.id = o.import "
            f"WHERE o.envelope IN ({marks})",
            ids,
        )
        return {
            int(e): ImportOrigin(
                str(origin), str(source), _dt(started), None if done is None else _dt(done)
            )
            for e, origin, source, started, done in rows
        }

    def is_visible(self, message: int, addresses: Sequence[str]) -> bool:
        if not _storable(message):
            return False
        params: list[object] = [message]
        cond = self._compiler.visible(addresses, params)
        return bool(self._query(f"SELECT 1 FROM messages m WHERE m.id = ? AND {cond}", params))

    def messages(self) -> Iterator[MessageRow]:
        last = 0
        while True:
            rows = self._query(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.id > ? "
                "ORDER BY m.id LIMIT 1000",
                (last,),
            )
            if not rows:
                return
            for r in rows:
                yield self._row(r)
            last = int(rows[-1][0])

    def chain(self) -> Iterator[ChainLink]:
        last = 0
        while True:
            rows = self._query(
                "SELECT e.seq, e.prev_hash, e.hash, e.message, e.envelope, m.sha256, m.size, "
                "v.id, v.sender, v.queue_id, v.client_address, v.client_name, v.helo, "
                "v.received, v.source, e.tombstone FROM events e "
                "LEFT JOIN messages m ON m.id = e.message "
                "LEFT JOIN envelopes v ON v.id = e.envelope AND v.message = e.message "
                "WHERE e.seq > ? ORDER BY e.seq LIMIT 1000",
                (last,),
            )
            if not rows:
                return
            for r in rows:
                env = None if r[7] is None else self._envelope(r[7], r[8:])
                yield ChainLink(
                    seq=int(r[0]),
                    prev_hash=str(r[1]),
                    hash=str(r[2]),
                    message=int(r[3]),
                    envelope_id=int(r[4]),
                    message_sha256=None if r[5] is None else _hash_out(r[5]),
                    size=None if r[6] is None else int(r[6]),
                    envelope=env,
                    tombstone=None if r[15] is None else _tombstone(str(r[15])),
                )
            last = int(rows[-1][0])

    def events(self, after: int = 0) -> Iterator[ChainEvent]:
        if after > _INT_MAX:
            return
        last = max(after, _INT_MIN)
        while True:
            rows = self._query(
                "SELECT seq, prev_hash, hash FROM events WHERE seq > ? ORDER BY seq LIMIT 5000",
                (last,),
            )
            if not rows:
                return
            for r in rows:
                yield ChainEvent(int(r[0]), str(r[1]), str(r[2]))
            last = int(rows[-1][0])

    def last_event(self) -> ChainEvent | None:
        rows = self._query("SELECT seq, prev_hash, hash FROM events ORDER BY seq DESC LIMIT 1")
        return ChainEvent(int(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None

    def orphans(self) -> tuple[list[int], list[int]]:
        messages = self._query(
            "SELECT m.id FROM messages m WHERE NOT EXISTS "
            "(SELECT 1 FROM events e WHERE e.message = m.id) ORDER BY m.id"
        )
        envelopes = self._query(
            "SELECT v.id FROM envelopes v WHERE NOT EXISTS "
            "(SELECT 1 FROM events e WHERE e.envelope = v.id) ORDER BY v.id"
        )
        return [int(r[0]) for r in messages], [int(r[0]) for r in envelopes]

    # -- copying to another backend (``migrate``; the tables: ``catalog.tables``) ----------

    @contextmanager
    def snapshot(self) -> Iterator[TableRows]:
        """See ``Catalog.snapshot``: one read transaction on a connection of its own (WAL:
        arrivals go on committing meanwhile, unseen by it)."""
        conn = self._connect_reader()
        try:
            conn.execute("BEGIN")
            yield _SqliteRows(conn, self.path)
        finally:
            conn.close()

    def load_rows(self, t: Table, rows: Sequence[Sequence[Any]]) -> int:
        """See ``Catalog.load_rows``."""
        values = [_loaded(t, r) for r in rows]
        with self._write(f"copy {t.name}") as conn:
            conn.executemany(upsert_sql(t, "?"), values)
            if t.name == "messages" and values:
                # queued for the index as an arrival is: the entry is built here, not copied
                now = int(time.time())
                conn.executemany(
                    "INSERT OR IGNORE INTO index_queue (message, queued_at) "
                    "SELECT id, ? FROM messages WHERE id = ? AND indexed_with IS NULL",
                    [(now, v[0]) for v in values],
                )
        return len(values)

    def copied_upto(self, t: Table) -> object | None:
        """See ``Catalog.copied_upto``."""
        rows = self._query(resume_sql(t))
        return rows[0][0] if rows else None

    def finish_load(self) -> None:
        """See ``Catalog.finish_load``: SQLite's ids need nothing (the next after the highest)."""

    def stats(self) -> Stats:
        m = self._query(
            "SELECT count(*), coalesce(sum(size), 0), coalesce(sum(stored_size), 0),"
            " min(date), max(date) FROM messages"
        )[0]
        p = self._query("SELECT count(*), coalesce(sum(stored_size), 0) FROM parts")[0]
        e = self._query("SELECT count(*) FROM envelopes")[0]
        size = sum(
            f.stat().st_size for f in self.path.parent.glob(self.path.name + "*") if f.is_file()
        )
        return Stats(
            messages=int(m[0]),
            envelopes=int(e[0]),
            raw_bytes=int(m[1]),
            stored_bytes=int(m[2]) + int(p[1]),
            parts=int(p[0]),
            catalog_bytes=size,
            first_date=None if m[3] is None else _dt(int(m[3])),
            last_date=None if m[4] is None else _dt(int(m[4])),
            index=self.index_status(),
        )

    def per_day(
        self, since: datetime | None = None, *, by: Literal["date", "arrival"] = "date"
    ) -> list[tuple[str, int, int]]:
        column = "received" if by == "arrival" else "date"  # one of two names, never input
        rows = self._query(
            # clamped as _dt() clamps: a row from before dates were clamped has no SQL date
            f"SELECT date(min(max({column}, ?), ?), 'unixepoch') AS day, count(*), sum(size) "
            f"FROM messages WHERE {column} >= ? GROUP BY day ORDER BY day",
            (EARLIEST_TS, LATEST_TS, _ts(since) if since else -(1 << 63)),
        )
        return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    # -- retention and legal holds -------------------------------------------------------

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction outside ingest, its SQLite errors as a CatalogError."""
        with self._write_lock:
            conn = self._write_conn()
            try:
                with write_transaction(conn):
                    yield conn
            except sqlite3.Error as exc:
                if is_busy(exc):
                    raise CatalogError(
                        f"catalog {self.path} is locked by another process: cannot {what} "
                        "now; try again when it is done"
                    ) from exc
                raise CatalogError(f"cannot {what} in catalog {self.path}: {exc}") from exc

    def set_retain_until(self, changes: Sequence[tuple[int, datetime | None]]) -> int:
        with self._write("set retention") as conn:
            cur = conn.executemany(
                "UPDATE messages SET retain_until = ? WHERE id = ?",
                [
                    (None if until is None else _ts(until), m)
                    for m, until in changes
                    if _storable(m)
                ],
            )
            return int(cur.rowcount)

    def add_hold(
        self, name: str, query_text: str, query: Node, reason: str, who: str, when: datetime
    ) -> HoldRow | None:
        with self._write("add a hold") as conn:
            if conn.execute(
                "SELECT 1 FROM holds WHERE name = ? COLLATE NOCASE", (name,)
            ).fetchone():
                return None
            cur = conn.execute(
                "INSERT INTO holds (name, query, reason, created_by, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, query_text, reason, who, _ts(when)),
            )
            compiled = self._compiler.compile(query)
            # the messages matching now, in the same transaction: mail committed after it
            # finds the hold active (add_batch reads the active holds inside its commit)
            conn.execute(
                "INSERT OR IGNORE INTO message_holds (hold, message) "
                f"SELECT ?, m.id FROM messages m WHERE {compiled.where}",
                [cur.lastrowid, *compiled.params],
            )
        return self.hold(name)

    def release_hold(self, name: str, who: str, when: datetime) -> HoldRow | None:
        with self._write("release a hold") as conn:
            conn.execute(
                "UPDATE holds SET released_by = ?, released_at = ? "
                "WHERE name = ? COLLATE NOCASE AND released_at IS NULL",
                (who, _ts(when), name),
            )
        return self.hold(name)

    def hold(self, name: str) -> HoldRow | None:
        rows = self._query(
            f"SELECT {_HOLD_COLUMNS} FROM holds h WHERE h.name = ? COLLATE NOCASE", (name,)
        )
        return _hold_row(rows[0]) if rows else None

    def holds(self) -> list[HoldRow]:
        return [
            _hold_row(r) for r in self._query(f"SELECT {_HOLD_COLUMNS} FROM holds h ORDER BY h.id")
        ]

    def holds_of(self, message: int) -> list[HoldRow]:
        if not _storable(message):
            return []
        rows = self._query(
            f"SELECT {_HOLD_COLUMNS} FROM holds h WHERE h.id IN "
            "(SELECT hold FROM message_holds WHERE message = ?) ORDER BY h.id",
            (message,),
        )
        return [_hold_row(r) for r in rows]

    def _hold_new(
        self, conn: sqlite3.Connection, messages: Sequence[int], holds: HoldQueries
    ) -> None:
        """Puts the batch's new arrivals under the active holds whose query they match. Read
        inside the commit: a hold placed by another process either committed before (and is
        seen here) or after (and its own matching sees this batch)."""
        active = conn.execute(
            "SELECT id, query FROM holds WHERE released_at IS NULL ORDER BY id"
        ).fetchall()
        ids = sorted(set(messages))
        if not active or not ids:
            return
        for hold, query in holds([(int(i), str(q)) for i, q in active]):
            conn.execute(*hold_new_statement(hold, query, ids))


def hold_new_statement(hold: int, query: Node, ids: Sequence[int]) -> tuple[str, list[object]]:
    """The statement that puts those of ``ids`` that ``query`` matches under ``hold``. It runs
    in every commit while a hold is active: it reads the rows of ``ids`` only (a correlated
    compile), so that its cost follows the batch, not the archive's size."""
    compiled = _NEW_ARRIVALS.compile(query)
    marks = ",".join("?" * len(ids))
    return (
        "INSERT OR IGNORE INTO message_holds (hold, message) SELECT ?, m.id "
        f"FROM messages m WHERE m.id IN ({marks}) AND ({compiled.where})",
        [hold, *ids, *compiled.params],
    )


_NEW_ARRIVALS = Compiler(SqliteDialect(), correlated=True)

_HOLD_COLUMNS = (
    "h.id, h.name, h.query, h.reason, h.created_by, h.created_at, h.released_by, "
    "h.released_at, (SELECT count(*) FROM message_holds mh WHERE mh.hold = h.id)"
)


def _hold_row(r: Sequence[Any]) -> HoldRow:
    return HoldRow(
        id=int(r[0]),
        name=str(r[1]),
        query=str(r[2]),
        reason=str(r[3]),
        created_by=str(r[4]),
        created_at=_dt(int(r[5])),
        released_by=_opt(r[6]),
        released_at=None if r[7] is None else _dt(int(r[7])),
        messages=int(r[8]),
    )


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _tombstone(text: str) -> dict[str, object]:
    """A stored tombstone; an edited one that is no JSON object still reads (verify then
    reports that its hash does not match)."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"unreadable": text}


def _make_envelope(r: Sequence[Any], recipients: Sequence[Sequence[Any]]) -> Envelope:
    return Envelope(
        sender=str(r[0]),
        recipients=tuple(str(x[0]) for x in recipients),
        queue_id=_opt(r[1]),
        client_address=_opt(r[2]),
        client_name=_opt(r[3]),
        helo=_opt(r[4]),
        received=_iso(r[5]),
        source=str(r[6]),
    )


def _insert_rows(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[object]]) -> None:
    """``executemany``, skipped for no rows: most mail has no attachment, no part stored
    apart, and each call costs about what a row does (an import commits thousands a second)."""
    if rows:
        conn.executemany(sql, rows)


def _index(conn: sqlite3.Connection, command: str, message: int, entry: IndexEntry) -> None:
    """Add (``command`` ``""``) or forget (``"delete"``, which needs the exact values
    indexed) one message's full-text entry."""
    values = (message, entry.subject, entry.body, entry.names, entry.addrs, entry.attachments)
    if command:
        conn.execute(
            "INSERT INTO fts (fts, rowid, subject, body, names, addrs, attachments) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (command, *values),
        )
        return
    conn.execute(
        "INSERT INTO fts (rowid, subject, body, names, addrs, attachments) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        values,
    )


# SQLite's integers are 64-bit: an id outside them is one the catalog cannot hold, so it is
# simply not there (binding it raised OverflowError, a traceback wherever an id is read)
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1


def _loaded(t: Table, row: Sequence[Any]) -> tuple[Any, ...]:
    """A copied row as it goes in: a message's index entry is not copied (``load_rows``)."""
    if len(row) != len(t.columns):
        raise CatalogError(f"a row of {len(row)} values for {t.name}'s {len(t.columns)} columns")
    row = _converted(t, row, _hash_in)
    if t.name == "messages":
        return (*row[:14], None, row[15])
    return row


def _converted(t: Table, row: Sequence[Any], convert: Callable[[Any], object]) -> tuple[Any, ...]:
    """``row`` of ``t`` with its SHA-256 columns through ``convert``."""
    columns = _HASH_COLUMNS.get(t.name)
    if not columns:
        return tuple(row)
    out = list(row)
    for column in columns:
        i = t.columns.index(column)
        if out[i] is not None:
            out[i] = convert(out[i])
    return tuple(out)


class _SqliteRows:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path

    def rows(self, t: Table, start: object | None = None) -> Generator[tuple[Any, ...]]:
        sql = select_sql(t, param="?", start=start is not None)
        try:
            cur = self._conn.execute(sql, () if start is None else (start,))
            while batch := cur.fetchmany(1000):
                for row in batch:
                    yield _converted(t, row, _hash_out)
        except sqlite3.Error as exc:
            raise CatalogError(f"cannot read catalog {self._path}: {exc}") from exc

    def count(self, t: Table) -> int:
        return int(self._conn.execute(f'SELECT count(*) FROM "{t.name}"').fetchone()[0])

    def head(self) -> ChainEvent | None:
        r = self._conn.execute(
            "SELECT seq, prev_hash, hash FROM events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return None if r is None else ChainEvent(int(r[0]), r[1], r[2])


def _storable(value: int) -> bool:
    return _INT_MIN <= value <= _INT_MAX


def _chunks(values: Sequence[int], size: int = 500) -> Iterator[list[int]]:
    """``values`` in lists small enough for SQLite's bound-parameter limit."""
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


__all__ = ["SqliteCatalog", "like_escape"]
