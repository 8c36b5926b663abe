"""The full-text index, made after answering: a background indexer fed by a durable queue.

Ingest commits a message's row with a row in the catalog's index queue, and answers Postfix;
the indexer takes the oldest queued messages in batches, reads each from its blobs, makes
its entry (subject, body text, attachment file names and the names inside them, addresses,
and the text extracted from its attachments) and commits the batch in one catalog
transaction, which takes each message off the queue only if it is still queued and still
there (a removal or another indexer may have come first). A restart resumes from the queue.

Attachment text is extracted once per attachment (by the SHA-256 of its decoded bytes): the
text is a blob ``t/<sha256>`` (compressed, and encrypted with the store) and the outcome a row
in ``extracts``; a message whose attachment failed or timed out is indexed without that text,
never lost and never stuck. A removal recomputes an entry from the same blob and cache
(``entry_of`` with ``extract=False``): a contentless index forgets an entry only given its
exact values.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ..catalog import ExtractRecord, Indexed, IndexEntry, MessageRow, index_entry
from ..errors import CatalogError, StoreError
from ..extract import (
    EXTRACT_VERSION,
    FAILED,
    OK,
    TOO_BIG,
    UNSUPPORTED,
    Extraction,
    Limits,
    extract,
)
from ..extract.process import Worker
from ..message import Attachment, ParsedMessage, parse_message
from .conversations import backfill_threads
from .holds import ActiveHolds
from .service import INDEX_TEXT_VERSION, index_text

if TYPE_CHECKING:
    from .service import Archive

log = logging.getLogger("postfix_archiver.indexer")

BATCH = 32  # messages per indexing transaction: the committer waits for it no longer
# while mail arrives (a commit less than this many seconds ago), the thread rests as long as
# its last batch took: it takes at most half the time from answering Postfix, and still
# catches up under a steady stream (at half speed)
BUSY = 1.0
POLL = 5.0  # seconds between looks at the queue when nobody wakes the thread (a pipe filter
# in another process queues mail too)
# the active holds' query trees, parsed once (keyed by hold id and query text: the same
# text is the same tree in any archive)
_HOLDS = ActiveHolds()
CONFLICT_RETRY = timedelta(seconds=5)  # a batch whose extraction another indexer did too
RETRY = timedelta(hours=1)  # a message whose blobs cannot be read now is tried again then
MAX_DETAIL = 500  # characters of an extraction's failure kept


# messages indexed (and a quarter of the index) before the index is merged into one piece
COMPACT_AFTER = 1000
# pages written by one step of that merge: one short write transaction each
COMPACT_PAGES = 500
# the least rest between two steps of it (seconds)
COMPACT_REST = 0.02


def extract_version(limits: Limits) -> str:
    """How attachment text is extracted now: the extractor's version and its limits."""
    return (
        f"v{EXTRACT_VERSION};timeout={limits.timeout:g};input={limits.max_input};"
        f"output={limits.max_output};memory={limits.max_memory};depth={limits.max_depth}"
    )


def index_signature(limit: int, limits: Limits) -> str:
    """How a message's entry is made now: stored with it (``messages.indexed_with``). The
    text version, then a digest of the rest: stored once per message, the full text (a
    hundred characters) was a tenth of the catalog's messages table."""
    how = f"limit={limit};extract-{extract_version(limits)}"
    return f"text-v{INDEX_TEXT_VERSION};{hashlib.sha256(how.encode()).hexdigest()[:12]}"


def signature_of(archive: Archive) -> str:
    return index_signature(archive.config.archive.index_limit, archive.extract_limits)


