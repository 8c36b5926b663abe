"""Copying an archive to other backends (``postfix-archiver migrate --to CONFIG``): SQLite +
files to PostgreSQL + S3, back, or any mix.

Nothing is re-ingested: the catalog's rows go over as they are (``catalog.tables``: ids,
chain hashes, envelopes, holds, tombstones, import records), the blobs by name with their
bytes unchanged (sealed blobs stay sealed: the target needs the same key file; compression
dictionaries ``d/`` go with them). Only the full-text index is built anew at the target,
from the blobs, as ``reindex`` would (the backends' indexes hold tokens, not text).

In order, each step resumable (a re-run after ``kill -9`` goes on where the last stopped):

1. the catalog, from one consistent read of the source (a snapshot: mail may go on
   arriving there), table by table in batches, each batch one transaction at the target;
   then each table's rows compared with the source's as a whole (an order-free digest);
2. the blobs the target lacks, read and written in batches;
3. the index of every copied message not indexed yet;
4. ``verify`` of the target, then its message count and chain head against the snapshot's.

A target is accepted empty, or holding an earlier run of this copy (its chain a prefix of
the source's): anything else is another archive, refused. Mail that reached the source
after the snapshot is copied by the next run (copy while ``serve`` runs, stop it, run
again to catch up, switch the config).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..catalog import TABLES, Catalog, ChainEvent, Table, TableRows, open_catalog
from ..config import Config
from ..dates import from_timestamp
from ..errors import MigrationError
from ..store import BlobStore, open_store
from ..store.keyring import Keyring, load_key_file

ROWS_PER_BATCH = 2000
BLOBS_PER_BATCH = 128
BLOB_BYTES_PER_BATCH = 16 << 20
READERS = 4  # blobs read at once (an S3 GET waits on the network, not the CPU)
_TOTAL = 1 << 256


class Phase(Protocol):
    """A progress bar: ``phase(total, unit, description)`` gives ``advance(n)`` for a block
    (``cli.common.progress``)."""

    def __call__(
        self, total: int | None, unit: str, description: str
    ) -> contextlib.AbstractContextManager[Callable[[int], None]]: ...


@contextlib.contextmanager
def no_progress(total: int | None, unit: str, description: str) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


@dataclass
class MigrationReport:
    messages: int = 0
    head: ChainEvent | None = None
    resumed: bool = False
    rows: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    indexed: int = 0
    repaired: list[str] = field(default_factory=list)  # tables read again whole at the end
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def migrate(
    source: Config,
    target: Config,
    *,
    phase: Phase = no_progress,
    say: Callable[[str], None] = lambda line: None,
    batch: int = ROWS_PER_BATCH,
) -> MigrationReport:
    """Copies the archive of ``source`` to the backends of ``target`` (see the module);
    ``batch``: catalog rows per transaction at the target."""
    check_backends(source, target)
    report = MigrationReport()
    report.notes += _check_keys(source, target)
    # both stores opened (a bad URL, bucket or endpoint refused) before anything is written
    src_store, dst_store = _raw_stores(source, target)
    try:
        src_catalog = open_catalog(source.archive.catalog_url, readonly=True)
        try:
            # the target's schema is made (or found too new: its error says so) here
            dst_catalog = open_catalog(target.archive.catalog_url)
            try:
                locks = _copy_catalog(src_catalog, dst_catalog, target, report, phase, say, batch)
            finally:
                dst_catalog.close()
        finally:
            src_catalog.close()
        _copy_blobs(src_store, dst_store, source, locks, report, phase, say)
        _index(target, _ReadSource(src_store, dst_store), report, phase, say)
    finally:
        src_store.close()
        dst_store.close()
    _verify(target, report, phase)
    return report


# -- what is refused before anything is written ---------------------------------------------


def check_backends(source: Config, target: Config) -> None:
    """Refuses a target that shares a backend with the source (a copy onto itself)."""
    s, t = source.archive, target.archive
    if _place(s.catalog_url) == _place(t.catalog_url):
        raise MigrationError(
            f"the target's catalog is the source's ({shown(t.catalog_url)}): give --to a "
            "config naming another catalog"
        )
    if _place(s.store_url) == _place(t.store_url):
        raise MigrationError(
            f"the target's store is the source's ({shown(t.store_url)}): give --to a "
            "config naming another store"
        )


def _place(url: str) -> tuple[str, ...]:
    """Where a backend URL points, whatever the user, password or options say."""
    for prefix in ("sqlite://", "file://"):
        if url.startswith(prefix):
            return (prefix, str(Path(url.removeprefix(prefix)).resolve()))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ("?", url)
    if parts.scheme in ("postgresql", "postgres"):
        return ("postgresql", parts.hostname or "", str(port or 5432), parts.path)
    if parts.scheme == "s3":
        return ("s3", parts.netloc, parts.path.strip("/"))
    return (parts.scheme, url)


def shown(url: str) -> str:
    """A backend URL to show: no password, no options."""
    if not url.startswith(("postgresql:", "postgres:")):
        return url.split("?")[0]
    from ..catalog.postgresql import redact  # psycopg only where PostgreSQL is named

    return redact(url)


def _check_keys(source: Config, target: Config) -> list[str]:
    """Sealed blobs are copied sealed, under names keyed by the name secret: the target
    must hold the source's keys. Returns what the operator should know."""
    if not source.archive.encrypted:
        if target.archive.encrypted:
            return [
                "the source's blobs are not encrypted: they are copied as they are and stay "
                "readable; `postfix-archiver keys rewrap --config TARGET` seals them"
            ]
        return []
    if not target.archive.encrypted:
        raise MigrationError(
            'the source\'s blobs are encrypted: set encryption = "aes-256-gcm" and key_file '
            "(the source's key file, or a copy) in the target's [archive]"
        )
    ring = load_key_file(source.archive.key_file)
    theirs = load_key_file(target.archive.key_file)
    missing = [k.id for k in ring.keys if theirs.get(k.id) != k.key]
    if missing or not hmac.compare_digest(ring.name_secret, theirs.name_secret):
        raise MigrationError(
            f"the target's key file {target.archive.key_file} does not hold the source's keys "
            f"({', '.join(missing) or 'another name secret'}): use a copy of "
            f"{source.archive.key_file}"
        )
    return []


