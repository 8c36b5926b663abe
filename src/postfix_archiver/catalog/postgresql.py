"""The PostgreSQL catalog: ``catalog = "postgresql://USER@HOST:PORT/DB"``. See ``Catalog``.

For sites where several ``serve`` processes (several MX hosts) share one archive. The tables
are the SQLite catalog's (``postgresql_schema``); the full-text index is PostgreSQL's own
(``tsvector`` + GIN) over the tokens SQLite's index holds (``postgresql_text``), so a query
finds the same messages on either backend.

Several writers, one catalog. Every write transaction first takes one transaction-level
advisory lock (``pg_advisory_xact_lock``), held until it commits or rolls back: the chain is
one sequence of events, each hashing the one before, so reading the head and appending after
it must not interleave between processes (two writers reading the same head would fork the
chain); ids are given after every id ever used (never a removed message's) under the same
lock. The lock is what SQLite's ``BEGIN IMMEDIATE`` is to the SQLite catalog: a short,
serialized commit per batch (group commit keeps batches few), while readers never wait.
Deduplication holds even without it: ``sha256`` is UNIQUE and the row is added with
``ON CONFLICT DO NOTHING``.

The password comes from libpq's usual places (the URL, ``PGPASSWORD``, ``~/.pgpass``) and is
never logged: errors name the URL without it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.abc import Buffer
from psycopg.types.string import StrDumper, TextLoader

from ..dates import EARLIEST, EARLIEST_TS, LATEST_TS, from_timestamp, to_timestamp
from ..envelope import Envelope
from ..errors import CatalogError
from ..message import normalize_message_id
from ..search import And, Field, Node, Not, Text
from .compile import Compiler
from .postgresql_schema import MIGRATIONS
from .postgresql_text import conditions, document
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
from .tables import SERIALS, Table, TableRows, resume_sql, select_sql, upsert_sql

log = logging.getLogger("postfix_archiver.catalog")

BlobRef = tuple[str, str]

# the one advisory lock of every write transaction (any 64-bit number no other application
# of the database uses: "pfarchiv" in ASCII)
WRITE_LOCK = 0x7066617263686976
# how long a write waits for another process's write transaction before giving up (a commit
# answers Postfix: better a 451 and a retry than a listener past its timeout)
LOCK_TIMEOUT = "30s"
CONNECT_TIMEOUT = 10  # seconds
# how long a claim on queued messages holds (``queued(claim=True)``): longer than a batch
# takes to index (32 messages, an extraction timeout each at worst); a host that died leaves
# its claims to the others after this
CLAIM_SECONDS = 600

_NEXT_MESSAGE = (
    "SELECT greatest(coalesce((SELECT max(id) FROM messages), 0), "
    "coalesce((SELECT max(message) FROM events), 0)) + 1"
)
_NEXT_ENVELOPE = (
    "SELECT greatest(coalesce((SELECT max(id) FROM envelopes), 0), "
    "coalesce((SELECT max(envelope) FROM events), 0)) + 1"
)
_ACTIVE_HOLD = (
    "SELECT 1 FROM message_holds mh JOIN holds h ON h.id = mh.hold "
    "WHERE mh.message = %s AND h.released_at IS NULL LIMIT 1"
)
_PART_USED = "SELECT 1 FROM message_parts WHERE sha256 = %s LIMIT 1"
_ATTACHMENT_USED = "SELECT 1 FROM attachments WHERE sha256 = %s LIMIT 1"
_MESSAGE_COLUMNS = (
    "m.id, m.sha256, m.size, m.stored_size, m.date, m.received, m.subject, "
    "m.message_id, m.from_text, m.to_text, m.cc_text, m.attachment_count, "
    "m.defects, m.retain_until"
)


def _nocase(column: str) -> str:
    # SQLite's NOCASE: ASCII letters folded, everything else by code point ("C" collation
    # folds ASCII only and orders UTF-8 bytes, which is code point order)
    return f'lower({column} COLLATE "C")'


_ORDER_SQL: dict[str, str] = {
    "-date": "m.date DESC, m.id DESC",
    "date": "m.date ASC, m.id ASC",
    "-size": "m.size DESC, m.id DESC",
    "size": "m.size ASC, m.id ASC",
    "subject": f"{_nocase('m.subject')} ASC, m.id ASC",
    "-subject": f"{_nocase('m.subject')} DESC, m.id DESC",
    "from": f"{_nocase('m.from_text')} ASC, m.id ASC",
    "-from": f"{_nocase('m.from_text')} DESC, m.id DESC",
}


class PostgresDialect:
    param = "%s"
    # SQLite's LIKE folds ASCII letters only: so does ILIKE under the "C" collation
    like = 'COLLATE "C" ILIKE'

    def fulltext(
        self,
        terms: Sequence[Text | Field],
        params: list[object],
        *,
        correlated: bool = False,
        excluded: Sequence[Text | Field] = (),
    ) -> str:
        cond = self.match(terms, params, excluded)
        if correlated:
            return f"EXISTS (SELECT 1 FROM fts WHERE fts.message = m.id AND {cond})"
        return f"m.id IN (SELECT message FROM fts WHERE {cond})"

    @staticmethod
    def match(
        terms: Sequence[Text | Field], params: list[object], excluded: Sequence[Text | Field] = ()
    ) -> str:
        """The condition on an ``fts`` row (see ``fulltext``)."""
        found = conditions(terms, excluded)
        if found is None:
            return "FALSE"  # a term without a token: SQLite's empty phrase matches nothing
        parts = []
        for column, text, negated in found:
            params.append(text)
            test = f"fts.{column} @@ %s::tsquery"
            parts.append(f"NOT ({test})" if negated else test)
        return " AND ".join(parts)


# PostgreSQL's text cannot hold a NUL, which SQLite keeps and hostile mail carries (in a
# Subject or a display name): text goes in with NUL escaped and comes back as it was, so
# verify's comparison of a row with its message still holds. The escape character is a
# Unicode noncharacter (not for interchange), doubled where it occurs itself.
_ESC = "\ufdd0"
_UNESCAPE = re.compile(f"{_ESC}(.)", re.DOTALL)


def escape_text(value: str) -> str:
    if "\x00" not in value and _ESC not in value:
        return value
    return value.replace(_ESC, _ESC + _ESC).replace("\x00", _ESC + "0")


def unescape_text(value: str) -> str:
    if _ESC not in value:
        return value
    return _UNESCAPE.sub(lambda m: "\x00" if m.group(1) == "0" else m.group(1), value)


class _TextDumper(StrDumper):
    def dump(self, obj: str) -> Buffer | None:
        return super().dump(escape_text(obj))


class _TextLoader(TextLoader):
    def load(self, data: Buffer) -> bytes | str:
        # bytes only from a SQL_ASCII database, which holds no NUL escapes either
        value = super().load(data)
        return unescape_text(value) if isinstance(value, str) else value


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://…"
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _ts(value: datetime) -> int:
    return to_timestamp(value)


def _dt(value: int) -> datetime:
    return from_timestamp(value)


def _iso(value: object) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return EARLIEST


class _Readers:
    """Idle reading connections, lent one per query: readers never wait for the writer or
    for one another (a thread takes one, or opens one, and gives it back)."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._connect = connect
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def use(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            conn = self._connect()
        try:
            yield conn
        finally:
            # a broken connection is not given back, nor one past the few kept idle, nor
            # one that was lent when the catalog closed (a thread still reading then)
            with self._lock:
                keep = not self._closed and not conn.broken and len(self._idle) < 8
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class PostgresCatalog:
    def __init__(self, url: str, *, readonly: bool = False) -> None:
        self.url = url
        self.readonly = readonly
        self._shown = redact(url)
        self._write_lock = threading.Lock()
        self._closed = False
        self._writer: psycopg.Connection[Any] | None = None
        # who this catalog's indexer is when it claims queued messages (queued(claim=True))
        self._claimant = uuid.uuid4().hex
        self._dialect = PostgresDialect()
        self._compiler = Compiler(self._dialect)
        self._readers = _Readers(self._connect_reader)
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        version = self._version()
        if version > len(MIGRATIONS):
            raise CatalogError(
                f"catalog {self._shown} has schema version {version}, newer than this "
                f"postfix-archiver knows ({len(MIGRATIONS)}): upgrade postfix-archiver"
            )
        if self.readonly and version == 0:
            raise CatalogError(
                f"no archive in {self._shown}: nothing has been archived there yet "
                "(give --config naming the archive's catalog)"
            )
        if version < len(MIGRATIONS):
            # an archive from an older version: upgraded once, even by a command that only
            # reads (as the SQLite catalog is)
            readonly, self.readonly = self.readonly, False
            try:
                self._migrate()
            finally:
                self.readonly = readonly
                if readonly:  # the writer was for the upgrade only
                    self._close_writer()

    # -- connections -------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                application_name="postfix-archiver",
            )  # fmt: skip
        except psycopg.Error as exc:
            raise CatalogError(
                f"cannot connect to catalog {self._shown}: {_first_line(exc)} (is the "
                "server running, and the URL, ~/.pgpass or PGPASSWORD right?)"
            ) from None
        try:
            conn.adapters.register_dumper(str, _TextDumper)
            conn.adapters.register_loader("text", _TextLoader)
            conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_reader(self) -> psycopg.Connection[Any]:
        conn = self._connect()
        try:
            conn.execute("SET default_transaction_read_only = on")
        except BaseException:
            conn.close()
            raise
        return conn

    def _write_conn(self) -> psycopg.Connection[Any]:
        if self.readonly:
            raise CatalogError(f"catalog {self._shown} is open read-only")
        if self._closed:  # a thread still writing after close: no connection left open
            raise CatalogError(f"catalog {self._shown} is closed")
        if self._writer is None or self._writer.closed:
            self._writer = self._connect()
        return self._writer

    def _version(self) -> int:
        if self._query("SELECT to_regclass('schema_version')")[0][0] is None:
            return 0
        return int(self._query("SELECT coalesce(max(version), 0) FROM schema_version")[0][0])

    def _migrate(self) -> None:
        with self._write_lock:
            conn = self._write_conn()
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
                    )
                    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
                    found = row.fetchone()
                    version = int(found[0]) if found else 0
                    if version > len(MIGRATIONS):
                        raise CatalogError(
                            f"catalog {self._shown} has schema version {version}, newer than "
                            f"this postfix-archiver knows ({len(MIGRATIONS)}): upgrade "
                            "postfix-archiver"
                        )
                    for step in MIGRATIONS[version:]:
                        conn.execute(step)
                    conn.execute("DELETE FROM schema_version")
                    conn.execute(
                        "INSERT INTO schema_version (version) VALUES (%s)", (len(MIGRATIONS),)
                    )
            except psycopg.Error as exc:
                raise CatalogError(
                    f"cannot prepare catalog {self._shown}: {_first_line(exc)}"
                ) from None

    def _close_writer(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def close(self) -> None:
        with self._write_lock:
            self._closed = True
        self._close_writer()
        self._readers.close()

    # -- transactions --------------------------------------------------------------------

    @contextmanager
    def _write(self, what: str, outcome: str = "") -> Iterator[psycopg.Connection[Any]]:
        """One write transaction under the catalog's advisory lock; PostgreSQL's errors as a
        ``CatalogError`` naming what was not done (``what``; or, with ``outcome``, "cannot
        write catalog URL: the error; ``outcome``")."""
        with self._write_lock:
            conn = self._write_conn()
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                    yield conn
            except psycopg.errors.LockNotAvailable as exc:
                raise CatalogError(
                    f"catalog {self._shown} is locked by another process for over "
                    f"{LOCK_TIMEOUT}: cannot {what} now; try again"
                ) from exc
            except psycopg.OperationalError as exc:
                conn.close()
                raise CatalogError(
                    f"cannot {what}: lost the connection to catalog {self._shown}: "
                    f"{_first_line(exc)}"
                ) from None
            except psycopg.Error as exc:
                if outcome:
                    raise CatalogError(
                        f"cannot write catalog {self._shown}: {_first_line(exc)}; {outcome}"
                    ) from exc
                raise CatalogError(
                    f"cannot {what} in catalog {self._shown}: {_first_line(exc)}"
                ) from exc

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._readers.use() as conn:
                return conn.execute(sql, params).fetchall()
        except psycopg.Error as exc:
            raise CatalogError(f"catalog query failed ({self._shown}): {_first_line(exc)}") from exc

    # -- writing -----------------------------------------------------------------------

    def add_batch(
        self, arrivals: Sequence[NewArrival], seal: Sealer, holds: HoldQueries | None = None
    ) -> list[AddResult]:
        with self._write("archive mail", "mail is deferred, Postfix retries") as conn:
            results = _Batch(conn, self).add(arrivals, seal)
            if holds is not None:
                self._hold_new(conn, [r.id for r in results if r.new_envelope], holds)
        return results

    @staticmethod
    def _head(conn: psycopg.Connection[Any]) -> ChainEvent | None:
        # read under the advisory lock, so no other writer appends between this and ours
        last = conn.execute(
            "SELECT seq, prev_hash, hash FROM events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return None if last is None else ChainEvent(int(last[0]), str(last[1]), str(last[2]))

    # -- removing ----------------------------------------------------------------------

    def remove(
        self, removals: Sequence[Removal], seal: TombstoneSealer, *, rebuild: bool = False
    ) -> RemoveResult:
        with self._write("remove messages", "nothing was removed") as conn:
            result = RemoveResult({}, [], [], [])
            for removal in removals:
                rebuild |= self._remove(conn, removal, seal, result)
            if rebuild:
                self._clear_index(conn)
                result = dataclasses.replace(result, reindexed=True)
        return result

    def _remove(
        self,
        conn: psycopg.Connection[Any],
        r: Removal,
        seal: TombstoneSealer,
        result: RemoveResult,
    ) -> bool:
        """Removes one message; True if its index entry is unknown (the index is rebuilt)."""
        row = (
            conn.execute(
                "SELECT sha256, size, retain_until, indexed_with FROM messages WHERE id = %s",
                (r.message,),
            ).fetchone()
            if _storable(r.message)
            else None
        )
        if row is None:
            result.gone.append(r.message)
            return False
        if conn.execute(_ACTIVE_HOLD, (r.message,)).fetchone() is not None:
            result.held.append(r.message)
            return False
        if r.expired_before is not None and (row[2] is None or int(row[2]) > _ts(r.expired_before)):
            result.retained.append(r.message)
            return False
        sha, size = str(row[0]), int(row[1])
        envelopes = [
            _make_envelope(e[1:], _recipients(conn, e[0]))
            for e in conn.execute(
                "SELECT id, sender, queue_id, client_address, client_name, helo, received, "
                "source FROM envelopes WHERE message = %s ORDER BY id",
                (r.message,),
            ).fetchall()
        ]
        arrivals = [
            ChainEvent(int(e[0]), str(e[1]), str(e[2]))
            for e in conn.execute(
                "SELECT seq, prev_hash, hash FROM events "
                "WHERE message = %s AND tombstone IS NULL ORDER BY seq",
                (r.message,),
            ).fetchall()
        ]
        parts = [str(p[0]) for p in conn.execute(
            "SELECT sha256 FROM message_parts WHERE message = %s", (r.message,)
        ).fetchall()]  # fmt: skip
        unknown = False
        queued = conn.execute("DELETE FROM index_queue WHERE message = %s", (r.message,)).rowcount
        if queued:
            pass  # not indexed yet: it has no entry to forget
        elif r.index is not None and (r.indexed_with is None or r.indexed_with == row[3]):
            conn.execute("DELETE FROM fts WHERE message = %s", (r.message,))
        else:
            # indexed otherwise than the caller computed: as on SQLite, the index is made
            # again (this index could forget the entry without its values, but the contract
            # is one for every backend)
            conn.execute("DELETE FROM fts WHERE message = %s", (r.message,))
            unknown = True
        attachments = [str(a[0]) for a in conn.execute(
            "SELECT DISTINCT sha256 FROM attachments WHERE message = %s", (r.message,)
        ).fetchall()]  # fmt: skip
        for table in ("envelope_recipients", "envelope_imports"):
            conn.execute(
                f"DELETE FROM {table} WHERE envelope IN "
                "(SELECT id FROM envelopes WHERE message = %s)",
                (r.message,),
            )
        for table in ("envelopes", "addresses", "attachments", "message_parts", "message_holds"):
            conn.execute(f"DELETE FROM {table} WHERE message = %s", (r.message,))
        conn.execute("DELETE FROM messages WHERE id = %s", (r.message,))
        refs: list[BlobRef] = [("message", sha)]
        for part in parts:
            if conn.execute(_PART_USED, (part,)).fetchone() is None:
                conn.execute("DELETE FROM parts WHERE sha256 = %s", (part,))
                refs.append(("part", part))
        for attachment in attachments:
            if conn.execute(_ATTACHMENT_USED, (attachment,)).fetchone() is None:
                extracted = conn.execute(
                    "DELETE FROM extracts WHERE sha256 = %s RETURNING status", (attachment,)
                ).fetchone()
                if extracted is not None and extracted[0] == "ok":
                    refs.append(("text", attachment))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO removed_blobs (kind, sha256) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                refs,
            )
        last = self._head(conn)
        assert last is not None  # the message's own arrival is an event
        event, content = seal(last, Removed(r, sha, size, envelopes, arrivals))
        conn.execute(
            "INSERT INTO events (seq, message, envelope, prev_hash, hash, tombstone) "
            "VALUES (%s, %s, 0, %s, %s, %s)",
            (event.seq, r.message, event.prev_hash, event.hash, json.dumps(content)),
        )
        result.removed[r.message] = event.seq
        return unknown

    @staticmethod
    def _clear_index(conn: psycopg.Connection[Any]) -> None:
        """The index emptied and every message queued (see ``SqliteCatalog._clear_index``)."""
        conn.execute("DELETE FROM fts")
        conn.execute("UPDATE messages SET indexed_with = NULL WHERE indexed_with IS NOT NULL")
        conn.execute(
            "INSERT INTO index_queue (message, queued_at) SELECT id, %s FROM messages "
            "ON CONFLICT DO NOTHING",
            (int(time.time()),),
        )

    # -- the full-text index -----------------------------------------------------------

    def queued(
        self, limit: int, due: datetime | None = None, *, claim: bool = False
    ) -> list[tuple[int, str]]:
        bound = (_INT_MAX if due is None else _ts(due), max(0, min(limit, 1 << 20)))
        if not claim:
            rows = self._query(
                "SELECT q.message, m.sha256 FROM index_queue q JOIN messages m "
                "ON m.id = q.message WHERE q.queued_at <= %s "
                "ORDER BY q.queued_at, q.message LIMIT %s",
                bound,
            )
            return [(int(r[0]), str(r[1])) for r in rows]
        now = int(time.time())
        # the oldest not claimed by another indexer (or whose claim ran out), taken under the
        # write lock: two hosts never take the same message while both run
        with self._write("claim messages to index") as conn:
            rows = conn.execute(
                "WITH picked AS (SELECT message FROM index_queue WHERE queued_at <= %s AND "
                "(claimed_until IS NULL OR claimed_until < %s OR claimed_by = %s) "
                "ORDER BY queued_at, message LIMIT %s) "
                "UPDATE index_queue q SET claimed_by = %s, claimed_until = %s "
                "FROM picked, messages m WHERE q.message = picked.message AND m.id = q.message "
                "RETURNING q.queued_at, q.message, m.sha256",
                (bound[0], now, self._claimant, bound[1], self._claimant, now + CLAIM_SECONDS),
            ).fetchall()
        return [(int(r[1]), str(r[2])) for r in sorted(rows)]

    def index(
        self,
        entries: Sequence[Indexed],
        signature: str,
        extracts: Sequence[ExtractRecord] = (),
        holds: HoldQueries | None = None,
    ) -> list[int]:
        done: list[int] = []
        # made before the transaction: the lock is held for the writes only
        documents = {e.message: document(e.entry) for e in entries if _storable(e.message)}
        with self._write("index messages") as conn:
            for x in extracts:
                known = conn.execute(
                    "SELECT version, status FROM extracts WHERE sha256 = %s", (x.sha256,)
                ).fetchone()
                if (
                    known is not None
                    and known[0] == x.version
                    and (known[1] == "ok") != (x.status == "ok")
                ):
                    return []  # see SqliteCatalog.index: the batch stays queued
                if conn.execute(_ATTACHMENT_USED, (x.sha256,)).fetchone() is None:
                    conn.execute(
                        "INSERT INTO removed_blobs (kind, sha256) VALUES ('text', %s) "
                        "ON CONFLICT DO NOTHING",
                        (x.sha256,),
                    )
                    continue
                conn.execute(
                    "INSERT INTO extracts (sha256, version, status, detail) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (sha256) DO UPDATE SET "
                    "version = excluded.version, status = excluded.status, "
                    "detail = excluded.detail",
                    (x.sha256, x.version, x.status, x.detail),
                )
            for message, doc in documents.items():
                if not conn.execute(
                    "DELETE FROM index_queue WHERE message = %s", (message,)
                ).rowcount:
                    continue
                conn.execute(
                    "INSERT INTO fts (message, doc) VALUES (%s, %s::tsvector) "
                    "ON CONFLICT (message) DO UPDATE SET doc = excluded.doc",
                    (message, doc),
                )
                conn.execute(
                    "UPDATE messages SET indexed_with = %s WHERE id = %s", (signature, message)
                )
                done.append(message)
            if holds is not None and done:
                self._hold_new(conn, done, holds)
        return done

    def defer(self, messages: Sequence[int], until: datetime) -> None:
        with self._write("defer indexing") as conn, conn.cursor() as cur:
            cur.executemany(
                "UPDATE index_queue SET queued_at = %s WHERE message = %s",
                [(_ts(until), m) for m in messages if _storable(m)],
            )

    def extract_records(self, sha256s: Sequence[str]) -> dict[str, ExtractRecord]:
        rows = self._query(
            "SELECT sha256, version, status, detail FROM extracts WHERE sha256 = ANY(%s)",
            (list(dict.fromkeys(sha256s)),),
        )
        return {str(r[0]): ExtractRecord(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows}

    def index_status(self) -> IndexStatus:
        count, oldest = self._query("SELECT count(*), min(queued_at) FROM index_queue")[0]
        failures = self._query(
            "SELECT status, count(*) FROM extracts WHERE status NOT IN ('ok', 'unsupported') "
            'GROUP BY status ORDER BY status COLLATE "C"'
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
                    "EXISTS (SELECT 1 FROM fts d WHERE d.message = m.id) "
                    "FROM messages m WHERE m.id = %s",
                    (message,),
                ).fetchone()
                if row is None or row[1]:
                    continue
                if row[2]:
                    if entries.get(message) is None or row[0] != signature:
                        self._clear_index(conn)
                        return True
                    conn.execute("DELETE FROM fts WHERE message = %s", (message,))
                conn.execute("UPDATE messages SET indexed_with = NULL WHERE id = %s", (message,))
                conn.execute(
                    "INSERT INTO index_queue (message, queued_at) VALUES (%s, %s)", (message, now)
                )
        return False

    def rebuild_index(self) -> None:
        with self._write("rebuild the index") as conn:
            self._clear_index(conn)

    def compact_index(self, pages: int) -> bool:
        # a GIN index is merged by PostgreSQL itself (its pending list, autovacuum): there
        # are no pieces left for the catalog to merge
        return False

    def index_size(self) -> int:
        return int(self._query("SELECT count(*) FROM fts")[0][0])

    def index_check(self) -> tuple[list[int], list[int]]:
        missing = self._query(
            "SELECT m.id FROM messages m WHERE NOT EXISTS "
            "(SELECT 1 FROM index_queue q WHERE q.message = m.id) AND NOT EXISTS "
            "(SELECT 1 FROM fts d WHERE d.message = m.id) ORDER BY m.id"
        )
        stale = self._query(
            "SELECT d.message FROM fts d WHERE NOT EXISTS "
            "(SELECT 1 FROM messages m WHERE m.id = d.message) ORDER BY d.message"
        )
        return [int(r[0]) for r in missing], [int(r[0]) for r in stale]

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._write("hold the catalog's write lock (nothing was changed)"):
            yield

    def truncate_logs(self) -> list[str]:
        # PostgreSQL recycles its write-ahead log itself; nothing of the catalog's to cut
        return []

    def blob_epoch(self) -> int:
        return int(self._query("SELECT coalesce(max(seq), 0) FROM deleted_blobs")[0][0])

    def pending_blobs(self) -> list[BlobRef]:
        return [
            (str(r[0]), str(r[1]))
            for r in self._query(
                'SELECT kind, sha256 FROM removed_blobs ORDER BY kind COLLATE "C", '
                'sha256 COLLATE "C"'
            )
        ]

    def release_blobs(self, delete: Callable[[list[BlobRef]], None], *, batch: int = 200) -> int:
        """See ``Catalog.release_blobs`` and ``SqliteCatalog.release_blobs``: the intent is
        committed before any blob goes; the deletion runs under the write lock."""
        count = 0
        insert = "INSERT INTO deleted_blobs (kind, sha256) VALUES (%s, %s)"
        forget = "DELETE FROM removed_blobs WHERE kind = %s AND sha256 = %s"
        outcome = "delete blobs (the next purge or erase deletes them)"
        while True:
            with self._write(outcome) as conn, conn.cursor() as cur:
                refs = [
                    (str(r[0]), str(r[1]))
                    for r in conn.execute(
                        "SELECT kind, sha256 FROM removed_blobs LIMIT %s", (batch,)
                    ).fetchall()
                ]
                if not refs:
                    return count
                unused = [ref for ref in refs if not self._referenced(conn, ref)]
                cur.executemany(insert, unused)
                cur.executemany(forget, [ref for ref in refs if ref not in unused])
            with self._write(outcome) as conn, conn.cursor() as cur:
                unused = [ref for ref in unused if not self._referenced(conn, ref)]
                delete(unused)
                cur.executemany(insert, unused)
                cur.executemany(forget, unused)
                count += len(unused)

    @staticmethod
    def _referenced(conn: psycopg.Connection[Any], ref: BlobRef) -> bool:
        kind, sha = ref
        sql = {
            "message": "SELECT 1 FROM messages WHERE sha256 = %s",
            "part": _PART_USED,
            "text": _ATTACHMENT_USED,
        }[kind]
        return conn.execute(sql, (sha,)).fetchone() is not None

    # -- reading -----------------------------------------------------------------------

    @staticmethod
    def _row(r: Sequence[Any]) -> MessageRow:
        return MessageRow(
            id=int(r[0]),
            sha256=str(r[1]),
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
        rows = self._query("SELECT id FROM messages WHERE sha256 = %s", (sha256,))
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
        order_sql = _ORDER_SQL.get(order)
        if order_sql is None:
            raise ValueError(f"unknown order {order!r}")
        compiled = Compiler(self._dialect, own=visible_to).compile(query)
        where, params = compiled.where, compiled.params
        if visible_to is not None:
            own: list[object] = []
            where = f"{self._compiler.visible(visible_to, own)} AND ({where})"
            params = [*own, *params]
        index_only = compiled.index_only and visible_to is None
        count_sql, count_params = f"SELECT count(*) FROM messages m WHERE {where}", params
        if index_only:
            # counted in the index alone, as SQLite does (every entry is an archived
            # message's: a removal takes both in one transaction), not joined to messages
            terms, excluded = _index_terms(query)
            count_params = []
            count_sql = (
                "SELECT count(*) FROM fts WHERE "
                f"{self._dialect.match(terms, count_params, excluded)}"
            )
        page = [*params, max(0, min(limit, _INT_MAX)), max(0, min(offset, _INT_MAX))]
        try:
            with self._readers.use() as conn:
                # one round trip for the count, the page and the queue (a pipeline), not one
                # for each
                with conn.pipeline(), conn.transaction():
                    if "fts." in where:
                        # the planner prices a tsvector match like any operator, not as
                        # reading the document out of TOAST and decompressing it: for a word
                        # in most messages it read every document (1,670 ms at 20,000
                        # messages) rather than the GIN index's list of them (48 ms). Not for
                        # other searches: a scan of addresses or messages is what they need
                        conn.execute("SET LOCAL enable_seqscan = off")
                    counted = conn.execute(count_sql, count_params)
                    found = conn.execute(
                        f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE {where} "
                        f"ORDER BY {order_sql} LIMIT %s OFFSET %s",
                        page,
                    )
                    queue = conn.execute("SELECT count(*) FROM index_queue")
                total = _count(counted)
                rows = found.fetchall()
                pending = _count(queue)
                if index_only and len(rows) < limit and offset + len(rows) < total:
                    # the index counted an entry of a message that is gone: counted again
                    log.warning("the full-text index holds entries of removed messages")
                    total = _count(
                        conn.execute(f"SELECT count(*) FROM messages m WHERE {where}", params)
                    )
        except psycopg.Error as exc:
            raise CatalogError(f"catalog query failed ({self._shown}): {_first_line(exc)}") from exc
        return SearchPage(int(total), [self._row(r) for r in rows], int(pending))

    def get(self, message: int) -> MessageRow | None:
        if not _storable(message):
            return None
        rows = self._query(f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.id = %s", (message,))
        return self._row(rows[0]) if rows else None

    def envelopes(self, message: int) -> list[EnvelopeRow]:
        if not _storable(message):
            return []
        rows = self._query(
            "SELECT id, message, sender, queue_id, client_address, client_name, helo, "
            "received, source, retention, tags FROM envelopes WHERE message = %s ORDER BY id",
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
            "SELECT address FROM envelope_recipients WHERE envelope = %s ORDER BY position",
            (envelope_id,),
        )
        return _make_envelope(r, recipients)

    def attachments(self, message: int) -> list[AttachmentRow]:
        if not _storable(message):
            return []
        rows = self._query(
            "SELECT message, position, filename, content_type, size, sha256 "
            "FROM attachments WHERE message = %s ORDER BY position",
            (message,),
        )
        return [
            AttachmentRow(int(r[0]), int(r[1]), str(r[2]), str(r[3]), int(r[4]), str(r[5]))
            for r in rows
        ]

    def held(self, messages: Sequence[int]) -> set[int]:
        rows = self._query(
            "SELECT DISTINCT mh.message FROM message_holds mh JOIN holds h ON h.id = mh.hold "
            "WHERE h.released_at IS NULL AND mh.message = ANY(%s)",
            ([m for m in messages if _storable(m)],),
        )
        return {int(r[0]) for r in rows}

    def active_holds_of(self, messages: Sequence[int]) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {}
        for message, name in self._query(
            "SELECT mh.message, h.name FROM message_holds mh JOIN holds h ON h.id = mh.hold "
            'WHERE h.released_at IS NULL AND mh.message = ANY(%s) ORDER BY h.name COLLATE "C"',
            ([m for m in messages if _storable(m)],),
        ):
            found.setdefault(int(message), []).append(str(name))
        return found

    def index_signatures(self, messages: Sequence[int]) -> dict[int, str | None]:
        rows = self._query(
            "SELECT id, indexed_with FROM messages WHERE id = ANY(%s)",
            ([m for m in messages if _storable(m)],),
        )
        return {int(m): _opt(s) for m, s in rows}

    def expired(self, now: datetime) -> Iterator[MessageRow]:
        last = 0
        while True:
            rows = self._query(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.retain_until IS NOT NULL "
                "AND m.retain_until <= %s AND m.id > %s ORDER BY m.id LIMIT 1000",
                (_ts(now), last),
            )
            if not rows:
                return
            yield from (self._row(r) for r in rows)
            last = int(rows[-1][0])

    @staticmethod
    def _thread(conn: psycopg.Connection[Any], key: str, parent: str) -> str:
        if parent:
            found = conn.execute(
                "SELECT thread FROM messages WHERE message_id = %s AND thread IS NOT NULL "
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
        where = "m.thread = (SELECT thread FROM messages WHERE id = %s AND thread != '')"
        if visible_to is not None:
            where = f"{where} AND {self._compiler.visible(visible_to, params)}"
        rows = self._query(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE {where} "
            "ORDER BY m.date, m.id LIMIT %s",
            [*params, max(0, min(limit, _INT_MAX))],
        )
        return [self._row(r) for r in rows]

    def threads(self, messages: Sequence[int]) -> dict[int, str]:
        rows = self._query(
            "SELECT id, thread FROM messages WHERE id = ANY(%s) AND thread != ''",
            ([m for m in messages if _storable(m)],),
        )
        return {int(i): str(t) for i, t in rows}

    def unthreaded(self, limit: int) -> list[tuple[int, str]]:
        rows = self._query(
            "SELECT id, sha256 FROM messages WHERE thread IS NULL ORDER BY id LIMIT %s",
            (max(0, min(limit, _INT_MAX)),),
        )
        return [(int(i), str(sha)) for i, sha in rows]

    def set_threads(self, threads: Sequence[tuple[int, str, str]]) -> None:
        with self._write("record conversations") as conn:
            for message, key, parent in threads:
                if _storable(message):
                    conn.execute(
                        "UPDATE messages SET thread = %s WHERE id = %s AND thread IS NULL",
                        (self._thread(conn, key, parent), message),
                    )

    def start_import(self, source: str, when: datetime) -> int:
        with self._write("record an import") as conn:
            return _one(
                conn,
                "INSERT INTO imports (source, started) VALUES (%s, %s) RETURNING id",
                (source, _ts(when)),
            )

    def record_import_origins(self, run: int, origins: Sequence[tuple[int, str]]) -> None:
        with self._write("record where imported mail came from") as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO envelope_imports (envelope, import, origin) "
                "SELECT envelope, %s, %s FROM events WHERE seq = %s AND tombstone IS NULL "
                "ON CONFLICT DO NOTHING",
                [(run, origin, seq) for seq, origin in origins if _storable(seq)],
            )

    def import_cursor(self, source: str) -> str | None:
        rows = self._query("SELECT cursor FROM import_cursors WHERE source = %s", (source,))
        return str(rows[0][0]) if rows else None

    def set_import_cursors(self, cursors: Sequence[tuple[str, str]]) -> None:
        if not cursors:
            return
        with self._write("record where an import stopped") as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO import_cursors (source, cursor) VALUES (%s, %s) "
                "ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor",
                cursors,
            )

    def finish_import(self, run: int, when: datetime) -> None:
        if not _storable(run):
            return
        with self._write("record an import") as conn:
            conn.execute("UPDATE imports SET finished = %s WHERE id = %s", (_ts(when), run))

    def import_origins(self, envelopes: Sequence[int]) -> dict[int, ImportOrigin]:
        rows = self._query(
            "SELECT o.envelope, o.origin, i.source, i.started, i.finished "
            "FROM envelope_imports o JOIN imports i ON i.id = o.import "
            "WHERE o.envelope = ANY(%s)",
            ([e for e in envelopes if _storable(e)],),
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
        return bool(self._query(f"SELECT 1 FROM messages m WHERE m.id = %s AND {cond}", params))

    def messages(self) -> Iterator[MessageRow]:
        last = _INT_MIN
        while True:
            rows = self._query(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.id > %s "
                "ORDER BY m.id LIMIT 1000",
                (last,),
            )
            if not rows:
                return
            yield from (self._row(r) for r in rows)
            last = int(rows[-1][0])

    def chain(self) -> Iterator[ChainLink]:
        last = _INT_MIN
        while True:
            rows = self._query(
                "SELECT e.seq, e.prev_hash, e.hash, e.message, e.envelope, m.sha256, m.size, "
                "v.id, v.sender, v.queue_id, v.client_address, v.client_name, v.helo, "
                "v.received, v.source, e.tombstone FROM events e "
                "LEFT JOIN messages m ON m.id = e.message "
                "LEFT JOIN envelopes v ON v.id = e.envelope AND v.message = e.message "
                "WHERE e.seq > %s ORDER BY e.seq LIMIT 1000",
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
                    message_sha256=_opt(r[5]),
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
                "SELECT seq, prev_hash, hash FROM events WHERE seq > %s ORDER BY seq LIMIT 5000",
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
        """See ``Catalog.snapshot``: one REPEATABLE READ transaction on a connection of its
        own; rows streamed through a server-side cursor."""
        conn = self._connect_reader()
        try:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction():
                yield _PostgresRows(conn, self._shown)
        except psycopg.Error as exc:
            raise CatalogError(f"cannot read catalog {self._shown}: {_first_line(exc)}") from None
        finally:
            conn.close()

    def load_rows(self, t: Table, rows: Sequence[Sequence[Any]]) -> int:
        """See ``Catalog.load_rows``."""
        values = [_loaded(t, r) for r in rows]
        with self._write(f"copy {t.name}") as conn, conn.cursor() as cur:
            # pipelined: one round trip for the batch, not one a row
            cur.executemany(upsert_sql(t, "%s"), values)
            if t.name == "messages" and values:
                # queued for the index as an arrival is: the entry is built, not copied
                cur.execute(
                    "INSERT INTO index_queue (message, queued_at) SELECT id, %s "
                    "FROM messages WHERE id = ANY(%s) AND indexed_with IS NULL "
                    "ON CONFLICT DO NOTHING",
                    (int(time.time()), [v[0] for v in values]),
                )
        return len(values)

    def copied_upto(self, t: Table) -> object | None:
        """See ``Catalog.copied_upto``."""
        found: object | None = self._query(resume_sql(t))[0][0]
        return found

    def finish_load(self) -> None:
        """See ``Catalog.finish_load``: the sequences past the copied ids."""
        with self._write("finish the copy") as conn:
            for name, column in SERIALS:
                conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{name}', '{column}'), "
                    f"coalesce((SELECT max({column}) FROM {name}), 0) + 1, false)"
                )

    def stats(self) -> Stats:
        m = self._query(
            "SELECT count(*), coalesce(sum(size), 0), coalesce(sum(stored_size), 0),"
            " min(date), max(date) FROM messages"
        )[0]
        p = self._query("SELECT count(*), coalesce(sum(stored_size), 0) FROM parts")[0]
        e = self._query("SELECT count(*) FROM envelopes")[0]
        size = self._query("SELECT pg_database_size(current_database())")[0][0]
        return Stats(
            messages=int(m[0]),
            envelopes=int(e[0]),
            raw_bytes=int(m[1]),
            stored_bytes=int(m[2]) + int(p[1]),
            parts=int(p[0]),
            catalog_bytes=int(size),
            first_date=None if m[3] is None else _dt(int(m[3])),
            last_date=None if m[4] is None else _dt(int(m[4])),
            index=self.index_status(),
        )

    def per_day(
        self, since: datetime | None = None, *, by: Literal["date", "arrival"] = "date"
    ) -> list[tuple[str, int, int]]:
        column = "received" if by == "arrival" else "date"  # one of two names, never input
        rows = self._query(
            "SELECT to_char(to_timestamp(least(greatest("
            f"{column}, %s), %s)) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, count(*), "
            f"sum(size) FROM messages WHERE {column} >= %s GROUP BY day ORDER BY day",
            (EARLIEST_TS, LATEST_TS, _ts(since) if since else _INT_MIN),
        )
        return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    # -- retention and legal holds -------------------------------------------------------

    def set_retain_until(self, changes: Sequence[tuple[int, datetime | None]]) -> int:
        count = 0
        with self._write("set retention") as conn:
            for m, until in changes:
                if _storable(m):
                    count += conn.execute(
                        "UPDATE messages SET retain_until = %s WHERE id = %s",
                        (None if until is None else _ts(until), m),
                    ).rowcount
        return count

    def add_hold(
        self, name: str, query_text: str, query: Node, reason: str, who: str, when: datetime
    ) -> HoldRow | None:
        compiled = self._compiler.compile(query)
        with self._write("add a hold") as conn:
            if conn.execute(
                f"SELECT 1 FROM holds WHERE {_nocase('name')} = {_nocase('%s')}", (name,)
            ).fetchone():
                return None
            hold = _one(
                conn,
                "INSERT INTO holds (name, query, reason, created_by, created_at) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (name, query_text, reason, who, _ts(when)),
            )
            conn.execute(
                "INSERT INTO message_holds (hold, message) "
                f"SELECT %s, m.id FROM messages m WHERE {compiled.where} ON CONFLICT DO NOTHING",
                [hold, *compiled.params],
            )
        return self.hold(name)

    def release_hold(self, name: str, who: str, when: datetime) -> HoldRow | None:
        with self._write("release a hold") as conn:
            conn.execute(
                "UPDATE holds SET released_by = %s, released_at = %s "
                f"WHERE {_nocase('name')} = {_nocase('%s')} AND released_at IS NULL",
                (who, _ts(when), name),
            )
        return self.hold(name)

    def hold(self, name: str) -> HoldRow | None:
        rows = self._query(
            f"SELECT {_HOLD_COLUMNS} FROM holds h WHERE {_nocase('h.name')} = {_nocase('%s')}",
            (name,),
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
            "(SELECT hold FROM message_holds WHERE message = %s) ORDER BY h.id",
            (message,),
        )
        return [_hold_row(r) for r in rows]

    def _hold_new(
        self, conn: psycopg.Connection[Any], messages: Sequence[int], holds: HoldQueries
    ) -> None:
        """Puts the batch's new arrivals under the active holds whose query they match, read
        inside the commit (see ``SqliteCatalog._hold_new``)."""
        active = conn.execute(
            "SELECT id, query FROM holds WHERE released_at IS NULL ORDER BY id"
        ).fetchall()
        ids = sorted(set(messages))
        if not active or not ids:
            return
        for hold, node in holds([(int(i), str(q)) for i, q in active]):
            compiled = _NEW_ARRIVALS.compile(node)
            conn.execute(
                "INSERT INTO message_holds (hold, message) SELECT %s, m.id FROM messages m "
                f"WHERE m.id = ANY(%s) AND ({compiled.where}) ON CONFLICT DO NOTHING",
                [hold, ids, *compiled.params],
            )


def _count(cursor: psycopg.Cursor[Any]) -> int:
    row = cursor.fetchone()
    return int(row[0]) if row is not None else 0


def _index_terms(node: Node) -> tuple[list[Text | Field], list[Text | Field]]:
    """The terms and the excluded terms of a query that is one full-text lookup
    (``Compiled.index_only``), as ``Compiler`` gives them to the dialect."""
    if isinstance(node, Text | Field):
        return [node], []
    assert isinstance(node, And)
    terms = [c for c in node.children if isinstance(c, Text | Field)]
    excluded = [c.child for c in node.children if isinstance(c, Not)]
    return terms, [c for c in excluded if isinstance(c, Text | Field)]


def _show(addrs: Sequence[object]) -> str:
    return ", ".join(str(x) for x in addrs)


class _Batch:
    """One ``add_batch`` as a few statements for the whole batch, not a dozen round trips
    per arrival: what exists is read once, ids and chain events are given here (under the
    advisory lock no other writer gives any meanwhile), and the rows go in with
    ``executemany`` (pipelined). The outcome is the SQLite catalog's arrival by arrival:
    a message that comes twice in one batch is new once, an envelope recorded once."""

    def __init__(self, conn: psycopg.Connection[Any], catalog: PostgresCatalog) -> None:
        self.conn = conn
        self.catalog = catalog

    def add(self, arrivals: Sequence[NewArrival], seal: Sealer) -> list[AddResult]:
        conn = self.conn
        shas = list(dict.fromkeys(a.sha256 for a in arrivals))
        ids: dict[str, int] = {
            str(sha): int(i)
            for i, sha in conn.execute(
                "SELECT id, sha256 FROM messages WHERE sha256 = ANY(%s)", (shas,)
            ).fetchall()
        }
        fresh: dict[str, NewArrival] = {}  # the first arrival of each new message
        for a in arrivals:
            if a.sha256 not in ids and a.sha256 not in fresh:
                fresh[a.sha256] = a
        self._check_blobs(list(fresh.values()))
        ids.update(self._insert_messages(list(fresh.values())))
        recorded = {
            (int(m), str(k))
            for m, k in conn.execute(
                "SELECT message, env_key FROM envelopes WHERE message = ANY(%s)",
                (list(set(ids.values())),),
            ).fetchall()
        }
        next_envelope = _one(conn, _NEXT_ENVELOPE)
        head = self.catalog._head(conn)
        results: list[AddResult] = []
        envelopes: list[tuple[object, ...]] = []
        recipients: list[tuple[object, ...]] = []
        addresses: list[tuple[object, ...]] = []
        events: list[tuple[object, ...]] = []
        extended: list[dict[str, object]] = []
        made: set[str] = set()
        for a in arrivals:
            message, env = ids[a.sha256], a.envelope
            new_message = a.sha256 in fresh and a.sha256 not in made
            made.add(a.sha256)
            if (message, env.key) in recorded:
                results.append(AddResult(message, new_message, False, None))
                continue
            recorded.add((message, env.key))
            if not new_message:  # a new arrival keeps the message at least as long as it says
                until = None if a.retain_until is None else _ts(a.retain_until)
                extended.append({"until": until, "id": message})
            envelope_id, next_envelope = next_envelope, next_envelope + 1
            envelopes.append((
                envelope_id, message, env.key, env.sender, env.queue_id, env.client_address,
                env.client_name, env.helo, env.canonical()["received"], env.source,
                a.retention, json.dumps(list(a.tags)),
            ))  # fmt: skip
            recipients.extend((envelope_id, i, r) for i, r in enumerate(env.recipients))
            addresses.extend((message, "rcpt", r.lower(), "") for r in env.recipients)
            if env.sender:
                addresses.append((message, "sender", env.sender.lower(), ""))
            head = seal(head, a)
            events.append((head.seq, message, envelope_id, head.prev_hash, head.hash))
            results.append(AddResult(message, new_message, True, head.seq))
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE messages SET retain_until = CASE WHEN retain_until IS NULL "
                "OR %(until)s::bigint IS NULL THEN NULL "
                "ELSE greatest(retain_until, %(until)s::bigint) END WHERE id = %(id)s",
                extended,
            )
            cur.executemany(
                "INSERT INTO envelopes (id, message, env_key, sender, queue_id, "
                "client_address, client_name, helo, received, source, retention, tags) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                envelopes,
            )
            cur.executemany(
                "INSERT INTO envelope_recipients (envelope, position, address) VALUES (%s, %s, %s)",
                recipients,
            )
            cur.executemany(
                "INSERT INTO addresses (message, kind, address, name) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                addresses,
            )
            cur.executemany(
                "INSERT INTO events (seq, message, envelope, prev_hash, hash) "
                "VALUES (%s, %s, %s, %s, %s)",
                events,
            )
        return results

    def _check_blobs(self, fresh: Sequence[NewArrival]) -> None:
        """A new message row only if the blobs it was staged with are still there (see
        ``SqliteCatalog._check_blobs``), checked for the whole batch in two statements."""
        staged = [a for a in fresh if a.blob_epoch is not None]
        if not staged:
            return
        for a in staged:
            if a.stored_size == 0:  # staged as known bytes, and the message was removed since
                raise CatalogError(f"message {a.sha256} was removed while it arrived again: retry")
        shas = list({s for a in staged for s in (a.sha256, *(p.sha256 for p in a.parts))})
        epoch = min(a.blob_epoch for a in staged if a.blob_epoch is not None)
        deleted: dict[str, int] = {}
        for seq, sha in self.conn.execute(
            "SELECT max(seq), sha256 FROM deleted_blobs WHERE seq > %s AND sha256 = ANY(%s) "
            "GROUP BY sha256",
            (epoch, shas),
        ).fetchall():
            deleted[str(sha)] = int(seq)
        in_flight = {
            (str(k), str(s))
            for k, s in self.conn.execute(
                "SELECT r.kind, r.sha256 FROM removed_blobs r WHERE r.sha256 = ANY(%s) "
                "AND EXISTS (SELECT 1 FROM deleted_blobs d WHERE d.kind = r.kind "
                "AND d.sha256 = r.sha256)",
                (shas,),
            ).fetchall()
        }
        for a in staged:
            assert a.blob_epoch is not None
            mine = [a.sha256, *(p.sha256 for p in a.parts)]
            if any(deleted.get(s, 0) > a.blob_epoch for s in mine):
                raise CatalogError(
                    f"a blob of message {a.sha256} was removed while it arrived: retry"
                )
            if ("message", a.sha256) in in_flight or any(
                ("part", p.sha256) in in_flight for p in a.parts
            ):
                raise CatalogError(
                    f"a blob of message {a.sha256} is being removed: retry (a purge or erase "
                    "interrupted while deleting blobs is finished by running `purge` again)"
                )

    def _insert_messages(self, fresh: Sequence[NewArrival]) -> dict[str, int]:
        """The new messages' rows (and their addresses, attachments, parts, queue rows):
        their ids by SHA-256."""
        if not fresh:
            return {}
        conn = self.conn
        next_id = _one(conn, _NEXT_MESSAGE)
        ids = {a.sha256: next_id + n for n, a in enumerate(fresh)}
        threads = self._threads(fresh, ids)
        now = int(time.time())
        with conn.cursor() as cur:
            # sha256 is UNIQUE: were another writer to add the same bytes (every writer
            # takes the advisory lock first, so none can), this one would fail and retry
            cur.executemany(
                "INSERT INTO messages (id, sha256, size, stored_size, date, received, "
                "message_id, subject, from_text, to_text, cc_text, attachment_count, defects, "
                "retain_until, indexed_with, thread) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s, %s, %s, %s, %s, NULL, %s)",
                [
                    (
                        ids[a.sha256], a.sha256, a.size, a.stored_size, _ts(a.date),
                        _ts(a.envelope.received), normalize_message_id(a.message_id),
                        a.subject, _show(a.from_), _show(a.to), _show(a.cc),
                        len(a.attachments), json.dumps(a.defects),
                        None if a.retain_until is None else _ts(a.retain_until),
                        threads[a.sha256],
                    )
                    for a in fresh
                ],
            )  # fmt: skip
            cur.executemany(
                "INSERT INTO addresses (message, kind, address, name) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                [
                    (ids[a.sha256], kind, addr.address.lower(), addr.name)
                    for a in fresh
                    for kind, addrs in (("from", a.from_), ("to", a.to), ("cc", a.cc))
                    for addr in addrs
                    if addr.address
                ],
            )
            cur.executemany(
                "INSERT INTO attachments (message, position, filename, content_type, size, "
                "sha256) VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    (ids[a.sha256], x.index, x.filename, x.content_type, x.size, x.sha256)
                    for a in fresh
                    for x in a.attachments
                ],
            )
            cur.executemany(
                "INSERT INTO parts (sha256, stored_size) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [(p.sha256, p.stored_size) for a in fresh for p in a.parts],
            )
            cur.executemany(
                "INSERT INTO message_parts (message, sha256) VALUES (%s, %s) "
                "ON CONFLICT DO NOTHING",
                [(ids[a.sha256], p.sha256) for a in fresh for p in a.parts],
            )
            # indexed later, by the indexer: the answer to Postfix waits for the row only
            cur.executemany(
                "INSERT INTO index_queue (message, queued_at) VALUES (%s, %s) "
                "ON CONFLICT DO NOTHING",
                [(ids[a.sha256], now) for a in fresh],
            )
        return ids

    def _threads(self, fresh: Sequence[NewArrival], ids: dict[str, int]) -> dict[str, str]:
        """Each new message's conversation: its key, or that of the archived message its
        parent names (archived before, or earlier in this batch: the lowest id wins)."""
        parents = list({a.thread_parent for a in fresh if a.thread_parent})
        known: dict[str, str] = {}
        if parents:
            for message_id, thread in self.conn.execute(
                "SELECT DISTINCT ON (message_id) message_id, thread FROM messages "
                "WHERE message_id = ANY(%s) AND thread IS NOT NULL AND thread != '' "
                "ORDER BY message_id, id",
                (parents,),
            ).fetchall():
                known[str(message_id)] = str(thread)
        threads: dict[str, str] = {}
        for a in sorted(fresh, key=lambda a: ids[a.sha256]):
            thread = known.get(a.thread_parent, a.thread) if a.thread_parent else a.thread
            threads[a.sha256] = thread
            own = normalize_message_id(a.message_id)
            if thread and own not in known:
                known[own] = thread
        return threads


_NEW_ARRIVALS = Compiler(PostgresDialect(), correlated=True)

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


def _one(conn: psycopg.Connection[Any], sql: str, params: Sequence[object] = ()) -> int:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def _recipients(conn: psycopg.Connection[Any], envelope_id: object) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT address FROM envelope_recipients WHERE envelope = %s ORDER BY position",
        (envelope_id,),
    ).fetchall()


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _tombstone(text: str) -> dict[str, object]:
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


