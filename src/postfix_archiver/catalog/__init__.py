"""Metadata and full-text index behind one interface, chosen by URL.

``sqlite:///path/catalog.sqlite`` (default) or ``postgresql://USER@HOST:PORT/DB`` (several
writers, several hosts: ``catalog/postgresql.py``). Each backend
compiles the search AST (``postfix_archiver.search``) to its own SQL, always with bound
parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from ..errors import CatalogError
from ..search import Node
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
    StoredPart,
    TombstoneSealer,
    index_entry,
)
from .tables import TABLES, Table, TableRows


class Catalog(Protocol):
    """The archive's catalog. Contract tested for every backend in ``tests/unit/catalog``.

    - ``add_batch`` records arrivals in ONE transaction: for each, the message row (unless
      its SHA-256 is known), its addresses, attachments, parts and its place in the index
      queue (the full-text entry is made later: ``queued``, ``index``), the
      envelope with the retention and tags of its arrival (unless the same ``Envelope.key`` is
      recorded for that message) and a chain event for the new envelope: the one ``seal``
      returns given the last event stored, read inside the transaction (the backend stores
      events; ``archive.events`` computes them). Either all of a batch commits or none of
      it. It is called by the archive's one committer only (``archive.ingest``). A message's
      ``retain_until`` is the latest any of its arrivals gives (None, forever, wins).
      With ``holds``, the same transaction reads the active legal holds, gets their query
      trees from ``holds`` and puts each message given a new envelope under those it matches.
    - Reads may run on any thread, concurrently with the writer.
    - ``search`` applies ``order`` (one of ``search.ORDERS``), then ``offset``/``limit``; when
      ``visible_to`` is given, only messages where one of those addresses is the envelope
      sender or recipient or in From/To/Cc are seen.
    - An id outside SQLite's 64-bit integer range (any backend) is simply not there: ``get``
      gives None, ``envelopes``/``attachments``/``holds_of`` nothing, ``is_visible`` False,
      the many-id reads leave it out, ``set_retain_until`` changes nothing for it, ``remove``
      reports it gone and ``events`` after it gives nothing; never an OverflowError.
    """

    url: str

    def add_batch(
        self, arrivals: Sequence[NewArrival], seal: Sealer, holds: HoldQueries | None = None
    ) -> list[AddResult]: ...

    def find_sha(self, sha256: str) -> int | None: ...

    def search(
        self,
        query: Node,
        *,
        limit: int = 50,
        offset: int = 0,
        order: str = "-date",
        visible_to: Sequence[str] | None = None,
    ) -> SearchPage: ...

    def get(self, message: int) -> MessageRow | None: ...

    def envelopes(self, message: int) -> list[EnvelopeRow]: ...

    def attachments(self, message: int) -> list[AttachmentRow]: ...

    # -- retention and legal holds (``archive.holds`` decides; these store and fetch) --------

    def set_retain_until(self, changes: Sequence[tuple[int, datetime | None]]) -> int:
        """Sets each message's retention date (None: forever), in one transaction; the
        number of messages changed."""
        ...

    def add_hold(
        self, name: str, query_text: str, query: Node, reason: str, who: str, when: datetime
    ) -> HoldRow | None:
        """Records a hold and, in the same transaction, puts every message matching
        ``query`` under it; None (nothing written) if a hold of that name, in any case,
        exists, released or not."""
        ...

    def release_hold(self, name: str, who: str, when: datetime) -> HoldRow | None:
        """Releases the hold (a released one stays as it was); None if there is none."""
        ...

    def hold(self, name: str) -> HoldRow | None:
        """The hold of that name (in any case), active or released."""
        ...

    def holds(self) -> list[HoldRow]:
        """Every hold, active and released, oldest first."""
        ...

    def holds_of(self, message: int) -> list[HoldRow]:
        """The holds, active and released, that hold or held ``message``."""
        ...

    def held(self, messages: Sequence[int]) -> set[int]:
        """Those of ``messages`` under a legal hold not released: they may not be removed."""
        ...

    def active_holds_of(self, messages: Sequence[int]) -> dict[int, list[str]]:
        """The names of the active holds on each of ``messages`` that is held."""
        ...

    def expired(self, now: datetime) -> Iterator[MessageRow]:
        """Messages whose ``retain_until`` is ``now`` or earlier, by id (holds not applied)."""
        ...

    def index_signatures(self, messages: Sequence[int]) -> dict[int, str | None]:
        """How each message's full-text entry was made (``NewArrival.indexed_with``; None:
        before that was recorded)."""
        ...

    def remove(
        self,
        removals: Sequence[Removal],
        seal: TombstoneSealer,
        *,
        rebuild: bool = False,
    ) -> RemoveResult:
        """Remove messages in ONE transaction: for each, unless it is gone or under an
        active hold (checked inside the transaction), its rows (message, addresses,
        envelopes and their recipients, attachments, parts no kept message uses, the
        extraction records of attachments no kept message has, its released holds' links)
        and its full-text entry: none if it is still queued (its queue row goes), else
        ``Removal.index``, the exact values indexed, if the message is still indexed under
        ``Removal.indexed_with``; and append the tombstone ``seal`` returns given the last
        event stored. The arrival events stay. With ``rebuild``, or when an entry is unknown,
        the index is emptied and every kept message queued instead
        (``RemoveResult.reindexed``). The message blob, the freed parts and the texts of the
        freed attachments are recorded as pending (``pending_blobs``). The
        backend leaves no copy of removed rows in its files: freed space is zeroed and
        logs are written back and cut. A locked catalog raises ``CatalogError`` and
        nothing is removed."""
        ...

    # -- the full-text index, made after answering (``archive.indexer``) ------------------

    def queued(
        self, limit: int, due: datetime | None = None, *, claim: bool = False
    ) -> list[tuple[int, str]]:
        """The oldest ``limit`` messages queued for indexing (by ``due`` at the latest, if
        given: ``defer`` puts some off): (id, SHA-256). ``claim``: taken for this catalog's
        indexer for a while, so another host's indexer sharing the catalog takes others (a
        catalog one host writes may ignore it)."""
        ...

    def index(
        self,
        entries: Sequence[Indexed],
        signature: str,
        extracts: Sequence[ExtractRecord] = (),
        holds: HoldQueries | None = None,
    ) -> list[int]:
        """In ONE transaction: records ``extracts`` (those of attachments no message has
        any more are left out, their text blobs recorded as pending), and adds each entry
        whose message is still there and still queued, taking it off the queue and storing
        ``signature`` as how it was made; with ``holds``, puts the messages indexed under the
        active holds whose query they match now (as ``add_batch`` does). Returns the ids
        indexed."""
        ...

    def defer(self, messages: Sequence[int], until: datetime) -> None:
        """Keeps queued ``messages`` behind the others until ``until`` (unreadable now)."""
        ...

    def extract_records(self, sha256s: Sequence[str]) -> dict[str, ExtractRecord]:
        """The extraction records of those attachments (by SHA-256) that have one."""
        ...

    def index_status(self) -> IndexStatus:
        """The queue's length and oldest entry; extraction failures by status."""
        ...

    def requeue(
        self, known: Sequence[Indexed], signature: str, unknown: Sequence[int] = ()
    ) -> bool:
        """Queues messages to be indexed again, in ONE transaction: each of ``known`` whose
        entry was made under ``signature`` loses that entry (its exact values) and is queued;
        one with no entry (lost) is queued; one queued already stays as it is. If one of
        ``known`` was indexed otherwise, or one of ``unknown`` (entry values unknown) has an
        entry, the index is emptied and every message queued instead: returns True then."""
        ...

    def rebuild_index(self) -> None:
        """Empties the index and queues every message."""
        ...

    def compact_index(self, pages: int) -> bool:
        """One bounded step (about ``pages`` pages written, one short transaction) of
        merging the index's pieces into one; False when there was nothing left to merge."""
        ...

    def index_size(self) -> int:
        """About how many messages the index holds (for when compacting pays)."""
        ...

    def index_check(self) -> tuple[list[int], list[int]]:
        """Ids of messages neither indexed nor queued, and ids of index entries whose
        message does not exist."""
        ...

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Holds the catalog's write lock (across processes) for the block: no removal
        deletes blobs and no arrival commits meanwhile; keep the block short."""
        ...

    def truncate_logs(self) -> list[str]:
        """Cut the catalog's write-ahead log (after a removal it may still hold the removed
        rows' old pages), waiting a few seconds for readers to leave it; returns the file
        whose log a reader (another process) still keeps, to report; empty when done."""
        ...

    def blob_epoch(self) -> int:
        """A number that grows whenever removals delete blobs. An arrival staged at epoch N
        (``NewArrival.blob_epoch``) is refused by ``add_batch`` (``CatalogError``: retry) if
        a blob it needs was deleted after N, or if it was staged as known bytes and its
        message was removed since: never a message row without its blobs."""
        ...

    def pending_blobs(self) -> list[tuple[str, str]]:
        """Blobs removals left to delete: ``("message" | "part", SHA-256)``."""
        ...

    def release_blobs(self, delete: Callable[[list[tuple[str, str]]], None]) -> int:
        """Calls ``delete`` with the pending blobs no message references (again), in
        batches, each under the catalog's write lock (so no arrival can start using one
        meanwhile), then forgets them; returns how many were deleted. The deletion is
        recorded durably before ``delete`` is called: whatever happens to the process after
        that, ``add_batch`` refuses (``CatalogError``: retry) an arrival that needs one of
        those blobs until a later call has finished the batch. If ``delete`` raises, the
        batch stays pending."""
        ...

    # -- conversations (``conversation.thread_key``; ``add_batch`` records each arrival's) ---

    def conversation(
        self, message: int, *, limit: int = 200, visible_to: Sequence[str] | None = None
    ) -> list[MessageRow]:
        """The messages of ``message``'s conversation (itself included), oldest first, at
        most ``limit``; with ``visible_to``, only those one of the addresses may see (as
        ``search``). Empty for a message alone, unknown, or whose conversation is not
        known yet."""
        ...

    def threads(self, messages: Sequence[int]) -> dict[int, str]:
        """The conversation key of each of ``messages`` that is in a conversation."""
        ...

    def unthreaded(self, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` messages archived before conversations were recorded (id,
        SHA-256), oldest first: ``set_threads`` records theirs."""
        ...

    def set_threads(self, threads: Sequence[tuple[int, str, str]]) -> None:
        """Records (message, key, parent) as ``add_batch`` does for an arrival, in one
        transaction, for messages whose conversation is not recorded yet."""
        ...

    # -- imports: where imported mail came from (beside the envelope, not in it) ---------

    def start_import(self, source: str, when: datetime) -> int:
        """Records an import run of ``source`` (what it was given) started ``when``."""
        ...

    def record_import_origins(self, run: int, origins: Sequence[tuple[int, str]]) -> None:
        """Records, for each (chain event seq of a new arrival, origin), that its envelope
        came from ``origin`` in import ``run`` (an envelope recorded already keeps its)."""
        ...

    def finish_import(self, run: int, when: datetime) -> None: ...

    def import_cursor(self, source: str) -> str | None:
        """Where a resumable import of ``source`` stopped (its own format), or None."""
        ...

    def set_import_cursors(self, cursors: Sequence[tuple[str, str]]) -> None:
        """Records ``(source, cursor)`` pairs in one transaction, replacing older ones."""
        ...

    def import_origins(self, envelopes: Sequence[int]) -> dict[int, ImportOrigin]:
        """Where each of ``envelopes`` that was imported (and recorded so) came from."""
        ...

    def is_visible(self, message: int, addresses: Sequence[str]) -> bool: ...

    def messages(self) -> Iterator[MessageRow]: ...

    def chain(self) -> Iterator[ChainLink]: ...

    def events(self, after: int = 0) -> Iterator[ChainEvent]:
        """The chain events as stored (seq, prev_hash, hash) with seq above ``after``, in
        order, without the rows they cover: what a signed checkpoint is checked against."""
        ...

    def last_event(self) -> ChainEvent | None:
        """The chain's head (the event with the highest seq); ``None``: no events yet."""
        ...

    def orphans(self) -> tuple[list[int], list[int]]:
        """Ids of messages and of envelopes that have no chain event."""
        ...

    def stats(self) -> Stats: ...

    def per_day(
        self, since: datetime | None = None, *, by: Literal["date", "arrival"] = "date"
    ) -> list[tuple[str, int, int]]:
        """Messages and bytes per UTC day, ``(YYYY-MM-DD, count, bytes)``, oldest first:
        by each message's Date header (clamped as stored) or by its first arrival."""
        ...

    # -- copying to another backend (``archive.migration``; ``catalog.tables``) -----------

    def snapshot(self) -> contextlib.AbstractContextManager[TableRows]:
        """One consistent read of every table (a read transaction of its own, which arrivals
        do not wait for), for copying this catalog elsewhere row by row, as stored."""
        ...

    def load_rows(self, t: Table, rows: Sequence[Sequence[Any]]) -> int:
        """Inserts rows read from another catalog's ``snapshot`` as they are (ids, hashes,
        dates), in ONE transaction under the write lock; a row whose key is here already
        takes the copy's values (a resumed copy reads some again, changed or not). A copied
        message has no index entry: it is queued for one, as an arrival is. Returns how
        many rows were given."""
        ...

    def copied_upto(self, t: Table) -> object | None:
        """The highest value of ``t``'s first key column here (None: no rows): where a
        resumed copy starts reading its source again."""
        ...

    def finish_load(self) -> None:
        """After a copy: whatever hands out ids here starts past the copied ones."""
        ...

    def close(self) -> None: ...