# text extracted from an attachment: its SHA-256, the text, the names found inside
Text = tuple[str, str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Made:
    entry: IndexEntry
    extracts: list[ExtractRecord]  # extracted now (not from the cache)
    texts: list[Text]  # of those, the texts to store (``Archive.store_texts``) before commit


def entry_of(
    archive: Archive,
    sha: str,
    *,
    extract_missing: bool = True,
    fresh: dict[str, tuple[ExtractRecord, Text]] | None = None,
    worker: Worker | None = None,
) -> Made | None:
    """Message ``sha``'s entry from its blobs and the extraction cache. An attachment not in
    the cache is extracted (``extract_missing``), or else the entry is unknown: None. Raises
    ``StoreError`` when the message cannot be read. ``fresh``: what this batch extracted so
    far (not stored yet), consulted and added to. ``worker``: the extraction process to use
    (a batch shares one: starting one costs tens of milliseconds); else one of its own."""
    segments = archive.segments(sha)
    raw = archive.rebuild(sha, segments)
    parsed = parse_message(raw)
    body = index_text(parsed, archive.config.archive.index_limit)
    return made_of(
        archive,
        sha,
        parsed,
        body,
        lambda a: archive.attachment_bytes(sha, segments, raw, a),
        extract_missing=extract_missing,
        fresh=fresh,
        worker=worker,
    )


def made_of(
    archive: Archive,
    sha: str,
    parsed: ParsedMessage,
    body: str,
    payload: Callable[[Attachment], bytes],
    *,
    extract_missing: bool = True,
    fresh: dict[str, tuple[ExtractRecord, Text]] | None = None,
    worker: Worker | None = None,
) -> Made | None:
    """The entry of message ``sha`` from its parse and its index text (``body``): what
    ``entry_of`` makes from the blobs, and the ingest from the parse it staged with (one
    function, so the two cannot differ). ``payload``: an attachment's decoded bytes."""
    fresh = {} if fresh is None else fresh
    limits = archive.extract_limits
    version = extract_version(limits)
    records = archive.catalog.extract_records([a.sha256 for a in parsed.attachments])
    made: list[ExtractRecord] = []
    to_store: list[Text] = []
    texts: list[str] = []
    names: list[str] = []
    for a in parsed.attachments:
        cached: tuple[str, tuple[str, ...]] | None
        if a.sha256 in fresh:
            record, (_, done, inner) = fresh[a.sha256]
            cached = (done, inner) if record.status == OK else ("", ())
        else:
            cached = _cached(archive, records.get(a.sha256), version)
        if cached is None:
            if not extract_missing:
                return None
            if a.size > limits.max_input:  # not even read
                result = Extraction(TOO_BIG, detail=f"{a.size} bytes, over {limits.max_input}")
            else:
                result = _extract(worker, payload(a), a.content_type, a.filename, limits)
            record = ExtractRecord(
                a.sha256, version, result.status, _clean(result.detail[:MAX_DETAIL])
            )
            result = Extraction(
                result.status,
                _clean(result.text),
                tuple(_clean(n) for n in result.names),
                _clean(result.detail),
            )
            extracted = (a.sha256, result.text, result.names)
            fresh[a.sha256] = (record, extracted)
            made.append(record)
            if result.status == OK:
                to_store.append(extracted)
            elif result.status != UNSUPPORTED:  # an image has no text: nothing went wrong
                log.warning(
                    "attachment %s (%r) of message %s: extraction %s: %s",
                    a.sha256,
                    a.filename,
                    sha,
                    result.status,
                    result.detail,
                )
            cached = (result.text, tuple(result.names)) if result.status == OK else ("", ())
        texts.append(cached[0])
        names.extend(cached[1])
    entry = index_entry(
        parsed.subject,
        body,
        parsed.attachments,
        parsed.from_,
        parsed.to,
        parsed.cc,
        inner_names=names,
        attachment_text=texts,
    )
    return Made(entry, made, to_store)


def _cached(
    archive: Archive, record: ExtractRecord | None, version: str
) -> tuple[str, tuple[str, ...]] | None:
    if record is None or record.version != version:
        return None
    if record.status != OK:
        return "", ()
    return archive.stored_text(record.sha256)


def _clean(text: str) -> str:
    """Text SQLite can store: a lone surrogate (an extractor's undecodable byte) becomes
    U+FFFD instead of failing the batch's commit."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def _extract(
    worker: Worker | None, data: bytes, content_type: str, filename: str, limits: Limits
) -> Extraction:
    try:
        if worker is not None:
            return worker.extract(data, content_type, filename)
        return extract(data, content_type, filename, limits)
    except Exception as exc:  # the interface says it never raises; a message never pays
        return Extraction(FAILED, detail=f"{type(exc).__name__}: {exc}")


def index_batch(archive: Archive, batch: int = BATCH) -> int:
    """Indexes the oldest queued messages that are due, up to ``batch``; returns how many
    were taken off the queue (0: nothing was due)."""
    queued = archive.catalog.queued(batch, due=datetime.now(UTC), claim=True)
    if not queued:
        return 0
    signature = signature_of(archive)
    made: list[tuple[int, Made]] = []
    unreadable: list[int] = []
    fresh: dict[str, tuple[ExtractRecord, Text]] = {}
    # one extraction process for the batch, started only if an attachment needs it
    with Worker(archive.extract_limits) as worker:
        for message, sha in queued:
            one = _entry(archive, message, sha, fresh, worker, unreadable)
            if one is not None:
                made.append((message, one))
    # the texts durable first (one write for the batch), then the records that point to them
    archive.store_texts([t for _, m in made for t in m.texts])
    try:
        _commit(archive, made, signature)
    except CatalogError as exc:
        if len(made) <= 1:
            raise
        # one by one: an entry the catalog refuses fails alone (and is put off); a catalog
        # that refuses them all (locked, full) raises, and the thread tries again later
        log.warning("indexing %d messages failed (%s): retrying singly", len(made), exc)
        failed: list[int] = []
        for message, one in made:
            try:
                _commit(archive, [(message, one)], signature)
            except CatalogError as single:
                log.error("message %d cannot be indexed now (%s)", message, single)
                failed.append(message)
        if len(failed) == len(made):
            raise
        unreadable += failed
    if unreadable:
        archive.catalog.defer(unreadable, datetime.now(UTC) + RETRY)
    return len(queued)


def _entry(
    archive: Archive,
    message: int,
    sha: str,
    fresh: dict[str, tuple[ExtractRecord, Text]],
    worker: Worker,
    unreadable: list[int],
) -> Made | None:
    """One queued message's entry, or None (added to ``unreadable``) if it cannot be made now."""
    kept = archive.staged_parses.take(sha)
    try:
        if kept is not None:  # staged in this process: its parse, not its blobs again
            one = made_of(
                archive, sha, kept.parsed, kept.body, kept.payload, fresh=fresh, worker=worker
            )
        else:
            one = entry_of(archive, sha, fresh=fresh, worker=worker)
    except StoreError as exc:
        # verify reports the damage; the rest of the queue goes on meanwhile
        log.error("message %d cannot be indexed now (%s): tried again later", message, exc)
        unreadable.append(message)
        return None
    except Exception:  # a bug on one message must not hold up the queue behind it
        log.exception("message %d cannot be indexed now: tried again later", message)
        unreadable.append(message)
        return None
    assert one is not None
    return one


def _commit(archive: Archive, made: list[tuple[int, Made]], signature: str) -> None:
    entries = [Indexed(message, m.entry) for message, m in made]
    extracts = [x for _, m in made for x in m.extracts]
    done = set(archive.catalog.index(entries, signature, extracts, _HOLDS))
    if extracts and not done and entries:
        # left queued (an attachment extracted meanwhile by another indexer, with another
        # outcome): made again from the stored outcome a little later, not in a hot loop
        archive.catalog.defer([e.message for e in entries], datetime.now(UTC) + CONFLICT_RETRY)


def drain(
    archive: Archive,
    *,
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    pace: Callable[[float], None] | None = None,
) -> int:
    """Indexes what is queued and due until nothing is (or ``stop`` is set); returns how many
    messages were taken off the queue. ``pace``: called with each batch's duration, between
    batches, outside the lock."""
    total = 0
    while stop is None or not stop.is_set():
        started = time.monotonic()
        with archive.index_lock:
            count = index_batch(archive)
        if not count:
            break
        total += count
        if progress is not None:
            progress(count)
        if pace is not None:
            pace(time.monotonic() - started)
    # then, with nothing left to index, the conversations of mail archived before they
    # were recorded (a no-op on an archive that has them all)
    while stop is None or not stop.is_set():
        started = time.monotonic()
        with archive.index_lock:
            if not backfill_threads(archive):
                break
        if pace is not None:
            pace(time.monotonic() - started)
    archive.indexed_since_compact += total
    if total and (stop is None or not stop.is_set()):
        compact(archive, stop=stop)
    return total


def compact(archive: Archive, *, stop: threading.Event | None = None) -> bool:
    """Merges the index's pieces into one, step by step, once a quarter of what it holds (at
    least ``COMPACT_AFTER`` messages) was indexed since it last was: an index filled batch
    by batch keeps every term's list in many pieces, 5% more bytes on real mail (8.36 to
    7.91 MB on the SpamAssassin corpus). The merge rewrites the whole index, so it waits
    for that much new text: each message's bytes are rewritten about four times more, as
    the index's own merging of its pieces already does.

    Between steps it rests at least as long as the step took, so that writers in other
    processes (the proxy's commits) get the catalog in between, and it stops when mail is
    queued (indexed first; the merge goes on after that catch-up). It is an extra: a
    catalog that refuses it (locked, full) is logged and tried after the next catch-up.
    Returns whether it finished."""
    since = archive.indexed_since_compact
    if since < COMPACT_AFTER or since * 4 < archive.catalog.index_size():
        return False
    rest = stop.wait if stop is not None else time.sleep
    while stop is None or not stop.is_set():
        started = time.monotonic()
        try:
            if archive.catalog.queued(1):
                return False
            with archive.index_lock:
                more = archive.catalog.compact_index(COMPACT_PAGES)
        except CatalogError as exc:
            log.warning("index not compacted now (%s): tried again after a catch-up", exc)
            return False
        if not more:
            archive.indexed_since_compact = 0
            return True
        rest(max(COMPACT_REST, time.monotonic() - started))
    return False


def requeue(
    archive: Archive, rows: Iterable[MessageRow] | None, *, chunk: int = 200
) -> tuple[int, bool]:
    """Queues ``rows`` (None: every message) to be indexed again from their blobs, for
    ``reindex``: each loses its entry by its exact values, recomputed as the indexer made
    them; where those cannot be known the whole index is emptied and every message queued.
    Returns how many are queued now, and whether the whole index was rebuilt."""
    if rows is None:
        archive.catalog.rebuild_index()
        return archive.catalog.index_status().queued, True
    signature = signature_of(archive)
    batch: list[MessageRow] = []

    def flush() -> bool:
        signatures = archive.catalog.index_signatures([r.id for r in batch])
        known: list[Indexed] = []
        unknown: list[int] = []
        for r in batch:
            made = None
            if signatures.get(r.id) == signature:
                try:
                    made = entry_of(archive, r.sha256, extract_missing=False)
                except StoreError as exc:
                    log.warning("message %d unreadable (%s): the index is rebuilt", r.id, exc)
            if made is None:
                unknown.append(r.id)
            else:
                known.append(Indexed(r.id, made.entry))
        batch.clear()
        return archive.catalog.requeue(known, signature, unknown)

    for row in rows:
        batch.append(row)
        if len(batch) >= chunk and flush():
            return archive.catalog.index_status().queued, True
    rebuilt = bool(batch) and flush()
    return archive.catalog.index_status().queued, rebuilt


class Indexer:
    """The background thread: ``start``, ``wake`` after a commit, ``stop``."""

    def __init__(self, archive: Archive, *, poll: float = POLL) -> None:
        self.archive = archive
        self.poll = poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._mail_at = 0.0  # time.monotonic() of the last commit that woke it
        self._thread = threading.Thread(target=self._run, name="indexer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._mail_at = time.monotonic()
        self._wake.set()

    def _pace(self, took: float) -> None:
        if time.monotonic() - self._mail_at < BUSY:
            self._stop.wait(took)

    def stop(self, join_timeout: float = 30.0) -> None:
        """Stops after the message being indexed (an extraction runs to its timeout at
        most); what is left stays queued for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(join_timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                drain(self.archive, stop=self._stop, pace=self._pace)
            except Exception:  # the thread must outlive a failure; the queue keeps the work
                log.exception("indexing failed; retrying in %gs", self.poll)
            self._wake.wait(self.poll)


__all__ = [
    "BATCH",
    "Indexer",
    "Made",
    "compact",
    "drain",
    "entry_of",
    "extract_version",
    "index_batch",
    "index_signature",
    "requeue",
    "signature_of",
]