# -- the catalog --------------------------------------------------------------------------


def _copy_catalog(
    src: Catalog,
    dst: Catalog,
    target: Config,
    report: MigrationReport,
    phase: Phase,
    say: Callable[[str], None],
    batch: int,
) -> dict[str, datetime]:
    started = time.monotonic()
    with src.snapshot() as snap:
        report.head = head = snap.head()
        was = _check_target(snap, dst, head)
        report.resumed = was is not None
        touched = _first_touched(snap, was)
        counts = {t.name: snap.count(t) for t in TABLES}
        report.messages = counts["messages"]
        if report.resumed:
            say(f"resuming an earlier copy: the target holds the chain up to event {was}")
        with phase(sum(counts.values()), "rows", "catalog") as advance:
            for t in TABLES:
                start = _start(dst, t, touched)
                report.rows += _copy_table(snap, dst, t, start, advance, batch)
        dst.finish_load()
        report.repaired = _compare(snap, dst, phase)
        locks = _locks(snap) if target.archive.store_url.startswith("s3://") else {}
    report.seconds["catalog"] = time.monotonic() - started
    say(f"catalog: {report.rows} rows copied in {report.seconds['catalog']:.1f}s")
    return locks


def _check_target(snap: TableRows, dst: Catalog, head: ChainEvent | None) -> int | None:
    """None for an empty target; the seq of its chain head for an earlier run of this copy;
    ``MigrationError`` for anything else."""
    theirs = dst.last_event()
    if theirs is None:
        full = [t.name for t in TABLES if dst.copied_upto(t) is not None]
        if full:
            raise MigrationError(
                f"the target's catalog {shown(dst.url)} is not empty (it has {full[0]} but "
                "no chain): migrate copies into an empty catalog only"
            )
        return None
    with contextlib.closing(snap.rows(TABLES[0], theirs.seq)) as rows:
        ours = next(rows, None) if head is not None else None
    if ours is None or int(ours[0]) != theirs.seq or ours[4] != theirs.hash:
        raise MigrationError(
            f"the target's catalog {shown(dst.url)} holds another archive (its chain is not "
            "a part of the source's): migrate copies into an empty catalog only, or resumes "
            "its own earlier copy"
        )
    return theirs.seq


def _first_touched(snap: TableRows, was: int | None) -> int | None:
    """The lowest message given an envelope (or a tombstone) since event ``was``: the rows
    of older messages can have grown since."""
    if was is None:
        return None
    low = [int(r[1]) for r in snap.rows(TABLES[0], was + 1) if int(r[0]) > was]
    return min(low, default=None)