def open_catalog(url: str, *, readonly: bool = False) -> Catalog:
    """The catalog for ``url``; creates and migrates the schema as needed, unless
    ``readonly`` (commands that only read): then it must exist, and nothing is written."""
    if url.startswith("sqlite://"):
        from .sqlite import SqliteCatalog

        return SqliteCatalog(url.removeprefix("sqlite://"), readonly=readonly)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgresql import PostgresCatalog

        return PostgresCatalog(url, readonly=readonly)
    from .postgresql import redact  # the URL may hold a password: never shown

    raise CatalogError(
        f"unsupported catalog URL {redact(url)!r}: use sqlite:///path/catalog.sqlite or "
        "postgresql://USER@HOST:PORT/DATABASE"
    )


__all__ = [
    "TABLES",
    "AddResult",
    "AttachmentRow",
    "Catalog",
    "ChainEvent",
    "ChainLink",
    "EnvelopeRow",
    "ExtractRecord",
    "HoldQueries",
    "HoldRow",
    "ImportOrigin",
    "IndexEntry",
    "IndexStatus",
    "Indexed",
    "MessageRow",
    "NewArrival",
    "Removal",
    "RemoveResult",
    "Removed",
    "Sealer",
    "SearchPage",
    "Stats",
    "StoredPart",
    "Table",
    "TableRows",
    "TombstoneSealer",
    "index_entry",
    "open_catalog",
]