# PostgreSQL's bigint: an id outside it is one the catalog cannot hold, so it is not there
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1


def _loaded(t: Table, row: Sequence[Any]) -> tuple[Any, ...]:
    """A copied row as it goes in: a message's index entry is not copied (``load_rows``)."""
    if len(row) != len(t.columns):
        raise CatalogError(f"a row of {len(row)} values for {t.name}'s {len(t.columns)} columns")
    if t.name == "messages":
        return (*row[:14], None, row[15])
    return tuple(row)


class _PostgresRows:
    def __init__(self, conn: psycopg.Connection[Any], shown: str) -> None:
        self._conn = conn
        self._shown = shown

    def rows(self, t: Table, start: object | None = None) -> Generator[tuple[Any, ...]]:
        sql = select_sql(t, param="%s", start=start is not None)
        with self._conn.cursor(name=f"copy_{t.name}") as cur:
            cur.itersize = 1000
            cur.execute(sql, () if start is None else (start,))
            yield from cur

    def count(self, t: Table) -> int:
        return _one(self._conn, f'SELECT count(*) FROM "{t.name}"')

    def head(self) -> ChainEvent | None:
        r = self._conn.execute(
            "SELECT seq, prev_hash, hash FROM events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return None if r is None else ChainEvent(int(r[0]), r[1], r[2])


def _storable(value: int) -> bool:
    return _INT_MIN <= value <= _INT_MAX


__all__ = ["PostgresCatalog", "redact"]