def _start(dst: Catalog, t: Table, touched: int | None) -> object | None:
    if t.resume == "all":
        return None
    upto = dst.copied_upto(t)
    if upto is None or t.resume == "key" or touched is None:
        return upto
    return min(int(str(upto)), touched)


def _copy_table(
    snap: TableRows,
    dst: Catalog,
    t: Table,
    start: object | None,
    advance: Callable[[int], None],
    size: int = ROWS_PER_BATCH,
) -> int:
    done = 0
    batch: list[tuple[Any, ...]] = []
    for row in snap.rows(t, start):
        batch.append(row)
        if len(batch) >= size:
            done += dst.load_rows(t, batch)
            advance(len(batch))
            batch = []
    if batch:
        done += dst.load_rows(t, batch)
        advance(len(batch))
    return done


def table_digest(rows: Iterator[tuple[Any, ...]], t: Table) -> tuple[int, int]:
    """(rows, an order-free digest of them): the backends order text alike only for ASCII.
    A message's index signature is left out (the target's own)."""
    skip = t.columns.index("indexed_with") if "indexed_with" in t.columns else -1
    count, total = 0, 0
    for row in rows:
        values = [None if i == skip else v for i, v in enumerate(row)]
        digest = hashlib.sha256(repr(values).encode("utf-8", "surrogatepass")).digest()
        total = (total + int.from_bytes(digest, "big")) % _TOTAL
        count += 1
    return count, total


def _compare(snap: TableRows, dst: Catalog, phase: Phase) -> list[str]:
    """Every table's rows against the source's; a table that differs (rows changed at the
    source between an earlier run and this one) is read again whole, then must match."""
    repaired: list[str] = []
    with dst.snapshot() as theirs, phase(len(TABLES), "tables", "comparing") as advance:
        for t in TABLES:
            ours = table_digest(snap.rows(t), t)
            if table_digest(theirs.rows(t), t) != ours:
                repaired.append(t.name)
                _copy_table(snap, dst, t, None, lambda n: None)
            advance(1)
    if not repaired:
        return []
    with dst.snapshot() as theirs:
        for name in repaired:
            t = next(t for t in TABLES if t.name == name)
            count, digest = table_digest(theirs.rows(t), t)
            if (count, digest) != table_digest(snap.rows(t), t):
                raise MigrationError(
                    f"the target's {name} ({count} rows) differ from the source's: mail was "
                    "removed at the source since the earlier run (purge, erase); empty the "
                    "target's catalog and store and run migrate again"
                )
    return repaired


def _locks(snap: TableRows) -> dict[str, datetime]:
    """Each message's blobs' retention (plain names), for a target that locks objects (S3
    Object Lock): the latest of the messages that use a part."""
    by_message: dict[int, datetime] = {}
    locks: dict[str, datetime] = {}
    messages = next(t for t in TABLES if t.name == "messages")
    for row in snap.rows(messages):
        if row[13] is not None:
            until = from_timestamp(int(row[13]))
            by_message[int(row[0])] = until
            locks[f"m/{row[1]}"] = until
    parts = next(t for t in TABLES if t.name == "message_parts")
    for message, sha in snap.rows(parts):
        used_until = by_message.get(int(message))
        if used_until is not None:
            key = f"p/{sha}"
            locks[key] = max(used_until, locks.get(key, used_until))
    return locks


# -- the blobs ----------------------------------------------------------------------------


def _raw_stores(source: Config, target: Config) -> tuple[BlobStore, BlobStore]:
    src = open_store(source.archive.store_url, readonly=True)
    try:
        return src, open_store(target.archive.store_url)
    except BaseException:
        src.close()
        raise


def _copy_blobs(
    src: BlobStore,
    dst: BlobStore,
    source: Config,
    locks: dict[str, datetime],
    report: MigrationReport,
    phase: Phase,
    say: Callable[[str], None],
) -> None:
    started = time.monotonic()
    if locks and source.archive.encrypted:  # the lock follows the name stored under
        locks = _sealed_names(locks, dst, load_key_file(source.archive.key_file))
    have = set(dst.keys())
    listed = src.keys()  # the source's names as stored (sealed ones keyed)
    wanted = [k for k in listed if k not in have]
    with phase(len(wanted), "blobs", "blobs") as advance, ThreadPoolExecutor(READERS) as pool:
        for keys in _batches(wanted):
            items = list(zip(keys, pool.map(src.get, keys), strict=True))
            dst.put_many(items, {k: locks[k] for k in keys if k in locks} or None)
            report.blobs += len(items)
            report.blob_bytes += sum(len(b) for _k, b in items)
            advance(len(items))
    report.seconds["blobs"] = time.monotonic() - started
    say(
        f"blobs: {report.blobs} copied ({report.blob_bytes} bytes) in "
        f"{report.seconds['blobs']:.1f}s"
    )


