"""The archive: one ingest path for every way in (``ingest.IngestService``), and the read side.

Ingest order is what makes a crash harmless: the blobs (parts, then the message) are written
and fsync'd first; only then is the catalog row committed, together with its chain event and
its place in the index queue. A crash before the commit leaves at most an unreferenced blob,
which a retry rewrites; never a row without a blob. The full-text entry is made after the
answer, by the indexer (``archive.indexer``), from the durable queue.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, TypeVar

from ..catalog import (
    AttachmentRow,
    Catalog,
    EnvelopeRow,
    ExtractRecord,
    HoldRow,
    ImportOrigin,
    MessageRow,
    NewArrival,
    SearchPage,
    Stats,
    StoredPart,
    open_catalog,
)
from ..config import Config
from ..conversation import thread_of
from ..envelope import Envelope, clean_text
from ..errors import IntegrityError, NotFoundError
from ..extract import Limits, limits_from
from ..message import (
    Attachment,
    ParsedMessage,
    attachment_payload,
    parse_message,
)
from ..retention import until as retention_until
from ..search import Node, parse_int, parse_query
from ..store import BlobStore, open_store
from ..store.encrypted import EncryptedStore
from . import skeleton
from .compression import FOLLOWER_REFRESH_SECONDS, REFRESH_SECONDS, Codec
from .ingest import IngestResult, IngestService, Outcome, Staged
from .reading import MessageRead, ParseCache, TextCache, stored_attachment
from .snippets import SCAN_LIMIT, Highlighter, Snippet, message_sources
from .staged_parses import StagedParses
from .stored_text import index_text_stored

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized

    from .indexer import Indexer
    from .ingest_index import Parsed

log = logging.getLogger("postfix_archiver.archive")
T = TypeVar("T")

# results of one page that get a snippet (the CLI's --limit goes to 100,000: a script listing
# that many gets the first ones with snippets, the rest with none, not a wait of minutes)
MAX_SNIPPETS = 1000
# a message larger than this is not read for its snippet (one such costs a page what
# hundreds of ordinary results do): its subject alone is looked at
SNIPPET_MAX_SIZE = 16 << 20
# the time a page's snippets may take (seconds): the results past it get none, so a hostile
# query or a slow store delays a page by this much at most, plus one message's snippet
SNIPPET_BUDGET = 0.25
# attachments of one result whose extracted text a snippet may come from
SNIPPET_ATTACHMENTS = 4


@dataclass(frozen=True, slots=True)
class MessageView:
    """Everything the CLI and web show about one archived message."""

    row: MessageRow
    envelopes: list[EnvelopeRow]
    attachments: list[AttachmentRow]
    # the legal holds, active and released, that hold or held it
    holds: list[HoldRow] = field(default_factory=list)
    # how each attachment's text was extracted, by SHA-256 (none: not indexed yet)
    extracts: dict[str, ExtractRecord] = field(default_factory=dict)
    # where each imported envelope came from, by envelope id (recorded since migration 7)
    imports: dict[int, ImportOrigin] = field(default_factory=dict)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Archive:
    def __init__(
        self,
        config: Config,
        *,
        store: BlobStore | None = None,
        catalog: Catalog | None = None,
        workers: int | None = None,
        readonly: bool = False,
        trains: bool = True,
    ) -> None:
        """``readonly``: for commands that only read (search, show, stats, verify, export):
        nothing is created or written, so they work on a full disk and a mistyped command
        leaves no empty archive behind. ``trains``: False for an import's worker processes
        but one, which use the dictionaries that one trains (``archive.compression``)."""
        self.config = config
        # the catalog first: with no archive there, its error says so before the store opens
        self.catalog = catalog or open_catalog(config.archive.catalog_url, readonly=readonly)
        try:
            self.store = store or open_store(
                config.archive.store_url,
                readonly=readonly,
                key_file=config.archive.key_file if config.archive.encrypted else None,
            )
        except BaseException:
            self.catalog.close()
            raise
        self._threshold = config.archive.attachment_threshold
        # compresses every blob; trains dictionaries on the messages it compresses
        self.codec = Codec(
            self.store,
            config.archive.compression_level,
            train=trains and not readonly,
            refresh=REFRESH_SECONDS if trains else FOLLOWER_REFRESH_SECONDS,
        )
        self._ingester: IngestService | None = None
        self._lazy_lock = threading.Lock()
        self._workers = workers or min(8, (os.cpu_count() or 2) * 2)
        self._pool: ThreadPoolExecutor | None = None
        # the last few parses, so a page's iframe body right after the page parses nothing
        self._parses = ParseCache()
        # the text snippets are cut from, for a page of results shown again
        self._texts = TextCache(SCAN_LIMIT)
        # the parses new arrivals were staged with, for this process's indexer
        self.staged_parses = StagedParses()
        # one indexing pass at a time in this process (the thread, or index_pending)
        self.index_lock = threading.Lock()
        # messages this process indexed since it last compacted the index (indexer.compact)
        self.indexed_since_compact = 0
        self._indexer: Indexer | None = None
        # the bounds on attachment text extraction (part of the index signature)
        self.extract_limits: Limits = limits_from(config.extract)

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._indexer is not None:
            self._indexer.stop()
            self._indexer = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._ingester is not None:
            self._ingester.close()
            self._ingester = None
        self.codec.close()
        self.catalog.close()
        self.store.close()

    @property
    def ingester(self) -> IngestService:
        """The one ingest service: every way in archives through it."""
        with self._lazy_lock:
            if self._ingester is None:
                self._ingester = IngestService(self)
            return self._ingester

    # -- the full-text index, made after answering (``archive.indexer``) ----------------------

    def start_indexer(self) -> None:
        """The background indexer (``serve``, ``web`` on a writable catalog): a thread that
        indexes what is queued, woken after each commit."""
        from .indexer import Indexer

        with self._lazy_lock:
            if self._indexer is None and not getattr(self.catalog, "readonly", False):
                self._indexer = Indexer(self)
                self._indexer.start()

    @property
    def indexing_here(self) -> bool:
        """Whether this process runs the background indexer (``start_indexer``)."""
        return self._indexer is not None

    def wake_indexer(self) -> None:
        """Called after a commit queued new messages."""
        if self._indexer is not None:
            self._indexer.wake()

    def index_pending(self, progress: Callable[[int], None] | None = None) -> int:
        """Index everything queued now, on this thread (for ``index``, ``import``, tests and
        benchmarks); returns how many messages were indexed."""
        from .indexer import compact, drain

        done = drain(self, progress=progress)
        if not done:
            # an import indexes as it commits (``ingest_index``): its catch-up merges the
            # index as the indexer's would
            compact(self)
        return done

    def store_texts(self, texts: Sequence[tuple[str, str, Sequence[str]]]) -> None:
        """Texts extracted from attachments (SHA-256, text, the names found inside), each as
        a blob ``t/<sha>``, compressed (and encrypted, with the store) like the others, all
        durable in one write."""
        if not texts:
            return
        self.store.put_many(
            [
                (f"t/{sha}", self._compress(json.dumps({"text": t, "names": list(n)}).encode()))
                for sha, t, n in texts
            ]
        )

    def stored_text(self, sha: str) -> tuple[str, tuple[str, ...]] | None:
        """The extracted text and names of attachment ``sha``; None if not stored (or
        unreadable: then it is extracted again)."""
        try:
            stored = self.store.get(f"t/{sha}")
        except KeyError:
            return None
        try:
            value = json.loads(self._decompress(stored, f"text blob t/{sha}"))
            return str(value["text"]), tuple(str(n) for n in value["names"])
        except (IntegrityError, ValueError, KeyError, TypeError) as exc:
            log.warning("text blob t/%s unreadable (%s): extracted again", sha, exc)
            return None

    def attachment_bytes(
        self, sha: str, segments: list[skeleton.Segment], raw: bytes, a: Attachment
    ) -> bytes:
        """The decoded bytes of attachment ``a`` of message ``sha`` (its ``segments`` and
        ``raw`` bytes already read): from its part stored on its own, else parsed out."""
        payload = stored_attachment(segments, a.sha256, self._read_part)
        if payload is not None:
            return payload
        return attachment_payload(raw, a.index)[1]

    def segments(self, sha: str) -> list[skeleton.Segment]:
        """The stored message ``sha``: its skeleton's bytes and references to its parts."""
        return self._segments(sha)

    def rebuild(self, sha: str, segments: list[skeleton.Segment]) -> bytes:
        """The message's bytes from its ``segments``, checked against ``sha``."""
        return self._rebuild(sha, segments)

    @property
    def pool(self) -> ThreadPoolExecutor:
        with self._lazy_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="ingest")
            return self._pool

    # -- compression (``archive.compression``: zstd, message blobs with a dictionary) --------

    def _compress(self, data: bytes) -> bytes:
        return self.codec.compress(data)

    def _compress_pieces(self, pieces: Sequence[bytes]) -> bytes:
        return self.codec.compress_message(pieces)

    def _decompress(self, data: bytes, what: str) -> bytes:
        return self.codec.decompress(data, what)

    # -- write side --------------------------------------------------------------------------

    def stage(
        self,
        raw: bytes,
        envelope: Envelope,
        parsed: ParsedMessage | None = None,
        *,
        retention: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> Staged:
        """Hash, parse, split and compress one arrival: the arrival for the catalog and the
        blobs it needs stored first, so a batch of arrivals can store its blobs in one go
        (``store_staged``). Safe to call from many threads."""
        return self.stage_parsed(raw, envelope, parsed, retention=retention, tags=tags)[0]

    def stage_parsed(
        self,
        raw: bytes,
        envelope: Envelope,
        parsed: ParsedMessage | None = None,
        *,
        retention: str | None = None,
        tags: tuple[str, ...] = (),
        epoch: int | None = None,
    ) -> tuple[Staged, Parsed | None]:
        """``stage``, and for new bytes the parse and split it staged with (None: bytes
        already archived), for an entry made from them (``ingest_index``, the background
        indexer's ``staged_parses``)."""
        from .ingest_index import Parsed

        sha = sha256_hex(raw)
        # read first: a removal that deletes a blob after this is caught at the commit
        if epoch is None:
            epoch = self.catalog.blob_epoch()
        if self.catalog.find_sha(sha) is not None:
            # known bytes: nothing to store, only the envelope is new (or a retry)
            parsed = parsed or ParsedMessage(size=len(raw), headers=[])
            arrival = self._arrival(sha, raw, parsed, envelope, 0, [], retention, tags, epoch)
            return Staged(arrival, ()), None
        if parsed is None:
            parsed = parse_message(raw)
        split = skeleton.split_message(raw, self._threshold, sha256_hex)
        parts: list[StoredPart] = []
        blobs: list[tuple[str, bytes]] = []
        for part_sha, content in split.parts.items():
            key = f"p/{part_sha}"
            try:  # one lookup, not exists() then size(): this is the per-message path
                parts.append(StoredPart(part_sha, self.store.size(key)))
                continue
            except KeyError:
                pass
            blob = self._compress(content)
            blobs.append((key, blob))
            parts.append(StoredPart(part_sha, len(blob)))
        manifest = self._compress_pieces(skeleton.manifest_pieces(split, raw))
        blobs.append((f"m/{sha}", manifest))
        arrival = self._arrival(
            sha, raw, parsed, envelope, len(manifest), parts, retention, tags, epoch
        )
        return Staged(arrival, tuple(blobs)), Parsed(sha, raw, parsed, split, arrival.body_text)

    def store_staged(self, staged: Sequence[Staged]) -> None:
        """The blobs of ``staged`` arrivals, durable together, before any of their rows;
        each with its message's retention date, for a store that locks objects until then
        (a part two arrivals share: the later date)."""
        locks: dict[str, datetime] = {}
        for s in staged:
            until = s.arrival.retain_until
            if until is None:
                continue
            for key, _data in s.blobs:
                locks[key] = max(until, locks.get(key, until))
        self.store.put_many([blob for s in staged for blob in s.blobs], locks or None)

    def _arrival(
        self,
        sha: str,
        raw: bytes,
        parsed: ParsedMessage,
        envelope: Envelope,
        stored_size: int,
        parts: list[StoredPart],
        retention: str | None,
        tags: tuple[str, ...],
        epoch: int | None = None,
    ) -> NewArrival:
        thread = thread_of(parsed)
        return NewArrival(
            sha256=sha,
            size=len(raw),
            stored_size=stored_size,
            date=parsed.date or envelope.received,
            subject=parsed.subject,
            message_id=parsed.message_id,
            from_=parsed.from_,
            to=parsed.to,
            cc=parsed.cc,
            attachments=parsed.attachments,
            defects=parsed.defects,
            body_text=_index_text(parsed, self.config.archive.index_limit),
            parts=parts,
            envelope=envelope,
            retention=retention,
            tags=tags,
            retain_until=retention_until(
                retention or self.config.archive.retention, envelope.received
            ),
            blob_epoch=epoch,
            thread=thread.key,
            thread_parent=thread.parent,
        )

    def ingest(self, raw: bytes, envelope: Envelope) -> IngestResult:
        """Archive one arrival durably, keeping it whatever the rules (``ingester.ingest``
        for the outcome with rules); returns once blob and catalog row are on disk."""
        outcome: Outcome = self.ingester.ingest(raw, envelope)
        assert outcome.result is not None  # without rules nothing is skipped
        return outcome.result

    def ingest_many(
        self,
        items: Iterable[tuple[bytes, Envelope]],
        *,
        window: int = 512,
        max_bytes: int = 64 << 20,
        processes: int = 1,
    ) -> Iterator[IngestResult]:
        """Archive many arrivals with the work spread out; results in input order.

        Parsing, compression and blob writes run in parallel: on threads, or with
        ``processes > 1`` in worker processes, which parse past the GIL (worth their start-up
        for a large import). The ingest service commits whatever is waiting as one
        transaction. At most ``window`` messages or ``max_bytes`` of them are in flight.
        """
        if processes > 1:
            # spawn, not fork: this process already runs threads (the writer, the pool)
            context = multiprocessing.get_context("spawn")
            trainer = context.Value("b", 0)  # set by the one worker that trains dictionaries
            with ProcessPoolExecutor(
                processes,
                mp_context=context,
                initializer=_worker_open,
                initargs=(self.config, trainer),
            ) as workers:
                # a chunk per task: one round trip and one store transaction for several
                # messages
                yield from self._pipeline(
                    _chunks(items, 32), workers, _worker_prepare_many, window, max_bytes
                )
        else:
            yield from self._pipeline(
                _chunks(items, 8), self.pool, self._prepare_many, window, max_bytes
            )

    def _prepare_many(self, chunk: list[tuple[bytes, Envelope]]) -> list[Staged]:
        """Stage a chunk, then store all its blobs in one go (one fsync, not one a message),
        with the index entries of its new messages made from the same parse and the text
        extracted from their attachments durable too (``ingest_index``)."""
        from .indexer import Made
        from .ingest_index import made_at_ingest

        # one epoch read for the chunk, before any of its lookups: an earlier epoch only
        # widens the window the commit checks for removed blobs
        epoch = self.catalog.blob_epoch()
        staged = [self.stage_parsed(raw, envelope, epoch=epoch) for raw, envelope in chunk]
        made = made_at_ingest(self, [p for _, p in staged])
        self.store_staged([s for s, _ in staged])
        self.store_texts([t for m in made if m is not None for t in m.texts])
        # the blobs and texts are durable: only the rows and entries go on. The body text
        # stays here: the catalog does not store it (the entry carries what is indexed), and
        # it was most of what a worker process sent back
        return [
            Staged(
                dataclasses.replace(s.arrival, body_text=""),
                (),
                None if m is None else Made(m.entry, m.extracts, []),
            )
            for (s, _), m in zip(staged, made, strict=True)
        ]

    def _pipeline(
        self,
        chunks: Iterable[list[tuple[bytes, Envelope]]],
        executor: Executor,
        prepare_many: Callable[[list[tuple[bytes, Envelope]]], list[Staged]],
        window: int,
        max_bytes: int,
    ) -> Iterator[IngestResult]:
        preparing: deque[tuple[int, int, Future[list[Staged]]]] = deque()
        committing: deque[Future[Outcome]] = deque()
        ingester = self.ingester
        in_flight = 0
        queued = 0

        def commit_oldest() -> None:
            nonlocal in_flight, queued
            size, count, prepared = preparing.popleft()
            in_flight -= size
            queued -= count
            for staged in prepared.result():
                committing.append(ingester.submit_staged(staged))

        def result() -> IngestResult:
            outcome = committing.popleft().result()
            assert outcome.result is not None  # without rules nothing is skipped
            return outcome.result

        for chunk in chunks:
            size = sum(len(raw) for raw, _ in chunk)
            preparing.append((size, len(chunk), executor.submit(prepare_many, chunk)))
            in_flight += size
            queued += len(chunk)
            while preparing and (
                preparing[0][2].done() or queued > window or in_flight > max_bytes
            ):
                commit_oldest()
            while committing and (committing[0].done() or len(committing) > window):
                yield result()
        while preparing:
            commit_oldest()
        while committing:
            yield result()

    # -- read side ---------------------------------------------------------------------------

    def search(
        self,
        query: str | Node,
        *,
        limit: int = 50,
        offset: int = 0,
        order: str = "-date",
        visible_to: Sequence[str] | None = None,
    ) -> SearchPage:
        node = _parsed(query)
        return self.catalog.search(
            node, limit=limit, offset=offset, order=order, visible_to=visible_to
        )

    def iter_search(
        self, query: str | Node, *, batch: int = 500, visible_to: Sequence[str] | None = None
    ) -> Iterator[MessageRow]:
        """Every match of ``query``, oldest first, fetched page by page."""
        node = _parsed(query)
        offset = 0
        while True:
            page = self.catalog.search(
                node, limit=batch, offset=offset, order="date", visible_to=visible_to
            )
            yield from page.results
            if len(page.results) < batch:
                return
            offset += batch

    def get(self, message: int) -> MessageRow:
        row = self.catalog.get(message)
        if row is None:
            raise NotFoundError(f"no archived message with id {message}")
        return row

    def attachments(self, message: int) -> list[AttachmentRow]:
        """The attachments of ``message`` as indexed (none for an unknown id)."""
        return self.catalog.attachments(message)

    def extractions(self, attachments: Sequence[AttachmentRow]) -> dict[str, ExtractRecord]:
        """How the text of each of ``attachments`` was extracted, by SHA-256 (none yet: not
        indexed)."""
        return self.catalog.extract_records([a.sha256 for a in attachments])

    def conversation(
        self, message: int, *, limit: int = 200, visible_to: Sequence[str] | None = None
    ) -> list[MessageRow]:
        """The messages of ``message``'s conversation, oldest first (see
        ``Catalog.conversation``)."""
        return self.catalog.conversation(message, limit=limit, visible_to=visible_to)

    def threads(self, messages: Sequence[int]) -> dict[int, str]:
        return self.catalog.threads(messages)

    def is_visible(self, message: int, addresses: Sequence[str]) -> bool:
        """Whether one of ``addresses`` sent or received ``message`` (see ``Catalog.search``)."""
        return self.catalog.is_visible(message, addresses)

    def view(self, message: int) -> MessageView:
        row = self.get(message)
        attachments = self.catalog.attachments(message)
        envelopes = self.catalog.envelopes(message)
        imported = [e.id for e in envelopes if e.envelope.source == "import"]
        return MessageView(
            row,
            envelopes,
            attachments,
            self.catalog.holds_of(message),
            self.extractions(attachments),
            self.catalog.import_origins(imported) if imported else {},
        )

    def read(self, message: int) -> MessageRead:
        """The read model of ``message``: its rows, read now, and one parse of its bytes
        (checked against their SHA-256), kept for the next few reads of the same message."""
        view = self.view(message)
        sha = view.row.sha256
        parsed = self._parses.get(sha, lambda: parse_message(self.read_blob(sha), inline=True))
        return MessageRead(view, parsed)

    def snippets(
        self, rows: Sequence[MessageRow], query: str | Node, *, budget: float = SNIPPET_BUDGET
    ) -> list[Snippet | None]:
        """A snippet of each of ``rows`` (a page of results of ``query``) with the query's
        terms marked (see ``archive.snippets``); None where there is nothing to show, for
        every result of a query with no term to mark (fields only, or empty: no message is
        read), past ``MAX_SNIPPETS`` or ``budget`` seconds, or where the message cannot be
        read (logged: the result is still listed, and ``show`` or ``verify`` say what is
        wrong)."""
        marker = Highlighter(_parsed(query))  # as search reads it (8-bit bytes repaired)
        if not marker.has_terms:
            return [None] * len(rows)
        deadline = time.monotonic() + budget
        out: list[Snippet | None] = []
        for row in rows:
            # at least one: a page is never without snippets for a loaded machine alone
            if len(out) >= MAX_SNIPPETS or (out and time.monotonic() > deadline):
                out.append(None)
            else:
                out.append(self._snippet(row, marker))
        return out

    def _snippet(self, row: MessageRow, marker: Highlighter) -> Snippet | None:
        body = ""
        if row.size <= SNIPPET_MAX_SIZE and marker.marks_body:
            try:
                # a message just read has its parse kept; any other is read for its text
                # alone (without the attachments it does not need: stored_text), kept as
                # text only: a page of 50 whole parses would push out those message pages use
                kept = self._parses.peek(row.sha256)
                body = (
                    kept.index_text()
                    if kept
                    else self._texts.get(row.sha256, functools.partial(self._text, row.sha256))
                )
            except Exception as exc:  # a snippet is an extra: never the reason a page fails
                log.warning("no snippet for message %d: %s", row.id, exc)
                return None
        snippet = marker.snippet(message_sources(body, row.subject))
        if (snippet is None or not snippet.marks) and row.attachment_count:
            # matched in an attachment's text, then: shown from it (read only now, for the
            # few results that need it)
            texts = self._attachment_texts(row) if marker.marks_attachments else []
            found = marker.snippet(message_sources("", "", texts)) if texts else None
            if found is not None and found.marks:
                return found
        return snippet

    def _text(self, sha: str) -> str:
        """The index text of message ``sha`` from its blob: checked against its SHA-256 when
        it is stored whole; else from its skeleton and the parts its text is in, each
        checked against its own (see ``stored_text``)."""
        segments = self._segments(sha)
        return index_text_stored(
            segments, functools.partial(self._rebuild, sha, segments), self._read_part
        )

    def _attachment_texts(self, row: MessageRow) -> list[str]:
        """The text extracted from (the first ``SNIPPET_ATTACHMENTS`` of) ``row``'s
        attachments, as indexed; none for those not extracted (or not readable: logged)."""
        texts: list[str] = []
        try:
            shas = dict.fromkeys(a.sha256 for a in self.catalog.attachments(row.id))
            for sha in list(shas)[:SNIPPET_ATTACHMENTS]:
                text = self._texts.get(f"t/{sha}", functools.partial(self._extracted, sha))
                if text:
                    texts.append(text)
        except Exception as exc:  # as for the body: never the reason a page fails
            log.warning("no attachment snippet for message %d: %s", row.id, exc)
        return texts

    def _extracted(self, sha: str) -> str:
        stored = self.stored_text(sha)
        return "" if stored is None else stored[0]

    def resolve(self, ident: str) -> int:
        """An archive id from ``42`` or the full SHA-256 (64 hex digits)."""
        ident = ident.strip()
        # not str.isdigit(): it takes "²", which int() refuses, and a 5,000-digit id
        number = parse_int(ident)
        if number is not None:
            return number
        if len(ident) == 64:
            found = self.catalog.find_sha(ident.lower())
            if found is not None:
                return found
        shown = ident if len(ident) <= 70 else ident[:64] + "..."  # the error stays one line
        raise NotFoundError(
            f"no archived message with id {shown!r} "
            "(give the number shown by search, or the full SHA-256)"
        )

    def raw(self, message: int) -> bytes:
        """The original bytes, rebuilt and checked against their SHA-256."""
        return self.read_blob(self.get(message).sha256)

    def read_blob(self, sha: str) -> bytes:
        return self._rebuild(sha, self._segments(sha))

    def _segments(self, sha: str) -> list[skeleton.Segment]:
        """The stored message ``sha``: its skeleton's bytes and references to its parts."""
        key = f"m/{sha}"
        data = self._fetch(key, "message")
        try:
            return skeleton.decode_manifest(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"message blob {key}: manifest is damaged ({exc})") from exc

    def _rebuild(self, sha: str, segments: list[skeleton.Segment]) -> bytes:
        rebuilt = skeleton.rebuild(segments, self._read_part)
        return _checked(rebuilt, sha, f"message blob m/{sha}")

    def _read_part(self, sha: str) -> bytes:
        key = f"p/{sha}"
        return _checked(self._fetch(key, "part"), sha, f"part blob {key}")

    def _fetch(self, key: str, kind: str) -> bytes:
        """A blob's stored bytes, decompressed; a missing blob is an integrity error."""
        try:
            stored = self.store.get(key)
        except KeyError:
            hint = ""
            if isinstance(self.store, EncryptedStore):
                # a key file with another name secret looks for every blob under other names
                hint = (
                    f" (or the key file {self.store.keyring.path} is not the one this "
                    "archive was written with)"
                )
            raise IntegrityError(
                f"{kind} blob {key} is missing from the store {self.store.url}{hint}"
            ) from None
        return self._decompress(stored, f"{kind} blob {key}")

    def attachment(self, message: int, index: int) -> tuple[Attachment, bytes]:
        """Leaf part ``index`` decoded. An indexed attachment comes from its part as stored
        on its own (``reading.stored_attachment``), without rebuilding the message; one
        the skeleton kept (a small one, malformed MIME) from parsing the whole message."""
        sha = self.get(message).sha256
        segments = self._segments(sha)
        for a in self.catalog.attachments(message):
            if a.index != index:
                continue
            payload = stored_attachment(segments, a.sha256, self._read_part)
            if payload is not None:
                return Attachment(a.index, a.filename, a.content_type, a.size, a.sha256), payload
        try:
            return attachment_payload(self._rebuild(sha, segments), index)
        except KeyError:
            raise NotFoundError(f"message {message} has no part {index}") from None

    def stats(self) -> Stats:
        return self.catalog.stats()

    def per_day(
        self, since: datetime | None = None, *, by: Literal["date", "arrival"] = "date"
    ) -> list[tuple[str, int, int]]:
        """Messages and bytes per day: ``(YYYY-MM-DD, count, bytes)``, oldest first, by the
        Date header or by arrival (``Catalog.per_day``)."""
        return self.catalog.per_day(since, by=by)

    def map_parallel(
        self, fn: Callable[[MessageRow], T], rows: Iterable[MessageRow]
    ) -> Iterator[T]:
        """``fn`` over rows on the ingest threads, results in order (for verify, export)."""
        pending: deque[Future[T]] = deque()
        for row in rows:
            pending.append(self.pool.submit(fn, row))
            while len(pending) > 64:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


# -- worker processes of ingest_many(processes=N) ----------------------------------------------

_worker_archive: Archive | None = None


def _worker_open(config: Config, trainer: Synchronized[int]) -> None:
    global _worker_archive
    # one process trains the zstd dictionaries, the first to start: each trained its own
    # before, four trainings of about 1.3 s of CPU each in a 10,000-message import
    with trainer.get_lock():
        trains = not trainer.value
        trainer.value = 1
    _worker_archive = Archive(config, workers=1, trains=trains)


def _worker_prepare_many(chunk: list[tuple[bytes, Envelope]]) -> list[Staged]:
    assert _worker_archive is not None
    return _worker_archive._prepare_many(chunk)


def _chunks(
    items: Iterable[tuple[bytes, Envelope]], size: int
) -> Iterator[list[tuple[bytes, Envelope]]]:
    chunk: list[tuple[bytes, Envelope]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _parsed(query: str | Node) -> Node:
    # 8-bit bytes in argv (a query typed in an EUC-KR or Shift_JIS terminal) arrive as
    # surrogate escapes, which no SQLite text takes: read as UTF-8 where they are, else Latin-1
    return parse_query(clean_text(query)) if isinstance(query, str) else query


# Bump when what _index_text makes of a message changes: a removal can then no longer
# recompute an older entry's exact values, and rebuilds the index instead (archive.removal).
# 2: CJK runs as bigrams (bigrams.index_form); 3: HTML blocks apart; 4: the text extracted
# from attachments (archive.indexer)
INDEX_TEXT_VERSION = 4


def index_text(parsed: ParsedMessage, limit: int) -> str:
    """The body text the index takes of ``parsed`` (at most ``limit`` characters)."""
    return _index_text(parsed, limit)


def _index_text(parsed: ParsedMessage, limit: int) -> str:
    text = parsed.index_text()
    if len(text) <= limit:
        return text
    parsed.defects.append(f"body text longer than {limit} characters: only the start is indexed")
    return text[:limit]


def _checked(data: bytes, sha: str, what: str) -> bytes:
    if sha256_hex(data) != sha:
        raise IntegrityError(
            f"{what}: bytes do not match their SHA-256; the stored copy was altered or damaged"
        )
    return data
