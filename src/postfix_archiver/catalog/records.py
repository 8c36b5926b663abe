"""Plain records passed between the archive and a catalog backend: rows, no JSON (the
public documents are ``archive.document``'s)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..bigrams import index_form
from ..envelope import Envelope
from ..message import Address, Attachment
from ..search import Node


@dataclass(frozen=True, slots=True)
class StoredPart:
    sha256: str
    stored_size: int


@dataclass(frozen=True, slots=True)
class NewArrival:
    """One arrival to record: the message (if new) and its envelope."""

    sha256: str
    size: int
    stored_size: int  # of the message blob (skeleton or whole), compressed
    date: datetime
    subject: str
    message_id: str
    from_: list[Address]
    to: list[Address]
    cc: list[Address]
    attachments: list[Attachment]
    defects: list[str]
    body_text: str
    parts: list[StoredPart]
    envelope: Envelope
    # of the rules that kept this arrival (stored with its envelope): see archive.decide
    retention: str | None = None
    tags: tuple[str, ...] = ()
    # the retention date this arrival gives its message (None: forever); a message that
    # arrives again under a longer retention is kept the longer
    retain_until: datetime | None = None
    # unused since the index is made after the answer (``archive.indexer``: the message is
    # queued, its entry made from its blobs and ``messages.indexed_with`` set then); kept so
    # that callers building arrivals need not change
    indexed_with: str | None = None
    # Catalog.blob_epoch when it was staged: its commit fails if a removal has deleted one of
    # its blobs since (None: not checked)
    blob_epoch: int | None = None
    # its conversation (``conversation.thread_key``): the root Message-ID, or "" (alone);
    # ``thread_parent``, an In-Reply-To without References, whose own conversation the
    # catalog gives it when that message is archived
    thread: str = ""
    thread_parent: str = ""


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """The values of one message's full-text entry, exactly as indexed (CJK runs in
    ``bigrams.index_form``)."""

    subject: str
    body: str
    names: str
    addrs: str
    attachments: str = ""  # text extracted from the attachments


def index_entry(
    subject: str,
    body: str,
    attachments: Sequence[Attachment],
    from_: Sequence[Address],
    to: Sequence[Address],
    cc: Sequence[Address],
    *,
    inner_names: Sequence[str] = (),
    attachment_text: Sequence[str] = (),
) -> IndexEntry:
    """The one place that turns a message into its index entry: the indexer indexes it, and
    a removal recomputes it from the blob (a contentless index forgets only exact values).
    ``inner_names``: file names found inside attachments (zip members); ``attachment_text``:
    each attachment's extracted text. Every column is in ``bigrams.index_form``, which
    queries are matched against."""
    names = " ".join([*(x.filename for x in attachments if x.filename), *inner_names])
    addrs = " ".join(str(x) for x in (*from_, *to, *cc))
    text = "\n".join(t for t in attachment_text if t)
    return IndexEntry(
        index_form(subject),
        index_form(body),
        index_form(names),
        index_form(addrs),
        index_form(text),
    )


@dataclass(frozen=True, slots=True)
class ExtractRecord:
    """The extraction cache's bookkeeping for one attachment (by the SHA-256 of its decoded
    bytes): how it was extracted (``version``: the extractor's version and limits), the
    outcome (an ``extract`` status) and why it failed. The text is a blob (``t/<sha256>``)."""

    sha256: str
    version: str
    status: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Indexed:
    """One message's entry, made by the indexer from the message as queued: committed only
    if the message is still there and still queued."""

    message: int
    entry: IndexEntry


@dataclass(frozen=True, slots=True)
class IndexStatus:
    """How far the full-text index lags: messages queued, when the oldest was queued (None:
    none), and the attachments whose extraction did not succeed, counted by status."""

    queued: int
    oldest: datetime | None
    failures: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AddResult:
    id: int  # archive id of the message
    new_message: bool  # False: these bytes were archived before (deduplicated)
    new_envelope: bool  # False: this arrival (same queue id and envelope) was recorded before
    event_seq: int | None  # chain event of the new envelope


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """A chain event as the backend stores it (the hash is computed by ``archive.events``)."""

    seq: int
    prev_hash: str
    hash: str


# given the last event stored (None: none yet) and the arrival to record, its event
Sealer = Callable[[ChainEvent | None, NewArrival], ChainEvent]


@dataclass(frozen=True, slots=True)
class Removal:
    """One message to remove: why (``purge`` or ``erase``), the reason given, by whom, when;
    ``index`` is its full-text entry as indexed (None: unknown, the index is rebuilt, unless
    the message is still queued for indexing and so has no entry).
    ``expired_before`` (a purge): removed only if its ``retain_until`` is still this time or
    earlier when the removal commits; its retention may have been extended since the plan."""

    message: int
    why: str
    reason: str
    who: str
    when: datetime
    index: IndexEntry | None
    expired_before: datetime | None = None
    # the signature ``index`` was made under (None: not checked): if the message was
    # indexed again otherwise since, the entry is unknown and the index is rebuilt
    indexed_with: str | None = None


@dataclass(frozen=True, slots=True)
class Removed:
    """What a removal took, as the tombstone records it (envelopes whole: the tombstone keeps
    only their hashes)."""

    removal: Removal
    sha256: str
    size: int
    envelopes: list[Envelope]
    arrivals: list[ChainEvent]  # the message's arrival events, which stay in the chain


# given the last event stored and what was removed: the tombstone event and the content its
# hash covers (stored with it, so verify can recompute it)
TombstoneSealer = Callable[[ChainEvent, Removed], tuple[ChainEvent, dict[str, object]]]


@dataclass(frozen=True, slots=True)
class RemoveResult:
    """``removed``: the ids removed, each with its tombstone's sequence number; ``held``: ids
    skipped because a hold appeared; ``gone``: ids no longer there (removed meanwhile);
    ``retained``: ids skipped because their retention no longer expires by
    ``Removal.expired_before`` (extended, or the same bytes arrived again)."""

    removed: dict[int, int]
    held: list[int]
    gone: list[int]
    blobs: list[str]  # blob keys no kept message references: to delete from the store
    retained: list[int] = field(default_factory=list)
    # an entry's exact values were unknown: the index was emptied and every message queued
    reindexed: bool = False


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    sha256: str
    size: int
    stored_size: int
    date: datetime
    received: datetime
    subject: str
    message_id: str
    from_: str
    to: str
    cc: str
    attachment_count: int
    defects: list[str] = field(default_factory=list)
    retain_until: datetime | None = None  # None: kept forever


@dataclass(frozen=True, slots=True)
class EnvelopeRow:
    id: int
    message: int
    envelope: Envelope
    retention: str | None = None  # of the rules that kept this arrival; None: none set
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportOrigin:
    """Where an imported arrival came from: its file (or mbox and position) and the run."""

    origin: str  # the file, or "mbox:offset", as the importer named it
    source: str  # what the import was given (its description)
    started: datetime
    finished: datetime | None  # None: the run did not finish (interrupted)


@dataclass(frozen=True, slots=True)
class AttachmentRow:
    message: int
    index: int
    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class SearchPage:
    total: int
    results: list[MessageRow]
    # messages archived but not indexed yet: a full-text search may miss them
    not_indexed: int = 0


@dataclass(frozen=True, slots=True)
class ChainLink:
    """An event with the catalog rows its hash covers, as they are now."""

    seq: int
    prev_hash: str
    hash: str
    message: int
    envelope_id: int
    message_sha256: str | None  # None: the message row is gone
    size: int | None
    envelope: Envelope | None  # None: the envelope row is gone
    # a tombstone event: the content its hash covers (message, envelope_id refer to nothing)
    tombstone: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    messages: int
    envelopes: int
    raw_bytes: int
    stored_bytes: int  # message blobs + distinct parts, compressed
    parts: int
    catalog_bytes: int
    first_date: datetime | None
    last_date: datetime | None
    index: IndexStatus | None = None  # the index's lag (None: not known)

    @property
    def ratio(self) -> float:
        return self.stored_bytes / self.raw_bytes if self.raw_bytes else 0.0


@dataclass(frozen=True, slots=True)
class HoldRow:
    """A legal hold: its query, why, who placed it and when, who released it and when (None:
    active), and how many messages it holds."""

    id: int
    name: str
    query: str
    reason: str
    created_by: str
    created_at: datetime
    released_by: str | None
    released_at: datetime | None
    messages: int

    @property
    def active(self) -> bool:
        return self.released_at is None

    def to_json(self) -> dict[str, object]:
        """The stable JSON form of ``hold list --json``, ``hold show --json`` and the API."""
        return {
            "name": self.name,
            "query": self.query,
            "reason": self.reason,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "active": self.active,
            "released_by": self.released_by,
            "released_at": None if self.released_at is None else self.released_at.isoformat(),
            "messages": self.messages,
        }


# given the active holds (id, query as typed), read inside the commit that records new mail,
# the query tree of each (``archive.holds`` parses them, and caches the trees)
HoldQueries = Callable[[Sequence[tuple[int, str]]], Sequence[tuple[int, Node]]]