def _sealed_names(
    locks: dict[str, datetime], store: BlobStore, ring: Keyring
) -> dict[str, datetime]:
    from ..store.encrypted import EncryptedStore

    namer = EncryptedStore(store, ring)  # for its names only: nothing is read or written
    return {namer.stored_name(k): until for k, until in locks.items()}


def _batches(keys: Sequence[str]) -> Iterator[list[str]]:
    for i in range(0, len(keys), BLOBS_PER_BATCH):
        yield list(keys[i : i + BLOBS_PER_BATCH])


# -- the index, and the check ---------------------------------------------------------------


class _ReadSource:
    """The target's store for the indexing step, reading what it can from the source: the
    same bytes under the same names (just copied), and the source is often the nearer one
    (local files, where the target is a bucket: measured, ``bench/migrate.py``, the index
    read back from moto took most of the time). Writes (attachment texts extracted anew) go
    to the target; ``verify`` then reads the target itself."""

    def __init__(self, source: BlobStore, target: BlobStore) -> None:
        self.url = target.url
        self._source = source
        self._target = target

    def get(self, key: str) -> bytes:
        try:
            return self._source.get(key)
        except KeyError:
            return self._target.get(key)

    def exists(self, key: str) -> bool:
        return self._source.exists(key) or self._target.exists(key)

    def size(self, key: str) -> int:
        try:
            return self._source.size(key)
        except KeyError:
            return self._target.size(key)

    def keys(self, prefix: str = "") -> Iterator[str]:
        return iter(set(self._target.keys(prefix)) | set(self._source.keys(prefix)))

    def put(self, key: str, data: bytes) -> None:
        self._target.put(key, data)

    def put_many(
        self,
        items: Sequence[tuple[str, bytes]],
        retain_until: Mapping[str, datetime] | None = None,
    ) -> None:
        self._target.put_many(items, retain_until)

    def delete(self, key: str) -> None:
        self._target.delete(key)

    def delete_many(self, keys: Sequence[str]) -> None:
        self._target.delete_many(keys)

    def truncate_logs(self) -> list[str]:
        return self._target.truncate_logs()

    def close(self) -> None:
        """The stores are the caller's to close."""


def _index(
    target: Config,
    raw: BlobStore,
    report: MigrationReport,
    phase: Phase,
    say: Callable[[str], None],
) -> None:
    from ..store.encrypted import EncryptedStore
    from .service import Archive

    started = time.monotonic()
    store: BlobStore = raw
    if target.archive.encrypted:
        store = EncryptedStore(raw, load_key_file(target.archive.key_file))
    with Archive(target, store=store) as archive:
        queued = archive.catalog.index_status().queued
        with phase(queued, "messages", "indexing") as advance:
            report.indexed = archive.index_pending(advance)
    report.seconds["index"] = time.monotonic() - started
    say(f"index: {report.indexed} messages indexed in {report.seconds['index']:.1f}s")


def _verify(target: Config, report: MigrationReport, phase: Phase) -> None:
    from .service import Archive
    from .verify import verify

    started = time.monotonic()
    with Archive(target, readonly=True) as archive:
        s = archive.stats()
        with phase(s.messages + s.envelopes, "messages", "verifying") as advance:
            checked = verify(archive, advance, index=True)
        head = archive.catalog.last_event()
    if not checked.ok:
        raise MigrationError(
            f"the target fails verify ({len(checked.problems)} problems; the first: "
            f"{checked.problems[0]}): run `postfix-archiver verify --config TARGET` for all"
        )
    if s.messages != report.messages or head != report.head:
        raise MigrationError(
            f"the target has {s.messages} messages and chain head "
            f"{head.hash if head else 'none'}, the source's snapshot {report.messages} and "
            f"{report.head.hash if report.head else 'none'}"
        )
    report.seconds["verify"] = time.monotonic() - started


__all__ = ["MigrationReport", "Phase", "check_backends", "migrate", "shown", "table_digest"]
